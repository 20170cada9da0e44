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
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kronos_synth.data.bar_validity import bar_validity, open_at_previous_close, repair_bars
from kronos_synth.data.conditions import ConditionedWindows, conditioned_windows, parse_condition
from kronos_synth.data.errors import InputError
from kronos_synth.data.regime import with_regime
from kronos_synth.data.schema import FEATURES
from kronos_synth.data.synthetic import ParquetSequenceWriter, sequences_to_frame
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.contexts import ContextPool, build_context_pool
from kronos_synth.generate.device import resolve_device, resolve_dtype
from kronos_synth.generate.rng import counter_permutation
from kronos_synth.generate.sampler import (
    MAX_GROUP,
    decode_horizon,
    encode_contexts,
    path_volatility_scales,
    sample_tokens,
)
from kronos_synth.generate.summary import GenerationSummary, PartStats, summarize_run
from kronos_synth.model import check_compatible, native, time_features
from kronos_synth.model.pretrained import ModelPair
from kronos_synth.model.representation import Geometry, bars_from_geometry, get_representation
from kronos_synth.progress import show_progress


class Generator:
    """Kronos sampling from real context windows.

    >>> gen = Generator(load_model_pair(), klines, GenerationConfig(freq="daily"))  # doctest: +SKIP
    >>> frame = next(gen.iter_frames(n=256))                         # doctest: +SKIP
    >>> gen.write("synth/", n=6000)                                  # doctest: +SKIP
    """

    def __init__(self, pair: ModelPair, klines: pd.DataFrame | None, config: GenerationConfig, *,
                 source: str = "", pool: ContextPool | None = None) -> None:
        """`pool`: continue exactly these contexts, in their order (sequence i continues context
        i // samples_per_context), instead of cutting a seeded permutation of every window of `klines`."""
        model, tokenizer = pair.model, pair.tokenizer
        check_compatible(tokenizer, model)
        self.config, self.preset = config, config.preset
        self.lookback, self.horizon = config.window
        for name, bars in (("lookback", self.lookback), ("horizon", self.horizon)):
            # longer contexts would be cut to the model's window, longer horizons cannot be decoded in one
            if bars > pair.max_context:
                raise InputError(f"{name} {bars} is longer than the model's context of {pair.max_context} bars "
                                 f"({pair.model_id}) — use a {name} of at most {pair.max_context}", param=name)
        self.sampling = config.sampling
        self.seed, self.samples_per_context, self.batch_size = config.seed, config.samples_per_context, config.batch_size
        self.max_context, self.repair, self.include_context = int(pair.max_context), config.repair, config.include_context
        self.device = resolve_device(config.device)
        self.dtype, self.dtype_note = resolve_dtype(config.dtype, self.device)
        self.tokenizer = tokenizer.to(self.device).eval()
        self.model = model.eval()
        if next(model.parameters()).dtype != self.dtype or next(model.parameters()).device != self.device:
            self.model = copy.deepcopy(model).to(device=self.device, dtype=self.dtype).eval()
        self.norm = get_representation(pair.sidecar or None)
        if config.volatility_spread and not isinstance(self.norm, Geometry):
            raise InputError(f"volatility_spread needs a model of the geometry representation; {pair.model_id} uses "
                             f"{self.norm.name!r} — use temperature_spread instead", param="volatility_spread")
        self._buffers: dict = {}  # the K/V caches' storage, reused batch after batch (sample_tokens)
        self.conditioned: ConditionedWindows | None = None
        if pool is None and config.condition is not None:
            # Contexts from the real posterior: windows whose real continuation (or context) met the condition.
            self.conditioned = conditioned_windows(
                klines, self.preset.name, self.lookback, self.horizon, parse_condition(config.condition),
                split=config.split, test_fraction=config.test_fraction, source=source or "data")
            m = self.conditioned.matching
            L = self.lookback
            self.pool = ContextPool(m.values[:, :L], m.timestamps[:, :L], m.timestamps[:, L:], m.symbols, m.regime)
            self._perm = counter_permutation(self.seed, len(self.pool), stream=1)
        elif pool is None:
            self.pool: ContextPool = build_context_pool(
                klines, self.preset, self.lookback, self.horizon, split=config.split,
                test_fraction=config.test_fraction, contexts_per_symbol=config.contexts_per_symbol,
                source=source or "data")
            self._perm = counter_permutation(self.seed, len(self.pool), stream=1)
        else:
            if pool.values.shape[1] != self.lookback or pool.future.shape[1] != self.horizon:
                raise InputError(f"the contexts have {pool.values.shape[1]} bars and {pool.future.shape[1]} future "
                                 f"timestamps; the run asks for lookback {self.lookback}, horizon {self.horizon}")
            self.pool, self._perm = pool, np.arange(len(pool))
        self.metadata: dict[str, Any] = {
            "generator": "kronos",
            "model": pair.model_id,
            "tokenizer": pair.tokenizer_id,
            "model_sha256": getattr(model, "weights_sha256", ""),
            "tokenizer_sha256": getattr(tokenizer, "weights_sha256", ""),
            **config.metadata(),
            "contexts": len(self.pool),
            "max_context": self.max_context,
            "representation": self.norm.name,
            "normalization": self.norm.normalization,
            "clip": self.norm.clip,
            "source": source,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": self.device.type,
            # decode attention and token draws: the compiled kernels or PyTorch's (they round differently: part
            # of the run key)
            "attention": "native" if self.device.type == "cpu" and native.available() else "torch",
        }
        if self.conditioned is not None:
            self.metadata["condition"] = {**self.conditioned.resolved.to_dict(),
                                          "real_windows": len(self.conditioned.windows),
                                          "real_windows_meeting": int(self.conditioned.mask.sum()),
                                          "rejection": "first accepted of max_tries (context, path) proposals"}
        # Candidate ids of a conditioned run: try r of sequence i is r·stride + i (try 0 is sequence i itself).
        # The stride is a multiple of the shared-prefix group size so a try's candidates group like sequences.
        group = min(self.samples_per_context, MAX_GROUP)
        self._stride = group * -(-(1 << 40) // group)
        # Each try of a conditioned sequence proposes a fresh (context, path) pair; golden-ratio steps spread
        # the tries of one sequence over the contexts.
        self._rotate = max(1, round(0.6180339887 * len(self.pool))) if self.conditioned is not None else 0

    # --- one batch ---------------------------------------------------------------------------

    def context_index(self, sequence_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(sequence_ids)
        slot, tries = ids % self._stride, ids // self._stride
        # Try r of a conditioned sequence moves r·rotate contexts along the permutation (rotate = 0 otherwise).
        return self._perm[(slot // self.samples_per_context + tries * self._rotate) % len(self.pool)]

    def _sampling_options(self, ids: np.ndarray) -> dict[str, Any]:
        """Extra `sample_tokens` arguments for these rows (panels couple their uniforms)."""
        return {"samples_per_context": self.samples_per_context}

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
        stamps = time_features(ts)
        if self.pool.regime is not None and getattr(self.model, "regime_buckets", 0):
            stamps = with_regime(stamps, self.pool.regime[ci])
        stamps = torch.from_numpy(stamps).to(self.device)
        g1, g2 = sample_tokens(self.model, s1, s2, stamps, self.horizon, self.sampling, seed=self.seed,
                               sequence_ids=ids, max_context=self.max_context, buffers=self._buffers,
                               path_ids=self._path_ids(ids), **self._sampling_options(ids))
        z = decode_horizon(self.tokenizer, torch.cat([s1, g1], 1), torch.cat([s2, g2], 1), self.horizon,
                           self.max_context, share_context=self.samples_per_context > 1)
        bars = self.decode_bars(z.float().cpu().numpy(), stats, self._path_ids(ids))
        if self.config.gaps == "context":  # the model's gaps are never exactly 0; a gapless market's are
            bars = open_at_previous_close(bars, ctx)
        check = bar_validity(bars)
        violations = {**check.counts, "invalid_bars": check.invalid_bars}
        if self.repair:
            bars = repair_bars(bars)
        return {"bars": bars, "violations": violations, "context_index": ci, "context": ctx,
                "future": self.pool.future[ci]}

    def _path_ids(self, ids: np.ndarray) -> np.ndarray:
        """The ids whose draws set each row's path-level factors (a panel overrides: one per panel)."""
        return ids

    def decode_bars(self, z: np.ndarray, stats: Any, path_ids: np.ndarray) -> np.ndarray:
        """Model-space outputs (B, H, 6) → bars; with `volatility_spread` each path's price moves (gap, body,
        wicks) are multiplied by its scale (`path_volatility_scales`): its shape at another volatility level."""
        scale = path_volatility_scales(self.config.volatility_spread, self.seed, path_ids)
        if scale is None:
            return self.norm.inverse(z, stats).astype(np.float64)
        f = self.norm.features(z, stats)
        f[..., :4] *= scale[:, None, None]
        return bars_from_geometry(f, stats.last_close)

    def conditioned_batch(self, sequence_ids: np.ndarray) -> dict[str, Any]:
        """`generate_batch` held to the run's condition, by rejection: try r = 0, 1, … of sequence i (id
        r·stride + i) proposes a context — its own for r = 0, then `rotate` contexts further along the seeded
        permutation per try — and a path of it; the sequence takes the first proposal whose path meets the
        condition, after at most `max_tries`. Contexts come from the real windows whose continuation met the
        condition (p_real(c | condition)), paths from the model, so an accepted (context, path) pair is a draw
        of p_real(c | condition) · p_model(path | c) restricted to the condition. A sequence none of whose tries
        meets it keeps the closest and counts as a miss."""
        ids = np.asarray(sequence_ids, dtype=np.int64)
        resolved = self.conditioned.resolved
        ci = self.context_index(ids).copy()
        bars = np.empty((len(ids), self.horizon, 6))
        dist = np.full(len(ids), np.inf)
        pending = np.ones(len(ids), dtype=bool)
        candidates = 0
        for r in range(self.config.max_tries):
            rows = np.flatnonzero(pending)
            if rows.size == 0:
                break
            out = self.generate_batch(r * self._stride + ids[rows])
            candidates += rows.size
            d = resolved.distance(self.pool.values[out["context_index"], -1, 3], out["bars"])
            better = d < dist[rows]
            bars[rows[better]], dist[rows[better]] = out["bars"][better], d[better]
            ci[rows[better]] = out["context_index"][better]
            pending[rows[d == 0]] = False
        check = bar_validity(bars)  # of the output (raw only if not repaired: candidates were repaired already)
        return {"bars": bars, "violations": {**check.counts, "invalid_bars": check.invalid_bars},
                "context_index": ci, "context": self.pool.values[ci], "future": self.pool.future[ci],
                "candidates": candidates, "hits": int((~pending).sum())}

    def batch_frame(self, sequence_ids: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
        out = (self.generate_batch(sequence_ids) if self.conditioned is None
               else self.conditioned_batch(sequence_ids))
        ci = out["context_index"]
        ctx_end = self.pool.timestamps[ci, -1]
        frame = sequences_to_frame(out["bars"], out["future"], sequence_ids, self.pool.symbols[ci], ctx_end)
        if self.include_context:
            cframe = sequences_to_frame(out["context"], self.pool.timestamps[ci], sequence_ids,
                                        self.pool.symbols[ci], ctx_end, first_step=-self.lookback)
            frame = pd.concat([cframe, frame], ignore_index=True)
        seam = out["bars"][:, 0, 0] / out["context"][:, -1, 3] - 1.0
        n = len(sequence_ids)
        return frame, {"violations": out["violations"], "seam": seam, "candidates": out.get("candidates", n),
                       "hits": out.get("hits", n)}

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
        candidates = hits = 0
        for b in range(start, stop, self.batch_size):
            frame, info = self.batch_frame(np.arange(b, min(stop, b + self.batch_size)))
            frames.append(frame)
            seams.append(info["seam"])
            candidates, hits = candidates + info["candidates"], hits + info["hits"]
            for name, c in info["violations"].items():
                totals[name] = totals.get(name, 0) + int(c)
            if on_batch is not None:
                on_batch(min(stop, b + self.batch_size) - b)
        return pd.concat(frames, ignore_index=True), PartStats(totals, np.concatenate(seams), candidates, hits)

    def write_part(self, writer: ParquetSequenceWriter, index: int,
                   on_batch: Callable[[int], object] | None = None) -> PartStats:
        """Generate and write part `index` — the one code path of the local engine and of Ray workers,
        so both write the same bytes."""
        frame, stats = self.part_frame(*writer.part_range(index), on_batch=on_batch)
        # Raw (pre-repair) counts travel with the part, so `evaluate` can report them after a repair.
        extra = {"raw_violations": stats.violations}
        if self.conditioned is not None:
            extra["condition_candidates"], extra["condition_hits"] = stats.candidates, stats.hits
        writer.write_part(index, frame, extra)
        return stats

    def writer_metadata(self) -> dict[str, Any]:
        """The run settings a dataset writer records (the device does not change the data)."""
        return {k: v for k, v in self.metadata.items() if k not in ("device",)}

    def write(self, out: str | Path, n: int, *, progress: bool | None = None,
              on_start: Callable[[], object] | None = None) -> GenerationSummary:
        """Generate n sequences into a schema-v1 folder; resumes a run with the same settings."""
        from tqdm.auto import tqdm

        writer = ParquetSequenceWriter(out, n=n, sequences_per_part=self.config.part_size,
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
        summary = summarize_run(n=n, horizon=self.horizon, generated=todo, wall_time_s=time.perf_counter() - t0,
                             parts_written=len(pending), parts_skipped=writer.n_parts - len(pending),
                             stats=stats, repaired=self.repair, out=str(out),
                             condition=self.conditioned.resolved.describe() if self.conditioned is not None else "")
        return summary.with_condition_totals(str(out)) if self.conditioned is not None else summary


__all__ = ["FEATURES", "ContextPool", "GenerationConfig", "GenerationSummary", "Generator", "PartStats",
           "build_context_pool", "summarize_run"]
