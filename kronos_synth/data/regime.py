"""Volatility regime of a context: its realised volatility against the longer run before it.

Kronos scales every window by its own lookback statistics, so a context from a crash and one from a
quiet week look alike to the model, and a path continues at its context's volatility. Markets do not:
over the pretraining corpus's 15-minute windows, log(horizon vol / context vol) falls with
log(context vol / vol of the 8 lookbacks before) at a slope of −0.48 (R² 0.17; daily −0.33): volatility
returns toward its longer-run level. A model with `regime_buckets` > 0 sees that ratio as one extra
input: a learned vector per bucket of the log ratio, added at every position like the time embedding.
The bucket id rides in an optional sixth column of the time features (`with_regime`), so every path
that carries stamps (training windows, the sampler, the shared-prefix cache) carries it too.

Bucket 0 means "unknown": fewer than MIN_SPAN lookbacks of clean history before the context's end.
"""

from __future__ import annotations

import numpy as np

#: buckets of log(context vol / long-run vol), 0.2 wide over [−1.5, 1.5] (the ends absorb the tails)
REGIME_BUCKETS = 15
REGIME_LOW, REGIME_WIDTH = -1.5, 0.2
SPAN = 8  # the long run: up to this many lookbacks ending at the context's last bar
MIN_SPAN = 3  # fewer lookbacks of history: bucket 0
_CHUNK = 1024  # windows per pass: (1024, 8 lookbacks) float64 arrays stay in the tens of MB


def regime_ids(close: np.ndarray, starts: np.ndarray, first: np.ndarray, lookback: int) -> np.ndarray:
    """(N,) int64 bucket of each context [start, start + lookback) of the rows' `close` prices (0: unknown).

    first: (N,) the first row of each context's clean segment (history never crosses it)."""
    x = context_vol_ratio(close, starts, first, lookback)
    known = np.isfinite(x)
    bucket = 1 + np.clip(np.floor((np.where(known, x, 0.0) - REGIME_LOW) / REGIME_WIDTH), 0, REGIME_BUCKETS - 1)
    return np.where(known, bucket, 0).astype(np.int64)


def context_vol_ratio(close: np.ndarray, starts: np.ndarray, first: np.ndarray, lookback: int) -> np.ndarray:
    """(N,) log(std of the context's close log returns / std over the up to SPAN lookbacks ending with it);
    NaN where fewer than MIN_SPAN lookbacks of the segment end with the context, or the long run is flat.
    A flat context in a moving market is −inf."""
    close = np.asarray(close)
    starts, first = np.asarray(starts, dtype=np.int64), np.asarray(first, dtype=np.int64)
    out = np.full(len(starts), np.nan)
    span = SPAN * lookback
    for lo in range(0, len(starts), _CHUNK):
        s, f = starts[lo:lo + _CHUNK], first[lo:lo + _CHUNK]
        end = s + lookback  # exclusive
        begin = np.maximum(f, end - span)
        idx = end[:, None] - span + np.arange(span)[None, :]  # (B, span)
        inside = idx >= begin[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            logc = np.log(np.asarray(close[np.maximum(idx, 0)], dtype=np.float64))
        r = np.diff(logc, axis=1)  # return into column j + 1
        ok = inside[:, 1:] & inside[:, :-1]
        in_ctx = ok & (idx[:, 1:] > s[:, None])  # returns between two context bars
        vol_long, vol_ctx = _std(r, ok), _std(r, in_ctx)
        known = (end - f >= MIN_SPAN * lookback) & (vol_long > 0) & np.isfinite(vol_long) & np.isfinite(vol_ctx)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log(np.where(known, vol_ctx, 1.0) / np.where(known, vol_long, 1.0))
        out[lo:lo + _CHUNK] = np.where(known, x, np.nan)
    return out


def _std(r: np.ndarray, mask: np.ndarray) -> np.ndarray:
    n = mask.sum(axis=1)
    rz = np.where(mask, r, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = rz.sum(axis=1) / n
        var = np.where(mask, (r - mean[:, None]) ** 2, 0.0).sum(axis=1) / n
    return np.sqrt(np.where(n > 1, var, np.nan))


def with_regime(stamps: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Time features (N, T, 5) plus the regime id of each window as a sixth column → (N, T, 6)."""
    ids = np.broadcast_to(np.asarray(ids, dtype=stamps.dtype)[:, None, None], (*stamps.shape[:2], 1))
    return np.concatenate([stamps, ids], axis=-1)


def segment_first(starts: np.ndarray) -> np.ndarray:
    """First row of each window's segment when `starts` lists every window start (stride 1, sorted):
    the first start of its run of consecutive starts."""
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0:
        return starts.copy()
    new_run = np.r_[True, np.diff(starts) != 1]
    return starts[new_run][np.cumsum(new_run) - 1]
