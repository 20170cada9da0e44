"""What a generation run reports: sequences, speed, raw validity counts and seam gaps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass
class GenerationSummary:
    sequences: int
    bars: int
    wall_time_s: float
    sequences_per_s: float
    parts_written: int
    parts_skipped: int
    raw_invalid_bar_rate: float
    violations: dict[str, int] = field(default_factory=dict)
    repaired: bool = False
    seam_abs_gap_median: float = float("nan")
    out: str = ""
    engine: str = "local"
    workers: int = 1
    worker_restarts: int = 0
    generated: int = -1  # sequences this invocation generated (the rest were already on disk); -1: all
    candidates: int = 0  # paths sampled for them (more than `generated` when a condition rejected some)
    hits: int = 0  # of `generated`, how many meet the condition
    condition: str = ""  # the condition, resolved ("" when the run has none)

    @property
    def hit_rate(self) -> float:
        """Share of the run's sequences that meet its condition (`hits` and `candidates` cover the whole run,
        resumed parts included: `with_condition_totals`)."""
        return self.hits / self.sequences if self.sequences > 0 else float("nan")

    @property
    def acceptance_cost(self) -> float:
        """Candidate paths sampled per sequence written."""
        return self.candidates / self.sequences if self.sequences > 0 else float("nan")

    def condition_line(self) -> str:
        return (f"condition {self.condition}: hit rate {100 * self.hit_rate:.1f} % ({self.hits} of {self.sequences} "
                f"meet it), acceptance cost {self.acceptance_cost:.2f} candidate paths per sequence")

    def with_condition_totals(self, out: str) -> GenerationSummary:
        """Hits and candidates of every part of a conditioned run in `out` (each part records its own), so a
        resumed run reports the whole dataset, not only what this invocation generated."""
        from pathlib import Path

        from kronos_synth.data.synthetic import read_part_metadata

        metas = [read_part_metadata(f) for f in sorted(Path(out).glob("part-*.parquet"))]
        self.hits = sum(int(m.get("condition_hits", 0)) for m in metas)
        self.candidates = sum(int(m.get("condition_candidates", 0)) for m in metas)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "hit_rate": self.hit_rate, "acceptance_cost": self.acceptance_cost}

    def line(self) -> str:
        if self.generated == 0:  # a rerun of a finished run: say what is there, not "0.0 seq/s"
            return (f"{self.sequences} sequences, {self.bars} bars already complete in {self.out} "
                    f"({self.parts_skipped} part{'s' * (self.parts_skipped != 1)}); nothing to generate")
        return (f"{self.sequences} sequences, {self.bars} bars in {self.wall_time_s:.1f} s "
                f"({self.sequences_per_s:.1f} seq/s); raw invalid bars {100 * self.raw_invalid_bar_rate:.2f} %"
                + (" (repaired in output)" if self.repaired else "")
                + f"; median |seam gap| {100 * self.seam_abs_gap_median:.3f} %"
                + (f" [{self.workers} Ray worker{'s' * (self.workers != 1)}"
                   + (f", {self.worker_restarts} replaced after dying" if self.worker_restarts else "") + "]"
                   if self.engine == "ray" else ""))


@dataclass
class PartStats:
    """What generating one part adds to the run summary: raw violation counts and seam gaps."""

    violations: dict[str, int] = field(default_factory=dict)
    seam: np.ndarray = field(default_factory=lambda: np.empty(0))
    candidates: int = 0  # paths sampled (conditioned runs: every try)
    hits: int = 0  # sequences that meet the run's condition (all of them without one)


def summarize_run(*, n: int, horizon: int, generated: int, wall_time_s: float, parts_written: int,
                  parts_skipped: int, stats: list[PartStats], repaired: bool, out: str, engine: str = "local",
                  workers: int = 1, worker_restarts: int = 0, condition: str = "") -> GenerationSummary:
    """Fold the per-part stats of one invocation (`generated` new sequences) into its summary."""
    totals: dict[str, int] = {}
    for st in stats:
        for name, c in st.violations.items():
            totals[name] = totals.get(name, 0) + int(c)
    generated_bars = generated * horizon
    invalid = totals.pop("invalid_bars", 0)
    seams = [st.seam for st in stats if len(st.seam)]
    return GenerationSummary(
        sequences=n, bars=n * horizon, wall_time_s=wall_time_s,
        sequences_per_s=generated / wall_time_s if wall_time_s > 0 else float("nan"),
        parts_written=parts_written, parts_skipped=parts_skipped,
        raw_invalid_bar_rate=invalid / generated_bars if generated_bars else 0.0,
        violations=totals, repaired=repaired,
        seam_abs_gap_median=float(np.median(np.abs(np.concatenate(seams)))) if seams else float("nan"),
        out=out, engine=engine, workers=workers, worker_restarts=worker_restarts, generated=generated,
        candidates=sum(st.candidates for st in stats), hits=sum(st.hits for st in stats), condition=condition)
