"""Contexts → synthetic sequences: the product's main job.

Sequence i is the continuation of context c(i) = perm[(i // samples_per_context) mod C] of a pool
of C real lookback windows cut from the chosen split, where perm is a seeded permutation; its
tokens come from the counter-based sampler. So every sequence depends only on (weights, data,
settings, seed, i) — not on batch size, part size or worker count — and a run can stop and
resume anywhere.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kronos_synth.data.calendar import SessionCalendar
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset, get_preset
from kronos_synth.data.schema import FEATURES, SYMBOL, TIMESTAMPS
from kronos_synth.data.splits import extract_windows, split_by_time
from kronos_synth.data.synthetic import ParquetSequenceWriter, sequences_to_frame
from kronos_synth.generate.device import resolve_device, resolve_dtype
from kronos_synth.generate.rng import counter_permutation
from kronos_synth.generate.sampler import SamplingConfig, decode_horizon, encode_contexts, sample_tokens
from kronos_synth.generate.validity import repair_bars
from kronos_synth.metrics.validity import bar_validity
from kronos_synth.model import Kronos, KronosTokenizer, check_compatible, time_features
from kronos_synth.model.representation import Levels, Representation
from kronos_synth.progress import show_progress

SPLITS = ("train", "test", "all")


@dataclass
class ContextPool:
    """C real lookback windows and the timestamps of the H bars that follow each."""

    values: np.ndarray  # (C, L, 6) raw bars
    timestamps: np.ndarray  # (C, L) datetime64[ns]
    future: np.ndarray  # (C, H) datetime64[ns], continuing each symbol's calendar
    symbols: np.ndarray  # (C,) str

    def __len__(self) -> int:
        return int(self.values.shape[0])


def build_context_pool(
    klines: pd.DataFrame,
    preset: FrequencyPreset,
    lookback: int,
    horizon: int,
    *,
    split: str = "train",
    test_fraction: float = 0.2,
    contexts_per_symbol: int | None = None,
    source: str = "data",
) -> ContextPool:
    """Clean the K-lines, take the split, cut every lookback window (stride 1) within clean segments."""
    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    frame = clean_klines(klines, preset.name).frame
    if split != "all":
        train, test = split_by_time(frame, test_fraction=test_fraction, gap=lookback + horizon)
        frame = train if split == "train" else test
    windows = extract_windows(frame, lookback, stride=1)
    if len(windows) == 0:
        longest = int(frame.groupby([SYMBOL, "segment"]).size().max()) if len(frame) else 0
        raise InputError(
            f"{source}: --lookback {lookback} is longer than every clean segment of the {split} split "
            f"(longest: {longest} bars) — pass a smaller --lookback or more data")
    if contexts_per_symbol is not None:
        if contexts_per_symbol <= 0:
            raise InputError(f"--contexts-per-symbol must be positive, got {contexts_per_symbol}")
        keep = []
        for sym in np.unique(windows.symbols):
            idx = np.flatnonzero(windows.symbols == sym)
            take = np.unique(np.linspace(0, len(idx) - 1, min(contexts_per_symbol, len(idx))).round().astype(int))
            keep.append(idx[take])
        windows = windows.take(np.concatenate(keep))
    future = np.empty((len(windows), horizon), dtype="datetime64[ns]")
    for sym in np.unique(windows.symbols):
        idx = np.flatnonzero(windows.symbols == sym)
        cal = SessionCalendar.fit(klines.loc[klines[SYMBOL].astype(str) == sym, TIMESTAMPS], preset.name)
        future[idx] = cal.next_many(windows.timestamps[idx, -1], horizon)
    return ContextPool(windows.values, windows.timestamps, future, windows.symbols.astype(str))


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
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


def summarize_run(*, n: int, horizon: int, generated: int, wall_time_s: float, parts_written: int,
                  parts_skipped: int, stats: list[PartStats], repaired: bool, out: str, engine: str = "local",
                  workers: int = 1, worker_restarts: int = 0) -> GenerationSummary:
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
        out=out, engine=engine, workers=workers, worker_restarts=worker_restarts)


class Generator:
    """Kronos sampling from real context windows.

    >>> gen = Generator(model, tokenizer, klines, freq="daily")     # doctest: +SKIP
    >>> frame = next(gen.iter_frames(n=256))                         # doctest: +SKIP
    >>> gen.write("synth/", n=6000)                                  # doctest: +SKIP
    """

    def __init__(
        self,
        model: Kronos,
        tokenizer: KronosTokenizer,
        klines: pd.DataFrame,
        *,
        freq: str,
        lookback: int | None = None,
        horizon: int | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        split: str = "train",
        test_fraction: float = 0.2,
        contexts_per_symbol: int | None = None,
        samples_per_context: int = 1,
        batch_size: int = 512,
        max_context: int = 512,
        device: str = "auto",
        dtype: str = "auto",
        repair: bool = False,
        include_context: bool = False,
        representation: Representation | None = None,
        model_id: str = "",
        tokenizer_id: str = "",
        source: str = "",
    ) -> None:
        check_compatible(tokenizer, model)
        self.preset = get_preset(freq)
        self.lookback = int(lookback or self.preset.lookback)
        self.horizon = int(horizon or self.preset.horizon)
        if self.lookback <= 0 or self.horizon <= 0:
            raise InputError(f"--lookback and --horizon must be positive, got {self.lookback}, {self.horizon}")
        if samples_per_context <= 0:
            raise InputError(f"--samples-per-context must be positive, got {samples_per_context}")
        if batch_size <= 0:
            raise InputError(f"--batch-size must be positive, got {batch_size}")
        self.sampling = sampling or SamplingConfig()
        self.seed, self.samples_per_context, self.batch_size = int(seed), int(samples_per_context), int(batch_size)
        self.max_context, self.repair, self.include_context = int(max_context), bool(repair), bool(include_context)
        self.device = resolve_device(device)
        self.dtype, self.dtype_note = resolve_dtype(dtype, self.device)
        self.tokenizer = tokenizer.to(self.device).eval()
        self.model = model.eval()
        if next(model.parameters()).dtype != self.dtype or next(model.parameters()).device != self.device:
            self.model = copy.deepcopy(model).to(device=self.device, dtype=self.dtype).eval()
        self.norm = representation or Levels()
        self.pool = build_context_pool(klines, self.preset, self.lookback, self.horizon, split=split,
                                       test_fraction=test_fraction, contexts_per_symbol=contexts_per_symbol,
                                       source=source or "data")
        self._perm = counter_permutation(self.seed, len(self.pool), stream=1)
        self.metadata: dict[str, Any] = {
            "generator": "kronos",
            "model": model_id,
            "tokenizer": tokenizer_id,
            "model_sha256": getattr(model, "weights_sha256", ""),
            "tokenizer_sha256": getattr(tokenizer, "weights_sha256", ""),
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "top_k": self.sampling.top_k,
            "seed": self.seed,
            "freq": self.preset.name,
            "lookback": self.lookback,
            "horizon": self.horizon,
            "split": split,
            "test_fraction": test_fraction,
            "contexts": len(self.pool),
            "contexts_per_symbol": contexts_per_symbol,
            "samples_per_context": self.samples_per_context,
            "max_context": self.max_context,
            "representation": self.norm.name,
            "normalization": self.norm.normalization,
            "clip": self.norm.clip,
            "repair": self.repair,
            "include_context": self.include_context,
            "source": source,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": self.device.type,
        }

    # --- one batch ---------------------------------------------------------------------------

    def context_index(self, sequence_ids: np.ndarray) -> np.ndarray:
        return self._perm[(np.asarray(sequence_ids) // self.samples_per_context) % len(self.pool)]

    @torch.no_grad()
    def generate_batch(self, sequence_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Raw generated bars (B, H, 6) (repaired if asked), raw violations, and the context of each."""
        ids = np.asarray(sequence_ids, dtype=np.int64)
        ci = self.context_index(ids)
        ctx = self.pool.values[ci]  # (B, L, 6)
        stats = self.norm.fit(ctx)
        x = torch.from_numpy(self.norm.transform(ctx, stats)).to(self.device)
        s1, s2 = encode_contexts(self.tokenizer, x)
        ts = np.concatenate([self.pool.timestamps[ci], self.pool.future[ci]], axis=1)  # (B, L + H)
        stamps = torch.from_numpy(time_features(ts)).to(self.device)
        g1, g2 = sample_tokens(self.model, s1, s2, stamps, self.horizon, self.sampling, seed=self.seed,
                               sequence_ids=ids, max_context=self.max_context)
        z = decode_horizon(self.tokenizer, torch.cat([s1, g1], 1), torch.cat([s2, g2], 1), self.horizon,
                           self.max_context)
        bars = self.norm.inverse(z.float().cpu().numpy(), stats).astype(np.float64)
        check = bar_validity(bars)
        violations = {**check.counts, "invalid_bars": check.invalid_bars}
        if self.repair:
            bars = repair_bars(bars)
        return {"bars": bars, "violations": violations, "context_index": ci, "context": ctx,
                "future": self.pool.future[ci]}

    def batch_frame(self, sequence_ids: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
        out = self.generate_batch(sequence_ids)
        ci = out["context_index"]
        ctx_end = self.pool.timestamps[ci, -1]
        frame = sequences_to_frame(out["bars"], out["future"], sequence_ids, self.pool.symbols[ci], ctx_end)
        if self.include_context:
            cframe = sequences_to_frame(out["context"], self.pool.timestamps[ci], sequence_ids,
                                        self.pool.symbols[ci], ctx_end, first_step=-self.lookback)
            frame = pd.concat([cframe, frame], ignore_index=True)
        seam = out["bars"][:, 0, 0] / out["context"][:, -1, 3] - 1.0
        return frame, {"violations": out["violations"], "seam": seam}

    # --- many batches --------------------------------------------------------------------------

    def iter_frames(self, n: int, start: int = 0) -> Iterator[pd.DataFrame]:
        """Schema-v1 frames of sequence ids start..start+n−1, one per batch."""
        for lo in range(start, start + n, self.batch_size):
            ids = np.arange(lo, min(start + n, lo + self.batch_size))
            yield self.batch_frame(ids)[0]

    def part_frame(self, start: int, stop: int,
                   on_batch: Callable[[int], object] | None = None) -> tuple[pd.DataFrame, PartStats]:
        """Sequence ids start..stop−1 as one schema-v1 frame (batch by batch), and their stats."""
        frames, seams = [], []
        totals: dict[str, int] = {}
        for b in range(start, stop, self.batch_size):
            frame, info = self.batch_frame(np.arange(b, min(stop, b + self.batch_size)))
            frames.append(frame)
            seams.append(info["seam"])
            for name, c in info["violations"].items():
                totals[name] = totals.get(name, 0) + int(c)
            if on_batch is not None:
                on_batch(min(stop, b + self.batch_size) - b)
        return pd.concat(frames, ignore_index=True), PartStats(totals, np.concatenate(seams))

    def write_part(self, writer: ParquetSequenceWriter, index: int,
                   on_batch: Callable[[int], object] | None = None) -> PartStats:
        """Generate and write part `index` — the one code path of the local engine and of Ray workers,
        so both write the same bytes."""
        frame, stats = self.part_frame(*writer.part_range(index), on_batch=on_batch)
        # Raw (pre-repair) counts travel with the part, so `evaluate` can report them after --repair.
        writer.write_part(index, frame, {"raw_violations": stats.violations})
        return stats

    def writer_metadata(self) -> dict[str, Any]:
        """The run settings a dataset writer records (the device does not change the data)."""
        return {k: v for k, v in self.metadata.items() if k not in ("device",)}

    def write(self, out: str | Path, n: int, *, sequences_per_part: int | None = None,
              progress: bool | None = None, on_start: Callable[[], object] | None = None) -> GenerationSummary:
        """Generate n sequences into a schema-v1 folder; resumes a run with the same settings."""
        from tqdm.auto import tqdm

        writer = ParquetSequenceWriter(out, n=n, sequences_per_part=self.part_size(sequences_per_part),
                                       metadata=self.writer_metadata())
        pending = writer.pending_parts()
        if on_start is not None:
            on_start()
        todo = sum(writer.part_range(k)[1] - writer.part_range(k)[0] for k in pending)
        stats: list[PartStats] = []
        t0 = time.perf_counter()
        bar = tqdm(total=todo, unit="seq", desc="generate", disable=not show_progress(progress), smoothing=0.1)
        for k in pending:
            stats.append(self.write_part(writer, k, on_batch=bar.update))
        bar.close()
        return summarize_run(n=n, horizon=self.horizon, generated=todo, wall_time_s=time.perf_counter() - t0,
                             parts_written=len(pending), parts_skipped=writer.n_parts - len(pending),
                             stats=stats, repaired=self.repair, out=str(out))

    def part_size(self, sequences_per_part: int | None = None) -> int:
        """Sequences per part file: as asked, else max(batch size, 1024)."""
        return int(sequences_per_part or max(self.batch_size, 1024))

__all__ = ["FEATURES", "ContextPool", "GenerationSummary", "Generator", "PartStats", "build_context_pool",
           "summarize_run"]
