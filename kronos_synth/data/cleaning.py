"""Cleaning pipeline after the Kronos paper (Appendix B): illiquid and stagnant runs, price-jump
splits, minimum segment length. Every removed row and every split is reported.

Rules, applied per symbol (and per existing `segment`, if the input has one):
1. illiquid: runs of >= `illiquid_run` consecutive zero-volume bars are removed. Symbols with no
   volume at all (FX quotes, files without volume) are exempt and noted in the report.
2. stagnant: runs of >= `stagnant_run` consecutive frozen bars (open = high = low = close =
   previous close) are removed. Rows matching both 1 and 2 count as illiquid.
3. price jump: where |log(open_t / close_{t-1})| or |log(close_t / close_{t-1})| exceeds
   `jump_threshold`, the series is split before bar t (nothing removed). A removed run also
   splits the series, since its neighbours are no longer consecutive bars.
4. short segment: segments with fewer than `min_segment_bars` bars are removed.
Thresholds come from the frequency preset (see `frequency.py`) and can be overridden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from kronos_synth.data.frequency import FrequencyPreset, get_preset, infer_frequency
from kronos_synth.data.schema import KLINE_COLUMNS, SEGMENT, SYMBOL, TIMESTAMPS

RULES = ("illiquid", "stagnant", "price_jump", "short_segment")


@dataclass
class CleaningEvent:
    """One removed run (rows > 0) or one split (rows == 0), with rows as positions in the input."""

    symbol: str
    rule: str
    first_row: int
    last_row: int
    start: str
    end: str
    rows: int
    detail: str


@dataclass
class CleaningReport:
    freq: str
    thresholds: dict
    rows_in: int
    rows_out: int
    segments: int
    removed: dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    splits: dict[str, int] = field(default_factory=lambda: {r: 0 for r in RULES})
    events: list[CleaningEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        lost = self.rows_in - self.rows_out
        pct = 100.0 * lost / self.rows_in if self.rows_in else 0.0
        th = self.thresholds
        lines = [
            f"cleaning ({self.freq}): kept {self.rows_out} of {self.rows_in} rows "
            f"({lost} removed, {pct:.2f}%) in {self.segments} segment(s)",
            f"  illiquid runs (>= {th['illiquid_run']} zero-volume bars): {self.removed['illiquid']} rows removed",
            f"  stagnant runs (>= {th['stagnant_run']} frozen bars): {self.removed['stagnant']} rows removed",
            f"  price jumps (|log change| > {th['jump_threshold']}): {self.splits['price_jump']} split(s)",
            f"  short segments (< {th['min_segment_bars']} bars): {self.removed['short_segment']} rows removed",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class CleaningResult:
    #: kept rows with an int `segment` column (0.. per symbol), default RangeIndex
    frame: pd.DataFrame
    report: CleaningReport
    #: removed rows: the input columns plus `row` (position in the input) and `reason`
    removed: pd.DataFrame


def _runs(mask: np.ndarray, block: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of maximal True runs of `mask` that stay inside one `block` id."""
    if not mask.any():
        return []
    m = mask.astype(np.int8)
    edge = np.diff(np.concatenate([[0], m, [0]]))
    starts, stops = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    out = []
    for s, e in zip(starts, stops, strict=True):
        # A run may span a block boundary; cut it there.
        b = block[s:e]
        cuts = np.flatnonzero(np.diff(b)) + 1
        bounds = [0, *cuts.tolist(), e - s]
        out += [(s + a, s + z) for a, z in zip(bounds[:-1], bounds[1:], strict=True)]
    return out


