"""docs/protocol.md §7: stylized facts of close log returns, real vs synthetic vs a real-vs-real baseline.

Returns are computed within each sequence from raw closes and never z-scored per window, so
volatility levels and tails are compared as they are. Statistics pool all sequences of a set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import kurtosis, spearmanr

AGGREGATIONS = (1, 2, 4, 8)


def log_returns(bars: np.ndarray) -> np.ndarray:
    """(n, T, 6) bars → (n, T−1) close log returns."""
    c = np.asarray(bars, np.float64)[..., 3]
    return np.diff(np.log(c), axis=1)


def pooled_acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """ACF at lags 1..max_lag of many short series: global mean and variance, lag products pooled
    within series only (NaNs ignored)."""
    x = np.asarray(x, np.float64)
    xc = x - np.nanmean(x)
    var = np.nanmean(xc * xc)
    out = np.full(max_lag, np.nan)
    if not np.isfinite(var) or var <= 0:
        return out
    for k in range(1, max_lag + 1):
        if k < x.shape[1]:
            out[k - 1] = np.nanmean(xc[:, :-k] * xc[:, k:]) / var
    return out


def hill_index(x: np.ndarray, tail_fraction: float = 0.01) -> float:
    """Hill tail index of the positive values in `x` using the top `tail_fraction` of all observations."""
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    k = max(10, int(tail_fraction * x.size))
    pos = np.sort(x[x > 0])[::-1]
    if pos.size <= k:
        return float("nan")
    top, thresh = pos[:k], pos[k]
    return float(1.0 / np.mean(np.log(top / thresh)))


def leverage(r: np.ndarray, max_lag: int) -> np.ndarray:
    """L(k) = (E[r_t·r²_{t+k}] − E[r]E[r²]) / E[r²]², k = 1..max_lag."""
    er, er2 = np.nanmean(r), np.nanmean(r * r)
    out = np.full(max_lag, np.nan)
    if er2 <= 0:
        return out
    for k in range(1, max_lag + 1):
        if k < r.shape[1]:
            out[k - 1] = (np.nanmean(r[:, :-k] * r[:, k:] ** 2) - er * er2) / er2 ** 2
    return out


def first_passage(r: np.ndarray, threshold: float) -> tuple[float, float]:
    """Mean first-passage time (bars) of the cumulative log return to +threshold and to −threshold,
    over every start bar of every sequence (passages that do not happen inside the window are dropped)."""
    gains, losses = [], []
    n, t = r.shape
    for s in range(t):
        cs = np.cumsum(r[:, s:], axis=1)
        for target, sink in ((cs >= threshold, gains), (cs <= -threshold, losses)):
            hit = target.any(axis=1)
            sink.append(target[hit].argmax(axis=1) + 1)
    g, lo = np.concatenate(gains), np.concatenate(losses)
    return (float(g.mean()) if g.size else float("nan"), float(lo.mean()) if lo.size else float("nan"))


def aggregated_kurtosis(r: np.ndarray, m: int) -> float:
    """Excess kurtosis of sums of m consecutive returns (non-overlapping, within sequences)."""
    nb = r.shape[1] // m
    if nb < 1:
        return float("nan")
    agg = r[:, :nb * m].reshape(len(r), nb, m).sum(axis=2).reshape(-1)
    return float(kurtosis(agg[np.isfinite(agg)], fisher=True))


def stylized_facts(bars: np.ndarray, max_lag: int | None = None, *, passage_sigmas: float = 2.0) -> dict:
    """Every §7 fact of one set of raw bars (n, T, 6). Sequences with non-positive prices are skipped."""
    x = np.asarray(bars, np.float64)
    ok = (x[..., :4] > 0).all(axis=(1, 2)) & np.isfinite(x).all(axis=(1, 2))
    x = x[ok]
    t = x.shape[1]
    max_lag = max(1, t // 4) if max_lag is None else min(max_lag, max(1, t // 4))
    r = log_returns(x)
    flat = r.reshape(-1)
    sigma = float(flat.std())
    tau_gain, tau_loss = first_passage(r, passage_sigmas * sigma) if sigma > 0 else (np.nan, np.nan)
    vol = x[:, 1:, 4]
    rel_vol = vol / np.maximum(vol.mean(axis=1, keepdims=True), 1e-300)
    if (vol > 0).any() and np.ptp(rel_vol) > 0 and np.ptp(flat) > 0:
        vcorr = float(spearmanr(np.abs(flat), rel_vol.reshape(-1)).statistic)
    else:
        vcorr = float("nan")
    park = np.sqrt(np.log(x[..., 1] / x[..., 2]) ** 2 / (4 * np.log(2)))
    return {
        "n_sequences": int(len(x)), "n_skipped": int((~ok).sum()), "max_lag": max_lag,
        "return_std": sigma,
        "acf_returns": pooled_acf(r, max_lag),
        "excess_kurtosis": float(kurtosis(flat, fisher=True)),
        "hill_left": hill_index(-flat),
        "hill_right": hill_index(flat),
        "acf_abs_returns": pooled_acf(np.abs(r), max_lag),
        "acf_sq_returns": pooled_acf(r * r, max_lag),
        "leverage": leverage(r, max_lag),
        "gain_loss_tau_gain": tau_gain,
        "gain_loss_tau_loss": tau_loss,
        "gain_loss_ratio": tau_gain / tau_loss if tau_loss else float("nan"),
        "aggregated_kurtosis": np.array([aggregated_kurtosis(r, m) for m in AGGREGATIONS]),
        "volume_abs_return_corr": vcorr,
        "parkinson_acf": pooled_acf(park, max_lag),
    }


#: Facts compared in the report, with what the number is.
FACTS = {
    "acf_returns": "ACF of returns, lags 1..max_lag (mean |diff| over lags)",
    "excess_kurtosis": "excess kurtosis of returns",
    "hill_left": "Hill tail index, left tail (top 1 %)",
    "hill_right": "Hill tail index, right tail (top 1 %)",
    "acf_abs_returns": "volatility clustering: ACF of |r|",
    "acf_sq_returns": "volatility clustering: ACF of r²",
    "leverage": "leverage L(k)",
    "gain_loss_ratio": "gain/loss asymmetry: mean first-passage time +2σ / −2σ",
    "aggregated_kurtosis": f"aggregational Gaussianity: kurtosis at aggregation {AGGREGATIONS}",
    "volume_abs_return_corr": "volume–|return| Spearman correlation",
    "parkinson_acf": "Parkinson range volatility ACF",
}


@dataclass
class StylizedRow:
    name: str
    description: str
    real: float | list[float]
    synthetic: float | list[float]
    #: |real − synthetic| (mean over lags for vector facts)
    abs_diff: float
    #: |real test − real train| — the real-vs-real scale of "good" (NaN without train windows)
    baseline: float


@dataclass
class StylizedResult:
    rows: list[StylizedRow] = field(default_factory=list)
    max_lag: int = 0
    real: dict = field(default_factory=dict)
    synthetic: dict = field(default_factory=dict)
    real_train: dict = field(default_factory=dict)

    def row(self, name: str) -> StylizedRow:
        return next(r for r in self.rows if r.name == name)

    def to_dict(self) -> dict:
        return {"max_lag": self.max_lag, "rows": [_jsonable(vars(r)) for r in self.rows],
                "real": _jsonable(self.real), "synthetic": _jsonable(self.synthetic),
                "real_train": _jsonable(self.real_train)}


def _jsonable(d: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}


def _diff(a, b) -> float:
    if a is None or b is None:
        return float("nan")
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return float(np.nanmean(d)) if np.isfinite(d).any() else float("nan")


def compare_stylized(real: np.ndarray, synthetic: np.ndarray, real_train: np.ndarray | None = None,
                     max_lag: int | None = None) -> StylizedResult:
    """Each fact as real (test period) value, synthetic value, |difference| and the train-vs-test baseline."""
    t = min(np.shape(real)[1], np.shape(synthetic)[1])
    max_lag = max(1, t // 4) if max_lag is None else min(max_lag, max(1, t // 4))
    fr = stylized_facts(real, max_lag)
    fs = stylized_facts(synthetic, max_lag)
    ft = stylized_facts(real_train, max_lag) if real_train is not None else {}
    rows = []
    for name, desc in FACTS.items():
        def val(v):
            return v.tolist() if isinstance(v, np.ndarray) else v
        rows.append(StylizedRow(name, desc, val(fr[name]), val(fs[name]), _diff(fr[name], fs[name]),
                                _diff(fr[name], ft.get(name))))
    return StylizedResult(rows, max_lag, fr, fs, ft)
