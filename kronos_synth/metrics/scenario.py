"""Scenario reports: a conditioned synthetic set against the real windows that meet the same condition,
and the stress pack's tail risk (VaR / ES of the horizon return) against history and GARCH.

The comparison set is what really followed the real contexts of the run's split that meet the
condition (`data.conditions.conditioned_windows`) — the distribution a conditioned generator should
reproduce — not the unconditional test period.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.conditions import (
    ConditionedWindows,
    conditioned_windows,
    parse_condition,
    path_statistics,
)
from kronos_synth.data.errors import InputError
from kronos_synth.data.splits import split_by_time
from kronos_synth.data.synthetic import SyntheticDataset, read_synthetic
from kronos_synth.metrics.discriminative import discriminative_score
from kronos_synth.metrics.features import prepare_features
from kronos_synth.metrics.forecast_calibration import GarchForecaster
from kronos_synth.metrics.stylized import log_returns

QUANTILES = (0.05, 0.5, 0.95)
TAIL_LEVELS = (0.01, 0.05)


def var_es(returns: np.ndarray, level: float) -> tuple[float, float]:
    """Value at risk and expected shortfall of a return sample at `level` (0.01: the 1 % tail), as positive
    losses: VaR = −q_level, ES = −mean of the returns at or below q_level."""
    r = np.asarray(returns, np.float64)
    r = r[np.isfinite(r)]
    q = float(np.quantile(r, level))
    return -q, -float(r[r <= q].mean())


def es_ratio_interval(generated: np.ndarray, groups: np.ndarray, historical: np.ndarray, *, block: int,
                      level: float = 0.01, n_boot: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval of ES(generated) / ES(historical) at `level`.

    Generated returns are resampled by context (`groups`: sequences continuing one context move together);
    historical returns, in time order, by moving blocks of `block` windows: overlapping windows one horizon
    apart share no bars, so a block of `block` keeps their dependence and the interval is not falsely narrow.
    """
    rng = np.random.default_rng(seed)
    gen, hist = np.asarray(generated, np.float64), np.asarray(historical, np.float64)
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    block = int(min(max(block, 1), len(hist)))
    n_blocks = -(-len(hist) // block)
    ratios = np.empty(n_boot)
    for b in range(n_boot):
        g = gen[np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])]
        starts = rng.integers(0, len(hist) - block + 1, n_blocks)
        h = hist[(starts[:, None] + np.arange(block)[None, :]).reshape(-1)[:len(hist)]]
        ratios[b] = var_es(g, level)[1] / var_es(h, level)[1]
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(ratios, [tail, 1 - tail])
    return float(lo), float(hi)


def _summary(bars: np.ndarray, last_close: np.ndarray) -> dict[str, Any]:
    st = path_statistics(last_close, bars)
    r = log_returns(bars).reshape(-1)
    r = r[np.isfinite(r)]
    kurt = float(((r - r.mean()) ** 4).mean() / r.var() ** 2 - 3) if r.var() > 0 else float("nan")
    out: dict[str, Any] = {f"{k}_q{int(100 * q):02d}": float(np.nanquantile(v, q)) for k, v in st.items() for q in QUANTILES}
    out.update(bar_return_std=float(r.std()), bar_return_excess_kurtosis=kurt, n=int(len(bars)))
    return out


