"""Calibration of conditional paths: do M sampled continuations of a real context cover what happened?

For K real test-period contexts a forecaster draws M continuations. For each horizon h the score
compares the M sampled values of a target with the realised one:
- `return`: the h-bar close log return from the context's last close;
- `realized_vol`: sqrt(Σ r²) of the first h one-bar close log returns (h ≥ 2).
Per (forecaster, target, h): CRPS (lower is better), the randomized PIT's histogram and its KS
distance to uniform (0 = calibrated), the coverage of the central 50 % and 90 % intervals (ideal
0.50 and 0.90) and the mean 90 % width (sharpness). Two reference forecasters need no training
beyond a fit on the train period: GARCH(1,1)-t filtered through each context, and a stationary
block bootstrap of the context's own returns (a historical-volatility band).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset, get_preset
from kronos_synth.data.schema import SYMBOL
from kronos_synth.data.splits import PERIODS, Windows, extract_windows, split_by_time
from kronos_synth.metrics.stats import repeat_seeds

TARGETS = ("return", "realized_vol")
LEVELS = (0.5, 0.9)
PIT_BINS = 10
#: a forecaster maps (windows of lookback + horizon real bars, lookback, M, seed) → (K, M, H) close paths;
#: it may only look at the first `lookback` bars (and the timestamps of the rest)
Forecaster = Callable[[Windows, int, int, int], np.ndarray]


class CalibrationInputError(InputError):
    """Data or settings the calibration evaluation cannot use."""


# ----------------------------------------------------------------------------------------------
# scores of an ensemble against one outcome


def crps_ensemble(samples: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of each row's empirical distribution: E|X − y| − ½ E|X − X'| ((K, M), (K,) → (K,)).

    E|X − X'| over all M² pairs is (2 / M²) Σ_i (2i − M − 1) x_(i) on the sorted samples."""
    x = np.sort(np.asarray(samples, np.float64), axis=1)
    m = x.shape[1]
    term1 = np.abs(x - np.asarray(y, np.float64)[:, None]).mean(axis=1)
    w = 2 * np.arange(1, m + 1) - m - 1
    return term1 - (x * w).sum(axis=1) / m ** 2