def clean_klines(
    df: pd.DataFrame,
    freq: str | FrequencyPreset | None = None,
    *,
    jump_threshold: float | None = None,
    illiquid_run: int | None = None,
    stagnant_run: int | None = None,
    min_segment_bars: int | None = None,
) -> CleaningResult:
    """Apply the cleaning rules to a validated K-line frame (sorted by symbol, then time)."""
    preset = infer_frequency(df) if freq is None else get_preset(freq)
    th = {
        "jump_threshold": preset.jump_threshold if jump_threshold is None else float(jump_threshold),
        "illiquid_run": preset.illiquid_run if illiquid_run is None else int(illiquid_run),
        "stagnant_run": preset.stagnant_run if stagnant_run is None else int(stagnant_run),
        "min_segment_bars": preset.min_segment_bars if min_segment_bars is None else int(min_segment_bars),
    }
    n = len(df)
    report = CleaningReport(freq=preset.name, thresholds=th, rows_in=n, rows_out=0, segments=0)
    sym = df[SYMBOL].astype(str).to_numpy()
    ts = pd.DatetimeIndex(df[TIMESTAMPS])
    o, h, lo, c, vol = (df[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume"))

    # Blocks: maximal stretches that may become one segment (one symbol, one input segment).
    new_block = np.ones(n, dtype=bool)
    if n:
        new_block[1:] = sym[1:] != sym[:-1]
        if SEGMENT in df.columns:
            seg_in = df[SEGMENT].to_numpy()
            new_block[1:] |= seg_in[1:] != seg_in[:-1]
    block = np.cumsum(new_block) - 1

    def event(rule: str, s: int, e: int, rows: int, detail: str) -> None:
        report.events.append(
            CleaningEvent(sym[s], rule, int(s), int(e - 1), str(ts[s]), str(ts[e - 1]), rows, detail)
        )

    reason = np.full(n, "", dtype=object)

    # 1. illiquid: zero-volume runs; symbols without any volume are exempt.
    zero = vol == 0
    for s in np.unique(sym):
        rows = sym == s
        if rows.any() and zero[rows].all():
            zero[rows] = False
            report.notes.append(f"{s}: no volume at all (volume-free data) — illiquid rule skipped")
    for s, e in _runs(zero, block):
        if e - s >= th["illiquid_run"]:
            reason[s:e] = "illiquid"
            event("illiquid", s, e, e - s, f"{e - s} consecutive zero-volume bars")

    # 2. stagnant: frozen bars equal to the previous close, in runs.
    prev_close = np.empty(n)
    prev_close[:1] = np.nan
    prev_close[1:] = c[:-1]
    frozen = (o == h) & (h == lo) & (lo == c) & (c == prev_close) & ~new_block
    for s, e in _runs(frozen, block):
        if e - s >= th["stagnant_run"]:
            fresh = reason[s:e] == ""
            reason[s:e][fresh] = "stagnant"
            if fresh.any():
                event("stagnant", s, e, int(fresh.sum()), f"{e - s} consecutive bars with unchanged price")

    # Provisional segments among kept rows: a new one at each block start or after removed rows.
    keep = reason == ""
    kept_idx = np.flatnonzero(keep)
    starts = np.ones(kept_idx.size, dtype=bool)
    if kept_idx.size > 1:
        contiguous = (np.diff(kept_idx) == 1) & (block[kept_idx[1:]] == block[kept_idx[:-1]])
        starts[1:] = ~contiguous
        # 3. price jumps between consecutive kept bars of one provisional segment.
        prev = kept_idx[:-1]
        cur = kept_idx[1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            jump = np.maximum(np.abs(np.log(o[cur] / c[prev])), np.abs(np.log(c[cur] / c[prev])))
        is_jump = contiguous & (jump > th["jump_threshold"])
        for k in np.flatnonzero(is_jump):
            r = int(cur[k])
            starts[k + 1] = True
            report.splits["price_jump"] += 1
            event("price_jump", r, r + 1, 0, f"|log change| {jump[k]:.3f} > {th['jump_threshold']} before this bar")
    seg_id = np.cumsum(starts) - 1

    # 4. short segments.
    if kept_idx.size:
        sizes = np.bincount(seg_id)
        for sid in np.flatnonzero(sizes < th["min_segment_bars"]):
            rows = kept_idx[seg_id == sid]
            reason[rows] = "short_segment"
            event("short_segment", rows[0], rows[-1] + 1, rows.size,
                  f"segment of {rows.size} bars < {th['min_segment_bars']}")

    for rule in ("illiquid", "stagnant", "short_segment"):
        report.removed[rule] = int((reason == rule).sum())
    report.events.sort(key=lambda ev: (ev.first_row, ev.rule))

    keep = reason == ""
    out = df.loc[keep, list(KLINE_COLUMNS)].reset_index(drop=True)
    # Renumber the surviving segments 0.. within each symbol.
    kept_seg = seg_id[np.isin(kept_idx, np.flatnonzero(keep))]
    if kept_seg.size:
        new_seg = np.ones(kept_seg.size, dtype=bool)
        new_seg[1:] = kept_seg[1:] != kept_seg[:-1]
        out_sym = out[SYMBOL].to_numpy()
        first_of_sym = np.ones(kept_seg.size, dtype=bool)
        first_of_sym[1:] = out_sym[1:] != out_sym[:-1]
        global_seg = np.cumsum(new_seg) - 1
        base = pd.Series(global_seg).where(first_of_sym).ffill().to_numpy()
        out[SEGMENT] = (global_seg - base).astype(np.int64)
        report.segments = int(new_seg.sum())
    else:
        out[SEGMENT] = np.zeros(0, dtype=np.int64)
    report.rows_out = len(out)

    removed = df.loc[~keep, list(KLINE_COLUMNS)].copy()
    removed.insert(0, "row", np.flatnonzero(~keep))
    removed["reason"] = reason[~keep].astype(str)
    return CleaningResult(frame=out, report=report, removed=removed.reset_index(drop=True))