@dataclass
class ScenarioReport:
    """A conditioned set against the real windows meeting its condition."""

    condition: dict[str, Any]
    hit_rate: float  # share of the synthetic sequences that meet the condition (recomputed from the bars)
    n_synthetic: int
    n_real: int  # real windows (stride 1) meeting the condition
    synthetic: dict[str, Any]
    real: dict[str, Any]
    discriminative: dict[str, Any] | None = None
    stress: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"against the {self.n_real} real windows meeting {self.condition['description']}: hit rate "
               f"{100 * self.hit_rate:.1f} % of {self.n_synthetic}"]
        if self.discriminative is not None:
            e = self.discriminative["error"]
            hw = e.get("half_width")
            pm = f" ± {hw:.3f}" if hw is not None and np.isfinite(hw) else " (one repeat)"
            out.append(f"discriminative error {e['mean']:.3f}{pm} (0.5 = indistinguishable)")
        for key in ("return", "volatility", "drawdown"):
            s, r = self.synthetic, self.real
            out.append(f"{key:10s} q05/q50/q95 synthetic {s[f'{key}_q05']:+.4f} {s[f'{key}_q50']:+.4f} "
                       f"{s[f'{key}_q95']:+.4f} | real {r[f'{key}_q05']:+.4f} {r[f'{key}_q50']:+.4f} {r[f'{key}_q95']:+.4f}")
        out.append(f"bar returns: std {self.synthetic['bar_return_std']:.5f} vs {self.real['bar_return_std']:.5f}, "
                   f"excess kurtosis {self.synthetic['bar_return_excess_kurtosis']:.2f} vs "
                   f"{self.real['bar_return_excess_kurtosis']:.2f}")
        if self.stress is not None:
            for row in self.stress["rows"]:
                out.append(f"{row['set']:34s} " + "  ".join(
                    f"VaR{int(100 * lv)} {row[f'var_{int(100 * lv)}']:.4f} ES{int(100 * lv)} {row[f'es_{int(100 * lv)}']:.4f}"
                    for lv in TAIL_LEVELS))
            lo, hi = self.stress.get("es1_ratio_interval", (float("nan"), float("nan")))
            out.append(f"generated 1 % ES / historical: {self.stress['es1_ratio_to_historical']:.2f} "
                       f"(95 % bootstrap interval {lo:.2f}–{hi:.2f})")
        return out


def _first_bars(ds: SyntheticDataset) -> pd.DataFrame:
    """Each sequence's first generated row (symbol, context end), in sequence order."""
    return ds.generated().drop_duplicates("sequence_id").sort_values("sequence_id")


def context_last_closes(ds: SyntheticDataset, cw: ConditionedWindows) -> np.ndarray:
    """The last real close before each synthetic sequence, found by (symbol, context end)."""
    first = _first_bars(ds)
    w = cw.windows
    where = {(s, t): i for i, (s, t) in enumerate(zip(w.symbols, w.timestamps[:, cw.lookback - 1], strict=True))}
    idx = [where.get((str(s), np.datetime64(t, "ns")), -1) for s, t in zip(first["symbol"], first["context_end"],
                                                                             strict=True)]
    if min(idx) < 0:
        raise InputError(f"{ds.path}: some sequences continue contexts that are not windows of the real data given "
                         "— pass the data the run was generated from", param="real")
    return w.values[np.asarray(idx), cw.lookback - 1, 3]


