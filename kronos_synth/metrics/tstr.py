"""Usefulness: train a forecaster on one set of windows, score it on real test windows (docs/protocol.md §4).

TSTR trains on synthetic sequences, TRTR on the same number of real train-period windows. Inputs are raw
bars (n, T, 6) with T ≥ lookback + horizon (the first lookback + horizon bars are used); each window is
normalized with its lookback part's statistics (§2 rules), so targets never leak into the scaling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import rankdata
from torch.nn import functional as F
from tqdm.auto import tqdm

from kronos_synth.metrics._nets import LastStateRNN, fit_epochs, predict
from kronos_synth.metrics.features import is_volume_free, normalize_sequences
from kronos_synth.metrics.stats import Estimate, estimate, repeat_seeds, seeded_torch, torch_threads


@dataclass
class ForecastRun:
    seed: int
    price_ic: float
    price_rank_ic: float
    return_ic: float
    return_rank_ic: float
    mse: float
    n_train: int
    n_test: int


@dataclass
class ForecastResult:
    """IC / RankIC of predicted price paths and of K-step close returns, mean ± 95 % t-interval."""

    train_on: str
    price_ic: Estimate
    price_rank_ic: Estimate
    return_ic: Estimate
    return_rank_ic: Estimate
    mse: Estimate
    runs: list[ForecastRun] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"train_on": self.train_on}
        for k in ("price_ic", "price_rank_ic", "return_ic", "return_rank_ic", "mse"):
            out[k] = getattr(self, k).to_dict()
        out["runs"] = [asdict(r) for r in self.runs]
        out["settings"] = self.settings
        return out


def _rowwise_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation along the last axis; NaN where either side is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / np.where(den > 0, den, 1.0), np.nan)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(_rowwise_corr(a[None], b[None])[0])


def ic_scores(pred_norm: np.ndarray, bars: np.ndarray, lookback: int) -> dict[str, float]:
    """Price-series and return IC/RankIC of normalized predictions (n, K, F) against raw windows (n, L+K, 6)."""
    horizon = pred_norm.shape[1]
    prices = bars[:, :lookback, :4]
    mean = prices.mean(axis=(1, 2))
    std = np.maximum(prices.std(axis=(1, 2)), 1e-8)
    true = bars[:, lookback:lookback + horizon, :4]                     # (n, K, 4)
    pred = pred_norm[..., :4] * std[:, None, None] + mean[:, None, None]  # back to price units
    # Pearson is affine-invariant per window, so prices vs de-normalized predictions is the paper's IC.
    pt, tt = np.moveaxis(pred, 1, -1), np.moveaxis(true, 1, -1)          # (n, 4, K)
    price_ic = float(np.nanmean(_rowwise_corr(pt, tt)))
    price_ric = float(np.nanmean(_rowwise_corr(rankdata(pt, axis=-1), rankdata(tt, axis=-1))))
    last = bars[:, lookback - 1, 3]
    r_pred = pred[:, -1, 3] / last - 1
    r_true = true[:, -1, 3] / last - 1
    return {"price_ic": price_ic, "price_rank_ic": price_ric, "return_ic": _corr(r_pred, r_true),
            "return_rank_ic": _corr(rankdata(r_pred), rankdata(r_true))}


def _windows(bars: np.ndarray, lookback: int, horizon: int, include_volume: bool, name: str):
    bars = np.asarray(bars, dtype=np.float64)
    if bars.ndim != 3 or bars.shape[1] < lookback + horizon:
        raise ValueError(f"{name}: need (n, ≥{lookback + horizon}, 6) bars, got {bars.shape}")
    bars = bars[:, :lookback + horizon]
    x = normalize_sequences(bars, include_volume=include_volume, stats_steps=lookback).astype(np.float32)
    return bars, x[:, :lookback], x[:, lookback:]


def forecast_score(train: np.ndarray, test: np.ndarray, *, lookback: int, horizon: int, train_on: str = "",
                   repeats: int = 5, seed: int = 0, n_train: int | None = None, n_test: int | None = 3000,
                   epochs: int = 20, include_volume: bool | None = None, threads: int | None = None,
                   progress: bool = False) -> ForecastResult:
    """Fit the §4 forecaster (2-layer LSTM(64) → K×F, MSE, Adam 1e-3, batch 64) on `train` windows and
    score IC/RankIC on `test` windows, `repeats` times with fresh seeds.

    Per repeat, up to `n_train` training and `n_test` test windows are drawn without replacement.
    """
    if include_volume is None:
        include_volume = not (is_volume_free(train) or is_volume_free(test))
    tr_bars, tr_x, tr_y = _windows(train, lookback, horizon, include_volume, "train")
    te_bars, te_x, te_y = _windows(test, lookback, horizon, include_volume, "test")
    n_feat = tr_x.shape[-1]
    seeds = repeat_seeds(seed, repeats)
    runs = []
    with torch_threads(threads):
        for s in tqdm(seeds, desc=f"forecast ({train_on or 'train'})", disable=not progress, leave=False):
            rng = np.random.default_rng(s)
            itr = rng.permutation(len(tr_x))[:n_train]
            ite = rng.permutation(len(te_x))[:n_test] if n_test else np.arange(len(te_x))
            with seeded_torch(s) as gen:
                model = LastStateRNN(n_feat, 64, horizon * n_feat, cell="lstm", layers=2)
                fit_epochs(model, tr_x[itr], tr_y[itr].reshape(len(itr), -1), F.mse_loss, epochs=epochs,
                           batch_size=64, lr=1e-3, generator=gen)
            pred = predict(model, te_x[ite]).reshape(len(ite), horizon, n_feat)
            sc = ic_scores(pred, te_bars[ite], lookback)
            mse = float(np.mean((pred - te_y[ite]) ** 2))
            runs.append(ForecastRun(s, mse=mse, n_train=len(itr), n_test=len(ite), **sc))
    settings = {"model": "2-layer LSTM(hidden=64) + linear on last hidden state → K×F", "loss": "MSE",
                "optimizer": "Adam", "lr": 1e-3, "batch_size": 64, "epochs": epochs, "lookback": lookback,
                "horizon": horizon, "n_features": n_feat, "include_volume": include_volume,
                "normalization": "per window, lookback statistics (§2 rules), clip ±5",
                "repeats": repeats, "seed": seed, "repeat_seeds": seeds, "n_train_requested": n_train,
                "n_test_requested": n_test, "n_train_available": int(len(tr_x)), "n_test_available": int(len(te_x))}
    return ForecastResult(train_on, *(estimate([getattr(r, k) for r in runs]) for k in
                                      ("price_ic", "price_rank_ic", "return_ic", "return_rank_ic", "mse")),
                          runs, settings)


def tstr_score(synthetic: np.ndarray, real_test: np.ndarray, *, lookback: int, horizon: int,
               **kwargs) -> ForecastResult:
    """Train on synthetic, test on real."""
    return forecast_score(synthetic, real_test, lookback=lookback, horizon=horizon, train_on="synthetic (TSTR)",
                          **kwargs)


def trtr_score(real_train: np.ndarray, real_test: np.ndarray, *, lookback: int, horizon: int,
               **kwargs) -> ForecastResult:
    """Train on real train-period windows, test on real: the reference TSTR is compared with."""
    return forecast_score(real_train, real_test, lookback=lookback, horizon=horizon,
                          train_on="real train period (TRTR)", **kwargs)
