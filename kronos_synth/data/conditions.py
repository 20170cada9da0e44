"""Scenario conditions: which windows (a real context and what follows it) a user asks for.

A condition is a target on the continuation (its realised volatility, its return, its drawdown) or on
the context (a named regime: the context's own volatility or return). Quantile bands are quantiles of
the same statistic over every real window of the split, so `volatility:0.9-1` means "at least as
volatile as the 10 % most volatile real continuations" and resolves to an absolute threshold, which
the synthetic paths are then held to.

    volatility:Q1-Q2   realised volatility (std of close log returns, context's last close first)
    return:Q1-Q2       horizon return  close[H−1] / last context close − 1   (alias trend:)
    drawdown:X         maximum drawdown of the continuation of at least X (a fraction, or X%)
    regime:NAME        the context's regime: high-vol, low-vol (top / bottom decile of the context's
                       volatility), bull, bear (top / bottom decile of the context's return)
    context-volatility:Q1-Q2, context-return:Q1-Q2   the general forms of the regimes
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.splits import Windows, extract_windows, split_part

#: statistics of the continuation (checked on every generated path) and of the context (chosen contexts)
PATH_STATS = ("volatility", "return", "drawdown")
CONTEXT_STATS = ("context-volatility", "context-return")
ALIASES = {"vol": "volatility", "trend": "return", "context-vol": "context-volatility"}
REGIMES = {
    "high-vol": ("context-volatility", 0.9, 1.0),
    "low-vol": ("context-volatility", 0.0, 0.1),
    "bull": ("context-return", 0.9, 1.0),
    "bear": ("context-return", 0.0, 0.1),
}
SCENARIOS = {"stress": "regime:high-vol"}  # --scenario NAME → the condition it stands for


def _bad(text: str, why: str) -> InputError:
    return InputError(f"condition {text!r}: {why} — write e.g. volatility:0.9-1, return:0-0.1, drawdown:0.1 or "
                      f"regime:{'|'.join(REGIMES)}", param="condition")


@dataclass(frozen=True)
class Condition:
    """A parsed condition: statistic `stat`, quantile band [low, high] or, for drawdown, a level."""

    spec: str
    stat: str
    low: float = 0.0
    high: float = 1.0
    level: float | None = None  # drawdown: at least this fraction

    @property
    def on_path(self) -> bool:
        """True when generated paths are checked (rejection); False for context regimes (selection only)."""
        return self.stat in PATH_STATS


def parse_condition(text: str) -> Condition:
    """'volatility:0.9-1' → Condition; one clear InputError for anything else."""
    spec = str(text).strip()
    if ":" not in spec:
        raise _bad(spec, "expected STAT:VALUE")
    stat, value = (s.strip().lower() for s in spec.split(":", 1))
    stat = ALIASES.get(stat, stat)
    if stat == "regime":
        if value not in REGIMES:
            raise _bad(spec, f"unknown regime {value!r} (known: {', '.join(REGIMES)})")
        name, low, high = REGIMES[value]
        return Condition(spec, name, low, high)
    if stat == "drawdown":
        m = re.fullmatch(r"([0-9.]+)\s*(%?)", value)
        level = float(m.group(1)) / (100.0 if m.group(2) else 1.0) if m else float("nan")
        if not 0.0 < level < 1.0:
            raise _bad(spec, "a drawdown level must be a fraction between 0 and 1 (or a percentage below 100%)")
        return Condition(spec, "drawdown", level=level)
    if stat not in PATH_STATS + CONTEXT_STATS:
        raise _bad(spec, f"unknown statistic {stat!r}")
    m = re.fullmatch(r"([0-9.]+)\s*-\s*([0-9.]+)", value)
    if m is None:
        raise _bad(spec, "a quantile band is LOW-HIGH with 0 ≤ LOW < HIGH ≤ 1")
    low, high = float(m.group(1)), float(m.group(2))
    if not 0.0 <= low < high <= 1.0:
        raise _bad(spec, f"the band {low:g}-{high:g} is empty or outside 0-1 (need 0 ≤ LOW < HIGH ≤ 1)")
    return Condition(spec, stat, low, high)


def path_statistics(last_close: np.ndarray, bars: np.ndarray) -> dict[str, np.ndarray]:
    """Continuations (n, H, 6) after contexts ending at `last_close` (n,) → return, volatility, drawdown (n,).

    The path starts at the context's last close, so the first bar's move counts. Drawdown is positive
    (0.1 = the path fell 10 % below its running peak)."""
    close = np.asarray(bars, np.float64)[..., 3]
    path = np.concatenate([np.asarray(last_close, np.float64)[:, None], close], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        peak = np.maximum.accumulate(path, axis=1)
        return {"return": close[:, -1] / path[:, 0] - 1.0,
                "volatility": np.diff(np.log(path), axis=1).std(axis=1),
                "drawdown": -(path / peak - 1.0).min(axis=1)}


def context_statistics(context: np.ndarray) -> dict[str, np.ndarray]:
    """Contexts (n, L, 6) → their own volatility and return (n,) (the regime statistics)."""
    close = np.asarray(context, np.float64)[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"context-volatility": np.diff(np.log(close), axis=1).std(axis=1),
                "context-return": close[:, -1] / close[:, 0] - 1.0}


@dataclass(frozen=True)
class ResolvedCondition:
    """A condition with absolute thresholds: `stat` within [lower, upper] (either may be infinite)."""

    condition: Condition
    lower: float
    upper: float

    def met(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, np.float64)
        return np.isfinite(v) & (v >= self.lower) & (v <= self.upper)

    def path_met(self, last_close: np.ndarray, bars: np.ndarray) -> np.ndarray:
        """(n,) bool: which continuations meet a path condition (all of them for a context regime)."""
        if not self.condition.on_path:
            return np.ones(len(bars), dtype=bool)
        return self.met(path_statistics(last_close, bars)[self.condition.stat])

    def distance(self, last_close: np.ndarray, bars: np.ndarray) -> np.ndarray:
        """(n,) how far each continuation's statistic lies outside the band (0 inside)."""
        if not self.condition.on_path:
            return np.zeros(len(bars))
        v = np.nan_to_num(path_statistics(last_close, bars)[self.condition.stat], nan=np.inf)
        return np.maximum(self.lower - v, 0.0) + np.maximum(v - self.upper, 0.0)

    def describe(self) -> str:
        c = self.condition
        if c.stat == "drawdown":
            return f"drawdown ≥ {c.level:.1%}"
        lo = "−∞" if not np.isfinite(self.lower) else f"{self.lower:.5g}"
        hi = "∞" if not np.isfinite(self.upper) else f"{self.upper:.5g}"
        return f"{c.stat} in [{lo}, {hi}] (real quantiles {c.low:g}–{c.high:g})"

    def to_dict(self) -> dict:
        return {"spec": self.condition.spec, "statistic": self.condition.stat, "quantile_low": self.condition.low,
                "quantile_high": self.condition.high, "level": self.condition.level,
                "lower": self.lower if np.isfinite(self.lower) else None,
                "upper": self.upper if np.isfinite(self.upper) else None, "description": self.describe()}