def stress_tail(synthetic: np.ndarray, synthetic_last: np.ndarray, cw: ConditionedWindows, train: pd.DataFrame, *,
                garch_contexts: int = 200, garch_samples: int = 50, seed: int = 0,
                synthetic_groups: np.ndarray | None = None) -> dict[str, Any]:
    """VaR / ES of the horizon return: generated, the real continuations of the stressed contexts
    (historical), and GARCH(1,1)-t simulated from the same contexts (fitted on `train`), with a bootstrap
    interval of the generated / historical 1 % ES ratio (`es_ratio_interval`; `synthetic_groups`: the
    context of each sequence, default one context per sequence)."""
    matching = cw.matching
    real_r = path_statistics(matching.values[:, cw.lookback - 1, 3], matching.values[:, cw.lookback:])["return"]
    syn_r = path_statistics(synthetic_last, synthetic)["return"]
    groups = np.arange(len(syn_r)) if synthetic_groups is None else np.asarray(synthetic_groups)
    order = np.lexsort((matching.timestamps[:, cw.lookback - 1], matching.symbols))  # per symbol, in time
    ok_s, ok_r = np.isfinite(syn_r), np.isfinite(real_r[order])
    horizon = matching.values.shape[1] - cw.lookback
    n_boot = 1000
    interval = es_ratio_interval(syn_r[ok_s], groups[ok_s], real_r[order][ok_r], block=horizon, seed=seed,
                                 n_boot=n_boot)
    take = np.unique(np.linspace(0, len(matching) - 1, min(garch_contexts, len(matching))).round().astype(int))
    sub = matching.take(take)
    paths = GarchForecaster(train)(sub, cw.lookback, garch_samples, seed)  # (K, M, H) closes
    garch_r = (paths[..., -1] / sub.values[:, cw.lookback - 1, 3][:, None] - 1).reshape(-1)
    rows = []
    for name, r in (("generated", syn_r), ("historical (real continuations)", real_r), ("GARCH(1,1)-t", garch_r)):
        row: dict[str, Any] = {"set": name, "n": int(np.isfinite(r).sum())}
        for lv in TAIL_LEVELS:
            row[f"var_{int(100 * lv)}"], row[f"es_{int(100 * lv)}"] = var_es(r, lv)
        rows.append(row)
    return {"rows": rows, "es1_ratio_to_historical": rows[0]["es_1"] / rows[1]["es_1"],
            "es1_ratio_interval": list(interval), "es1_ratio_interval_method":
                "95 % bootstrap: generated paths resampled by context, historical windows by moving blocks of "
                f"{horizon} (one horizon), {n_boot} resamples",
            "es1_ratio_garch_to_historical": rows[2]["es_1"] / rows[1]["es_1"], "garch_contexts": int(len(sub)),
            "garch_samples": garch_samples}


def scenario_report(synthetic: str, klines: pd.DataFrame, *, source: str = "data", discriminative: bool = True,
                    repeats: int = 1, n: int | None = 1000, epochs: int = 20, stress: bool | None = None,
                    seed: int = 0, threads: int | None = None) -> ScenarioReport:
    """Score a conditioned dataset (written by `generate --condition/--scenario`) against the real windows of
    `klines` that meet its condition; `stress` (default: when the run was a stress pack) adds VaR / ES."""
    ds = read_synthetic(synthetic)
    meta = ds.metadata
    cond = meta.get("condition")
    if not isinstance(cond, dict):
        raise InputError(f"{synthetic}: was not generated with a condition (no condition in its metadata)",
                         param="synthetic")
    lookback, horizon, freq = int(meta["lookback"]), int(meta["horizon"]), str(meta["freq"])
    cw = conditioned_windows(klines, freq, lookback, horizon, parse_condition(cond["spec"]), split=meta["split"],
                             test_fraction=float(meta["test_fraction"]), source=source)
    syn = ds.to_array()
    last = context_last_closes(ds, cw)
    real = cw.continuations()
    report = ScenarioReport(cw.resolved.to_dict(), float(cw.resolved.path_met(last, syn).mean()), len(syn),
                            len(real), _summary(syn, last), _summary(real, cw.windows.values[cw.mask, lookback - 1, 3]),
                            settings={"repeats": repeats, "n": n, "epochs": epochs, "seed": seed})
    if discriminative:
        feats = prepare_features(real, syn)
        res = discriminative_score(feats.real, feats.synthetic, n=n, repeats=repeats, seed=seed, epochs=epochs,
                                   threads=threads, real_time=cw.matching.spans(lookback), synthetic_time=ds.spans())
        report.discriminative = res.to_dict()
    if stress if stress is not None else meta.get("scenario") == "stress":
        frame = clean_klines(klines, freq).frame
        train = frame if meta["split"] == "all" else split_by_time(
            frame, test_fraction=float(meta["test_fraction"]), gap=lookback + horizon)[0]
        first = _first_bars(ds)
        groups = pd.factorize(pd.MultiIndex.from_arrays([first["symbol"].astype(str), first["context_end"]]))[0]
        report.stress = stress_tail(syn, last, cw, train, seed=seed, synthetic_groups=groups)
    return report
