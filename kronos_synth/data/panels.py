"""Panels: several symbols over one time range, cut into windows that share every timestamp.

A panel window is the same L consecutive timestamps of A symbols, where every symbol has a clean bar
at each of them and none of the symbols skips a bar in between (a stretch cleaning removed, or a
session one of them did not trade). The split by time is taken on the common timeline, so the train
and test periods are the same dates for every symbol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.regime import regime_ids
from kronos_synth.data.schema import FEATURES, SEGMENT, SYMBOL, TIMESTAMPS


@dataclass
class PanelWindows:
    """P windows of T bars of A symbols on shared timestamps."""

    values: np.ndarray  # (P, A, T, 6) float64
    timestamps: np.ndarray  # (P, T) datetime64[ns]
    symbols: tuple[str, ...]  # (A,)
    common: np.ndarray  # every timestamp of the split where all symbols have a clean bar (datetime64[ns])
    regime: np.ndarray | None = None  # (P, A) int64 volatility regime of each asset's window (data/regime.py)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def take(self, index: np.ndarray) -> PanelWindows:
        index = np.asarray(index)
        return PanelWindows(self.values[index], self.timestamps[index], self.symbols, self.common,
                            None if self.regime is None else self.regime[index])


def parse_symbols(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'BTCUSDT,ETHUSDT' (or a list) → ('BTCUSDT', 'ETHUSDT'); at least two, no repeats."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if str(s).strip()]
    if len(items) < 2:
        raise InputError(f"a panel needs at least two symbols, got {items or 'none'} — e.g. --panel "
                         "BTCUSDT,ETHUSDT", param="panel")
    dup = sorted({s for s in items if items.count(s) > 1})
    if dup:
        raise InputError(f"panel symbols repeat: {', '.join(dup)} — name each symbol once", param="panel")
    return tuple(items)


@dataclass
class AlignedPanel:
    """A split's shared timeline: bars (N, A, 6) at the N common timestamps, and which neighbours are linked
    (`linked[k]`: timestamps k and k + 1 are consecutive bars of every symbol, in one clean segment)."""

    values: np.ndarray
    timestamps: np.ndarray
    linked: np.ndarray  # (N − 1,) bool
    symbols: tuple[str, ...]

    def runs(self, min_length: int = 2) -> list[np.ndarray]:
        """The maximal stretches of linked bars, each (T_i, A, 6), with at least `min_length` bars."""
        breaks = np.flatnonzero(~self.linked) + 1
        edges = np.concatenate([[0], breaks, [len(self.values)]])
        return [self.values[a:b] for a, b in zip(edges[:-1], edges[1:], strict=True) if b - a >= min_length]


def aligned_panel(klines: pd.DataFrame, symbols: tuple[str, ...], freq: str, *, split: str = "train",
                  test_fraction: float = 0.2, gap: int = 0, min_length: int = 2, source: str = "data") -> AlignedPanel:
    """Clean each symbol, keep the timestamps all of them share, and split that timeline by time (train =
    the first 1 − test_fraction of it minus `gap` bars, test = the rest)."""
    have = sorted(klines[SYMBOL].astype(str).unique())
    for s in symbols:
        if s not in have:
            raise InputError(f"{source}: unknown symbol {s!r} (the data has {', '.join(have)}) — name symbols of "
                             "the data", param="panel")
    frame = clean_klines(klines.loc[klines[SYMBOL].astype(str).isin(symbols)], freq).frame
    per = {s: frame.loc[frame[SYMBOL].astype(str) == s].reset_index(drop=True) for s in symbols}
    stamps = {s: f[TIMESTAMPS].to_numpy(dtype="datetime64[ns]") for s, f in per.items()}
    common = stamps[symbols[0]]
    for s in symbols[1:]:
        common = np.intersect1d(common, stamps[s])
    if len(common) < min_length:
        ranges = "; ".join(f"{s} {str(t[0])[:16]} → {str(t[-1])[:16]}" if len(t) else f"{s} no clean bars"
                           for s, t in stamps.items())
        raise InputError(f"{source}: the symbols' time ranges do not overlap by {min_length} bars ({len(common)} "
                         f"shared timestamps; {ranges}) — choose symbols traded over the same period", param="panel")
    parts = {"all": (), "train": ("train",), "test": ("test",), "train-head": ("train", "train"),
             "validation": ("train", "test")}[split]
    for part in parts:  # train-head / validation: the train part cut once more the same way, head / tail
        n = len(common)
        cut = n - int(round(n * test_fraction))
        common = common[:max(0, cut - gap)] if part == "train" else common[cut:]
    linked = np.ones(max(0, len(common) - 1), dtype=bool)
    values = []
    for s in symbols:
        pos = np.searchsorted(stamps[s], common)
        seg = per[s][SEGMENT].to_numpy()[pos] if SEGMENT in per[s].columns else np.zeros(len(pos), int)
        linked &= (np.diff(pos) == 1) & (seg[1:] == seg[:-1])
        values.append(per[s][list(FEATURES)].to_numpy(np.float64)[pos])
    return AlignedPanel(np.stack(values, axis=1) if len(common) else np.zeros((0, len(symbols), len(FEATURES))),
                        common, linked, tuple(symbols))


def panel_windows(klines: pd.DataFrame, symbols: tuple[str, ...], freq: str, length: int, *,
                  split: str = "train", test_fraction: float = 0.2, gap: int | None = None,
                  source: str = "data") -> PanelWindows:
    """Every window of `length` shared bars (stride 1) of the split (`aligned_panel`; gap: `length` bars by
    default) in which no symbol skips a bar of its own."""
    al = aligned_panel(klines, symbols, freq, split=split, test_fraction=test_fraction,
                       gap=length if gap is None else gap, min_length=length, source=source)
    # window k covers bars k .. k + length − 1: all length − 1 links inside it must hold
    broken = np.concatenate([[0], np.cumsum(~al.linked)])
    starts = np.flatnonzero(broken[length - 1:] - broken[:len(broken) - length + 1] == 0) if len(al.values) >= length \
        else np.zeros(0, dtype=np.int64)
    if starts.size == 0:
        raise InputError(f"{source}: no stretch of {length} bars that every symbol of {', '.join(symbols)} trades "
                         f"without a gap in the {split} split — use a shorter window or more data", param="panel")
    idx = starts[:, None] + np.arange(length)[None, :]  # (P, T) positions on the shared timeline
    # each window's regime looks back along the shared timeline to the last broken link before it
    pos = np.arange(len(al.values))
    first = np.maximum.accumulate(np.where(np.r_[True, ~al.linked], pos, 0))[starts]
    regime = np.stack([regime_ids(al.values[:, a, 3], starts, first, length) for a in range(len(symbols))], axis=1)
    return PanelWindows(np.swapaxes(al.values[idx], 1, 2), al.timestamps[idx], tuple(symbols), al.timestamps,
                        regime)


def gaussian_copula_correlation(context: np.ndarray, of: str = "returns") -> np.ndarray:
    """Panels' contexts (P, A, L, 6) → the Gaussian-copula correlation (P, A, A) of their close log returns
    (`of="returns"`) or of their log-volume changes (`of="volume"`, diff of log(1 + volume)).

    Spearman's rank correlation ρ_s estimates the copula's ρ = 2 sin(π ρ_s / 6) (exact for a Gaussian
    copula, and unaffected by fat-tailed marginals, unlike Pearson's). The matrix is made positive
    definite (eigenvalues floored at 1e-4, unit diagonal restored)."""
    x = np.asarray(context, np.float64)
    if of == "returns":
        r = np.diff(np.log(x[..., 3]), axis=-1)  # (P, A, L−1)
    elif of == "volume":
        r = np.diff(np.log1p(np.maximum(x[..., 4], 0.0)), axis=-1)
    else:
        raise ValueError(f"of must be 'returns' or 'volume', got {of!r}")
    ranks = r.argsort(axis=-1, kind="stable").argsort(axis=-1, kind="stable").astype(np.float64)
    ranks -= ranks.mean(axis=-1, keepdims=True)
    cov = ranks @ np.swapaxes(ranks, -1, -2)
    d = np.sqrt(np.clip(np.diagonal(cov, axis1=-2, axis2=-1), 1e-12, None))
    rho_s = cov / d[..., :, None] / d[..., None, :]
    rho = 2.0 * np.sin(np.pi * rho_s / 6.0)
    w, v = np.linalg.eigh(rho)
    rho = (v * np.clip(w, 1e-4, None)[..., None, :]) @ np.swapaxes(v, -1, -2)
    s = np.sqrt(np.diagonal(rho, axis1=-2, axis2=-1))
    return rho / s[..., :, None] / s[..., None, :]