def window_statistics(windows: Windows, lookback: int) -> dict[str, np.ndarray]:
    """Windows of lookback + horizon bars → every statistic a condition can name, (N,) each."""
    ctx, fut = windows.values[:, :lookback], windows.values[:, lookback:]
    return {**path_statistics(ctx[:, -1, 3], fut), **context_statistics(ctx)}


def resolve_condition(condition: Condition, stats: dict[str, np.ndarray]) -> ResolvedCondition:
    """Turn quantile bands into absolute thresholds over the real windows' statistic."""
    if condition.stat == "drawdown":
        return ResolvedCondition(condition, float(condition.level), np.inf)
    v = stats[condition.stat]
    v = v[np.isfinite(v)]
    lower = -np.inf if condition.low <= 0 else float(np.quantile(v, condition.low))
    upper = np.inf if condition.high >= 1 else float(np.quantile(v, condition.high))
    return ResolvedCondition(condition, lower, upper)


@dataclass
class ConditionedWindows:
    """Real windows (context + continuation) of a split, and which of them meet the condition."""

    windows: Windows  # (N, L + H, 6)
    lookback: int
    resolved: ResolvedCondition
    mask: np.ndarray  # (N,) bool

    @property
    def matching(self) -> Windows:
        return self.windows.take(np.flatnonzero(self.mask))

    def continuations(self) -> np.ndarray:
        """The real continuations (M, H, 6) that meet the condition: the set conditioned output is compared to."""
        return self.windows.values[self.mask, self.lookback:]


def conditioned_windows(klines: pd.DataFrame, freq: str, lookback: int, horizon: int, condition: Condition, *,
                        split: str = "train", test_fraction: float = 0.2, source: str = "data") -> ConditionedWindows:
    """Every real window of the split (cleaned, stride 1) and the mask of those that meet `condition`.

    Raises InputError when no real window meets it (nothing to learn the scenario from)."""
    frame = clean_klines(klines, freq).frame
    frame = split_part(frame, split, test_fraction=test_fraction, gap=lookback + horizon)
    windows = extract_windows(frame, lookback + horizon, stride=1, regime_lookback=lookback)
    if len(windows) == 0:
        raise InputError(f"{source}: no clean stretch of the {split} split holds a context and its continuation "
                         f"({lookback} + {horizon} bars) — use more data or shorter windows", param="condition")
    stats = window_statistics(windows, lookback)
    resolved = resolve_condition(condition, stats)
    mask = resolved.met(stats[condition.stat])
    if not mask.any():
        v = stats[condition.stat][np.isfinite(stats[condition.stat])]
        raise InputError(f"condition {condition.spec!r}: no real window of {source} ({split} split, {len(windows)} "
                         f"windows) meets it (largest {condition.stat}: {v.max():.4g}) — loosen the condition",
                         param="condition")
    return ConditionedWindows(windows, lookback, resolved, mask)
