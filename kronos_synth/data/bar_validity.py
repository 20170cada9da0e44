"""Bar validity of raw K-lines (OHLC geometry and sign rules), and its optional repair.

Generation counts invalid bars with `bar_validity` on its raw output (and repairs them only when asked);
the evaluation reports the same counts (`kronos_synth.metrics.validity`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Checks in report order; each counts bars (a bar can fail several).
CHECKS = (
    "high < max(open, close)",
    "low > min(open, close)",
    "high < low",
    "price <= 0",
    "volume < 0",
    "amount < 0",
    "amount/volume outside [low, high]",
)


@dataclass
class ValidityResult:
    n_bars: int
    counts: dict[str, int]
    #: bars failing at least one check
    invalid_bars: int
    label: str = "raw"

    @property
    def shares(self) -> dict[str, float]:
        return {k: (v / self.n_bars if self.n_bars else float("nan")) for k, v in self.counts.items()}

    @property
    def invalid_share(self) -> float:
        return self.invalid_bars / self.n_bars if self.n_bars else float("nan")

    def to_dict(self) -> dict:
        return {"label": self.label, "n_bars": self.n_bars, "counts": self.counts, "shares": self.shares,
                "invalid_bars": self.invalid_bars, "invalid_share": self.invalid_share}


def bar_validity(bars: np.ndarray, *, label: str = "raw", vwap_rtol: float = 1e-6) -> ValidityResult:
    """Count bars that break OHLC geometry or sign rules; `bars` is (..., 6) raw OHLCVA.

    The VWAP check (amount/volume within [low, high]) runs only where volume > 0 and allows a relative
    `vwap_rtol` so float rounding in exchange data is not counted.
    """
    x = np.asarray(bars, dtype=np.float64).reshape(-1, 6)
    o, h, lo, c, v, a = x.T
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = np.where(v > 0, a / np.where(v > 0, v, 1.0), np.nan)
    tol = vwap_rtol * np.abs(vwap)
    masks = {
        CHECKS[0]: h < np.maximum(o, c),
        CHECKS[1]: lo > np.minimum(o, c),
        CHECKS[2]: h < lo,
        CHECKS[3]: (x[:, :4] <= 0).any(axis=1),
        CHECKS[4]: v < 0,
        CHECKS[5]: a < 0,
        CHECKS[6]: (v > 0) & ((vwap < lo - tol) | (vwap > h + tol)),
    }
    any_bad = np.zeros(len(x), dtype=bool)
    for m in masks.values():
        any_bad |= m
    return ValidityResult(len(x), {k: int(m.sum()) for k, m in masks.items()}, int(any_bad.sum()), label)


def repair_bars(bars: np.ndarray) -> np.ndarray:
    """Raise high / lower low to cover open and close; floor volume and amount at 0.

    Prices that are not positive are left alone (no honest repair exists); they stay counted.
    """
    out = np.array(bars, dtype=np.float64, copy=True)
    o, c = out[..., 0], out[..., 3]
    out[..., 1] = np.maximum.reduce([out[..., 1], o, c])
    out[..., 2] = np.minimum.reduce([out[..., 2], o, c])
    out[..., 4:6] = np.maximum(out[..., 4:6], 0.0)
    return out


def open_at_previous_close(bars: np.ndarray, context: np.ndarray, *, rtol: float = 1e-12) -> np.ndarray:
    """Generated bars (B, H, 6) whose context (B, L, 6) never gaps — every open equals the previous close, as
    in exchange K-lines of a market that trades around the clock — open at the previous close too: the
    first at the context's last close, the others at their predecessor's close. Closes, volume and amount
    are unchanged; high and low widen to cover the new open (so a valid bar stays valid). Other rows are
    returned as they are."""
    out = np.array(bars, dtype=np.float64, copy=True)
    ctx = np.asarray(context, dtype=np.float64)
    if ctx.shape[1] < 2 or out.shape[1] == 0:
        return out
    prev = ctx[:, :-1, 3]
    gapless = (np.abs(ctx[:, 1:, 0] - prev) <= rtol * np.abs(prev)).all(axis=1)
    if not gapless.any():
        return out
    rows = out[gapless]
    rows[:, 0, 0] = ctx[gapless, -1, 3]
    rows[:, 1:, 0] = rows[:, :-1, 3]
    rows[..., 1] = np.maximum(rows[..., 1], rows[..., 0])
    rows[..., 2] = np.minimum(rows[..., 2], rows[..., 0])
    out[gapless] = rows
    return out