def pit_values(samples: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomized PIT of an ensemble: (#{x < y} + U·(#{x = y} + 1)) / (M + 1), uniform if calibrated."""
    x = np.asarray(samples, np.float64)
    y = np.asarray(y, np.float64)[:, None]
    below, ties = (x < y).sum(axis=1), (x == y).sum(axis=1)
    return (below + rng.random(len(x)) * (ties + 1)) / (x.shape[1] + 1)


def interval_coverage(samples: np.ndarray, y: np.ndarray, level: float) -> tuple[float, float]:
    """(share of outcomes inside the central `level` interval of their ensemble, mean interval width).

    Quantiles use plotting positions k / (M + 1) ("weibull"): an outcome exchangeable with the M samples
    then falls inside with probability `level` exactly, at any M (linear interpolation between the
    order statistics would make a calibrated 50-member ensemble cover ≈ 0.86, not 0.90)."""
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=1, method="weibull")
    y = np.asarray(y, np.float64)
    return float(np.mean((y >= lo) & (y <= hi))), float(np.mean(hi - lo))


@dataclass
class CalibrationRow:
    generator: str
    target: str
    horizon: int
    crps: float
    pit_ks: float
    coverage_50: float
    coverage_90: float
    width_90: float
    #: PIT histogram: share of outcomes per tenth (ideal 0.1 each)
    pit_hist: list[float] = field(default_factory=list)
    n_contexts: int = 0


def path_targets(paths: np.ndarray, last_close: np.ndarray, h: int) -> dict[str, np.ndarray]:
    """Targets at horizon h of close paths (..., H) that start after `last_close` (broadcast on the leading axes)."""
    lr = np.diff(np.log(np.concatenate([np.broadcast_to(last_close[..., None], paths.shape[:-1] + (1,)),
                                        paths], axis=-1)), axis=-1)
    out = {"return": lr[..., :h].sum(axis=-1)}
    if h >= 2:
        out["realized_vol"] = np.sqrt((lr[..., :h] ** 2).sum(axis=-1))
    return out


def score_paths(name: str, paths: np.ndarray, last_close: np.ndarray, real: np.ndarray, horizons: Sequence[int],
                seed: int) -> list[CalibrationRow]:
    """Rows of one forecaster: `paths` (K, M, H) sampled closes, `real` (K, H) realised closes."""
    rng = np.random.default_rng(seed)
    rows = []
    for h in horizons:
        sampled = path_targets(paths, last_close[:, None], h)
        realised = path_targets(real, last_close, h)
        for target in TARGETS:
            if target not in sampled:
                continue
            s, y = sampled[target], realised[target]
            ok = np.isfinite(s).all(axis=1) & np.isfinite(y)
            s, y = s[ok], y[ok]
            if len(y) == 0:
                continue
            pit = pit_values(s, y, rng)
            c50, _ = interval_coverage(s, y, 0.5)
            c90, w90 = interval_coverage(s, y, 0.9)
            hist = np.histogram(pit, bins=PIT_BINS, range=(0, 1))[0] / len(pit)
            rows.append(CalibrationRow(name, target, int(h), float(crps_ensemble(s, y).mean()),
                                       float(sps.kstest(pit, "uniform").statistic), c50, c90, w90,
                                       hist.round(4).tolist(), int(len(y))))
    return rows


# ----------------------------------------------------------------------------------------------
# contexts and the two reference forecasters


@dataclass
class CalibrationData:
    """K windows of lookback + horizon real bars from one period, and the train period before it."""

    windows: Windows
    lookback: int
    train: pd.DataFrame

    @property
    def horizon(self) -> int:
        return self.windows.length - self.lookback




def calibration_windows(klines: pd.DataFrame, preset: FrequencyPreset, lookback: int, horizon: int, *,
                        n_contexts: int, test_fraction: float = 0.2, period: str = "test") -> CalibrationData:
    """Clean and split as generation does (gap = lookback + horizon), then take `n_contexts` windows of
    lookback + horizon bars evenly spaced over the test period (all when fewer exist).

    `period="validation"`: the train period is split once more the same way and its last part gives the
    windows (for choosing a setting without looking at the test period); `train` is then the part before."""
    if period not in PERIODS:
        raise CalibrationInputError(f"period must be one of {', '.join(PERIODS)}, got {period!r}", param="period")
    frame = clean_klines(klines, preset.name).frame
    train, test = split_by_time(frame, test_fraction=test_fraction, gap=lookback + horizon)
    if period == "validation":
        train, test = split_by_time(train, test_fraction=test_fraction, gap=lookback + horizon)
    windows = extract_windows(test, lookback + horizon, regime_lookback=lookback)
    if len(windows) < 2:
        raise CalibrationInputError(
            f"the {period} period has {len(windows)} windows of lookback {lookback} + horizon {horizon} bars — "
            "use a longer history, a larger test_fraction or a shorter lookback", param="lookback")
    take = np.unique(np.linspace(0, len(windows) - 1, min(n_contexts, len(windows))).round().astype(int))
    return CalibrationData(windows.take(take), lookback, train)


def _close_returns(closes: np.ndarray) -> np.ndarray:
    return np.diff(np.log(np.asarray(closes, np.float64)), axis=-1)


class GarchForecaster:
    """GARCH(1,1) with Student-t innovations and a constant mean, fitted (`arch`) on each symbol's
    train-period close log returns; each context's returns are filtered from the unconditional
    variance to get the variance of the next bar, then M paths are simulated."""

    name = "garch"

    def __init__(self, train: pd.DataFrame) -> None:
        from arch import arch_model

        self.params: dict[str, dict[str, float]] = {}
        for sym, g in train.groupby(SYMBOL, sort=True):
            r = _close_returns(g["close"].to_numpy())
            r = r[np.isfinite(r)]
            if len(r) < 100:
                raise CalibrationInputError(f"symbol {sym}: {len(r)} train-period returns — GARCH needs 100 or "
                                            "more; use a longer history", param="data")
            scale = float(r.std()) or 1.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence chatter; the fit is checked below
                res = arch_model(r / scale, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
            p = res.params
            alpha, beta = float(p["alpha[1]"]), float(p["beta[1]"])
            self.params[str(sym)] = {"scale": scale, "mu": float(p["mu"]), "omega": float(p["omega"]),
                                     "alpha": alpha, "beta": beta, "nu": max(2.05, float(p["nu"]))}

    def describe(self) -> dict:
        return {"model": "GARCH(1,1)-t, constant mean, fitted per symbol on the train period", "params": self.params}

    def __call__(self, windows: Windows, lookback: int, samples: int, seed: int) -> np.ndarray:
        horizon = windows.length - lookback
        out = np.empty((len(windows), samples, horizon))
        for k in range(len(windows)):
            p = self.params.get(str(windows.symbols[k]))
            if p is None:
                raise CalibrationInputError(f"symbol {windows.symbols[k]} has no train period to fit GARCH on")
            rng = np.random.default_rng(repeat_seeds(seed, 1)[0] + k)
            eps = _close_returns(windows.values[k, :lookback, 3]) / p["scale"] - p["mu"]
            persistence = p["alpha"] + p["beta"]
            var = p["omega"] / (1 - persistence) if persistence < 1 else float(np.var(eps))
            for e in eps:
                var = p["omega"] + p["alpha"] * e * e + p["beta"] * var
            var = np.full(samples, var)
            nu = p["nu"]
            z = rng.standard_t(nu, size=(samples, horizon)) * np.sqrt((nu - 2) / nu)
            r = np.empty((samples, horizon))
            for t in range(horizon):
                e = np.sqrt(var) * z[:, t]
                r[:, t] = p["mu"] + e
                var = p["omega"] + p["alpha"] * e * e + p["beta"] * var
            out[k] = windows.values[k, lookback - 1, 3] * np.exp(np.cumsum(r * p["scale"], axis=1))
        return out


class BootstrapForecaster:
    """Stationary block bootstrap (Politis & Romano 1994) of the context's own one-bar close log returns,
    mean block length `block` (default L^(1/3)): the historical-volatility band of the context."""

    name = "bootstrap"

    def __init__(self, block: float | None = None) -> None:
        self.block = block

    def describe(self) -> dict:
        return {"model": "stationary block bootstrap of the context's returns",
                "mean_block": self.block or "lookback^(1/3)"}

    def __call__(self, windows: Windows, lookback: int, samples: int, seed: int) -> np.ndarray:
        horizon = windows.length - lookback
        r = _close_returns(windows.values[:, :lookback, 3])  # (K, L − 1)
        n = r.shape[1]
        block = float(self.block or max(1.0, n ** (1 / 3)))
        rng = np.random.default_rng(repeat_seeds(seed, 1)[0])
        k = len(windows)
        idx = np.empty((k, samples, horizon), np.int64)
        idx[..., 0] = rng.integers(0, n, (k, samples))
        jump = rng.random((k, samples, horizon)) < 1 / block
        fresh = rng.integers(0, n, (k, samples, horizon))
        for t in range(1, horizon):
            idx[..., t] = np.where(jump[..., t], fresh[..., t], (idx[..., t - 1] + 1) % n)
        paths = np.take_along_axis(r[:, None, :].repeat(samples, 1), idx, axis=2)
        return windows.values[:, lookback - 1, 3][:, None, None] * np.exp(np.cumsum(paths, axis=2))


# ----------------------------------------------------------------------------------------------
# the evaluation


@dataclass
class CalibrationResult:
    settings: dict
    rows: list[CalibrationRow]
    generators: dict[str, dict]
    data: dict
    notes: list[str] = field(default_factory=list)

    def row(self, generator: str, target: str, horizon: int) -> CalibrationRow:
        return next(r for r in self.rows if (r.generator, r.target, r.horizon) == (generator, target, horizon))

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {"settings": self.settings, "rows": [asdict(r) for r in self.rows], "generators": self.generators,
                "data": self.data, "notes": self.notes}


def default_horizons(horizon: int) -> list[int]:
    return sorted({h for h in (1, 5, horizon) if h <= horizon})


def evaluate_calibration(klines: pd.DataFrame, forecasters: Mapping[str, Forecaster], *, freq: str,
                         lookback: int | None = None, horizon: int | None = None, n_contexts: int = 200,
                         samples: int = 50, horizons: Sequence[int] | None = None, seed: int = 0,
                         test_fraction: float = 0.2, references: Sequence[str] = ("garch", "bootstrap"),
                         period: str = "test", log: Callable[[str], object] | None = None) -> CalibrationResult:
    """Draw `samples` continuations of `n_contexts` real test-period contexts from every forecaster (the given
    ones, e.g. a `KronosForecaster`, and the `references`) and score them (module doc)."""
    preset = get_preset(freq)
    lookback, horizon = int(lookback or preset.lookback), int(horizon or preset.horizon)
    if samples < 2:
        raise CalibrationInputError(f"samples must be ≥ 2 (50 or more for a usable PIT), got {samples}",
                                    param="samples")
    hs = sorted(set(int(h) for h in horizons)) if horizons else default_horizons(horizon)
    if hs[0] < 1 or hs[-1] > horizon:
        raise CalibrationInputError(f"horizons must be between 1 and the horizon {horizon}, got {hs}",
                                    param="horizons")
    unknown = set(references) - {"garch", "bootstrap"}
    if unknown:
        raise CalibrationInputError(f"unknown reference forecaster(s) {sorted(unknown)} — choose garch, bootstrap",
                                    param="references")
    data = calibration_windows(klines, preset, lookback, horizon, n_contexts=n_contexts, test_fraction=test_fraction,
                               period=period)
    all_f: dict[str, Forecaster] = dict(forecasters)
    if "garch" in references:
        all_f["garch"] = GarchForecaster(data.train)
    if "bootstrap" in references:
        all_f["bootstrap"] = BootstrapForecaster()
    w = data.windows
    last_close, real = w.values[:, lookback - 1, 3], w.values[:, lookback:, 3]
    s_sample, s_score = repeat_seeds(seed, 2)
    rows: list[CalibrationRow] = []
    described = {}
    for name, f in all_f.items():
        if log:
            log(f"calibration: {name} — {samples} paths × {len(w)} contexts")
        paths = np.asarray(f(w, lookback, samples, s_sample), np.float64)
        if paths.shape != (len(w), samples, horizon):
            raise ValueError(f"forecaster {name} returned {paths.shape}, expected {(len(w), samples, horizon)}")
        rows += score_paths(name, paths, last_close, real, hs, s_score)
        described[name] = f.describe() if hasattr(f, "describe") else {}
    settings = {"freq": preset.name, "lookback": lookback, "horizon": horizon, "horizons": hs,
                "n_contexts_requested": n_contexts, "samples": samples, "seed": seed, "test_fraction": test_fraction,
                "period": period,
                "contexts": f"evenly spaced windows of the {period} period (split as generation splits: gap = "
                            "lookback + horizon)", "targets": list(TARGETS), "levels": list(LEVELS)}
    spans = w.spans()
    summary = {"n_contexts": len(w), "symbols": sorted({str(s) for s in w.symbols}),
               "first_context_end": str(pd.Timestamp(w.timestamps[:, lookback - 1].min())),
               "last_outcome": str(pd.Timestamp(int(spans[:, 1].max())))}
    notes = []
    if samples < 50:
        notes.append(f"{samples} samples per context: PIT and interval edges are coarse (use 50 or more)")
    return CalibrationResult(settings, rows, described, summary, notes)


def summary_lines(result: CalibrationResult) -> list[str]:
    """One line per forecaster: the h = H return's CRPS, PIT-KS and 90 % coverage."""
    h = result.settings["horizon"]
    lines = []
    for name in result.generators:
        r = result.row(name, "return", h)
        lines.append(f"{name}: {h}-bar return CRPS {r.crps:.5f}, PIT-KS {r.pit_ks:.3f}, "
                     f"coverage 50 % {r.coverage_50:.2f}, 90 % {r.coverage_90:.2f}")
    return lines + [f"note: {n}" for n in result.notes]


# ----------------------------------------------------------------------------------------------
# choosing the per-path temperature spread

SPREAD_GRID = (0.0, 0.15, 0.3, 0.45, 0.6)


@dataclass
class SpreadChoice:
    """The chosen spread and, per candidate, its validation scores at the horizon."""

    spread: float
    rows: list[dict]
    n_contexts: int
    label: str = "temperature spread"

    def line(self) -> str:
        scores = ", ".join(f"{r['spread']:g}: {r['vol_crps']:.5f}" for r in self.rows)
        return (f"{self.label} {self.spread:g}: lowest realised-volatility CRPS on {self.n_contexts} validation "
                f"contexts ({scores})")


def choose_spread(klines: pd.DataFrame, forecaster_at: Callable[[float], Forecaster], *, freq: str,
                  lookback: int | None = None, horizon: int | None = None, grid: Sequence[float] = SPREAD_GRID,
                  n_contexts: int = 100, samples: int = 50, seed: int = 0, test_fraction: float = 0.2,
                  label: str = "temperature spread") -> SpreadChoice:
    """The per-path spread (the temperature's, `generate/sampler.py` path_temperatures, or the volatility
    scale's, path_volatility_scales) whose sampled continuations of VALIDATION contexts (the tail of the train
    period; the test period is never looked at) score the lowest CRPS of the horizon's realised volatility — a
    proper score of exactly what the spread changes.

    `forecaster_at(spread)` → a forecaster sampling at that spread (e.g. a `KronosForecaster`). Every candidate
    draws with the same seed, so the candidates differ by their spread, not by their random numbers."""
    if not grid or min(grid) < 0:
        raise CalibrationInputError(f"spread candidates must be ≥ 0, got {list(grid)}", param="grid")
    rows, n = [], 0
    for s in sorted(set(float(g) for g in grid)):
        res = evaluate_calibration(klines, {"kronos": forecaster_at(s)}, freq=freq, lookback=lookback, horizon=horizon,
                                   n_contexts=n_contexts, samples=samples, horizons=[horizon or get_preset(freq).horizon],
                                   seed=seed, test_fraction=test_fraction, references=(), period="validation")
        h = res.settings["horizon"]
        vol, ret = res.row("kronos", "realized_vol", h), res.row("kronos", "return", h)
        rows.append({"spread": s, "vol_crps": vol.crps, "vol_coverage_50": vol.coverage_50,
                     "vol_coverage_90": vol.coverage_90, "vol_pit_ks": vol.pit_ks, "return_crps": ret.crps,
                     "return_coverage_90": ret.coverage_90})
        n = vol.n_contexts
    best = min(rows, key=lambda r: (r["vol_crps"], r["spread"]))
    return SpreadChoice(best["spread"], rows, n, label)
