"""GARCH(1,1) with Student-t innovations (package `arch`), plus an intrabar bar model.

Close log returns follow a GARCH(1,1)-t fitted on the training bars. The rest of each bar is
rebuilt around the simulated close:
- open gap (log open / previous close), upper wick (log high / max(open, close)) and lower wick
  (log min(open, close) / low), each divided by the bar's fitted conditional volatility, are drawn
  from their empirical joint distribution within the volatility quintile of the simulated bar
  and multiplied by the simulated volatility;
- log1p(volume) follows an AR(1) with |return|/σ as regressor and bootstrapped residuals;
- amount = volume × mean(OHLC) × a real bar's amount/(volume × mean(OHLC)) ratio, i.e. the VWAP
  is the simulated bar's mean price times a real bar's VWAP/mean-price ratio (carried in the
  scale-free form as log(VWAP / close), so it holds at any anchor price).
Geometry is valid by construction (wicks ≥ 0) but the joint shape of body and wicks is only
loosely matched — cheap, strong on stylized facts, weak on bar geometry (docs/baselines.md).

Simulation starts each window from a real fitted volatility state and log-volume (plus `burn`
steps, ≥ 1, so bar 0 has a previous close for its open gap).

Groups: each contiguous training run (segment of one symbol) with at least `min_obs` returns gets
its own fit; shorter runs are pooled into one extra group. A generated window picks a group with
probability proportional to its number of returns.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kronos_synth.baselines.base import Baseline, BaselineError, BaselineOptions, load_npz, windows_to_runs

_SCALE = 100.0  # arch fits best on percent returns


@dataclass(frozen=True)
class GarchOptions(BaselineOptions):
    """GARCH's fit settings."""

    min_obs: int = 250  # returns a run needs to be fitted alone (shorter runs are pooled)
    vol_bins: int = 5  # volatility bins of the bar-shape bootstrap
    burn: int = 1  # simulated bars dropped before each window

    def check(self) -> None:
        self._count("min_obs", "vol_bins")
        self._count("burn", minimum=0)


class GarchBaseline(Baseline):
    name = "garch"
    Options = GarchOptions

    # -- fitting ---------------------------------------------------------------------------------
    def _fit(self, z: np.ndarray, raw: np.ndarray, *, seed: int,
             progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        runs = [r for r in windows_to_runs(raw) if len(r) >= 3]
        min_obs = int(self.options["min_obs"])
        long = [r for r in runs if len(r) - 1 >= min_obs]
        short = [r for r in runs if len(r) - 1 < min_obs]
        groups = [[r] for r in long]
        if short and (sum(len(r) - 1 for r in short) >= min_obs or not groups):
            groups.append(short)
        if not groups or sum(len(r) - 1 for r in runs) < 30:
            raise BaselineError("garch: training data hold fewer than 30 returns — use more history")
        self.groups = [self._fit_group(g) for g in groups]
        ll = [g["loglik"] for g in self.groups]
        return {"neg_loglik_per_obs": -float(np.sum(ll)) / sum(g["n"] for g in self.groups)}, {}

    def _fit_group(self, runs: list[np.ndarray]) -> dict[str, Any]:
        from arch import arch_model

        rets = [np.diff(np.log(r[:, 3])) for r in runs]
        r = np.concatenate(rets)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the fit is checked below
            res = arch_model(_SCALE * r, mean="Constant", vol="GARCH", p=1, q=1, dist="t",
                             rescale=False).fit(disp="off")
        p = res.params
        params = {"mu": float(p["mu"]) / _SCALE, "omega": float(p["omega"]) / _SCALE**2,
                  "alpha": float(p["alpha[1]"]), "beta": float(p["beta[1]"]), "nu": float(p["nu"])}
        if not all(np.isfinite(list(params.values()))) or params["nu"] <= 2:
            raise BaselineError("garch: the GARCH(1,1)-t fit did not converge on these returns")
        sigma = np.asarray(res.conditional_volatility, dtype=np.float64) / _SCALE
        # Per bar with a predecessor: gap, upper wick, lower wick (all ≥ 0 except the gap), / σ.
        bars = np.concatenate([rr[1:] for rr in runs])
        prev_close = np.concatenate([rr[:-1, 3] for rr in runs])
        o, h, lo, c = (bars[:, k] for k in range(4))
        gap = np.log(o / prev_close)
        upper = np.log(h / np.maximum(o, c))
        lower = np.log(np.minimum(o, c) / lo)
        shape = np.column_stack([gap, upper, lower]) / sigma[:, None]
        edges = np.quantile(sigma, np.linspace(0, 1, int(self.options["vol_bins"]) + 1)[1:-1])
        order = np.argsort(np.searchsorted(edges, sigma), kind="stable")
        counts = np.bincount(np.searchsorted(edges, sigma), minlength=len(edges) + 1)
        # log1p(volume) AR(1) with |r|/σ̄ as regressor, fitted per run (no cross-run lags)
        xs, ys = [], []
        scale = float(np.std(r)) or 1.0
        for rr, ret in zip(runs, rets, strict=True):
            lv = np.log1p(rr[:, 4])
            xs.append(np.column_stack([np.ones(len(ret)), lv[:-1], np.abs(ret) / scale]))
            ys.append(lv[1:])
        x, y = np.concatenate(xs), np.concatenate(ys)
        coef, *_ = np.linalg.lstsq(x, y, rcond=None)
        resid = y - x @ coef
        lv_all = np.concatenate([np.log1p(rr[:, 4]) for rr in runs])
        vol_mean = np.maximum(bars[:, 4] * bars[:, :4].mean(axis=1), 0)
        ok = (bars[:, 4] > 0) & (bars[:, 5] > 0)
        ratio = bars[ok, 5] / vol_mean[ok] if ok.any() else np.zeros(0)
        return {"params": params, "loglik": float(res.loglikelihood), "n": len(r),
                "edges": edges, "shape": shape[order], "bin_start": np.concatenate([[0], np.cumsum(counts)[:-1]]),
                "bin_count": counts, "vol_coef": coef, "vol_resid": resid, "vol_scale": scale,
                "lv_start": lv_all, "amount_ratio": ratio, "sigma_start": sigma}

    # -- sampling --------------------------------------------------------------------------------
    def _simulate(self, g: dict[str, Any], n: int, rng: np.random.Generator,
                  eps: np.ndarray | None = None) -> np.ndarray:
        """Scale-free windows (n, window, 6) of group `g`; `eps` (n, burn + window) unit-variance innovations
        replace the group's own Student-t draws (the panel CCC-GARCH passes copula-correlated ones)."""
        t, burn = self.window, int(self.options["burn"])
        p = g["params"]
        # Start from real fitted volatility states: fits on daily data are often near-integrated
        # (α+β ≈ 1), where the unconditional variance is meaningless and a long burn-in explodes.
        h = g["sigma_start"][rng.integers(0, len(g["sigma_start"]), size=n)] ** 2
        nu = p["nu"]
        if eps is None:
            eps = rng.standard_t(nu, size=(n, burn + t)) * np.sqrt((nu - 2) / nu)
        res = rng.integers(0, len(g["vol_resid"]), size=(n, burn + t))
        lv = g["lv_start"][rng.integers(0, len(g["lv_start"]), size=n)]
        c0, c1, c2 = g["vol_coef"]
        r_out, s_out, lv_out = (np.empty((n, t)) for _ in range(3))
        for k in range(burn + t):
            sig = np.sqrt(h)
            r = p["mu"] + sig * eps[:, k]
            lv = c0 + c1 * lv + c2 * np.abs(r) / g["vol_scale"] + g["vol_resid"][res[:, k]]
            if k >= burn:
                r_out[:, k - burn], s_out[:, k - burn], lv_out[:, k - burn] = r, sig, lv
            h = p["omega"] + p["alpha"] * (r - p["mu"]) ** 2 + p["beta"] * h
        # intrabar shape drawn from the real bars in the same volatility bin
        b = np.searchsorted(g["edges"], s_out)
        pick = g["bin_start"][b] + (rng.random((n, t)) * g["bin_count"][b]).astype(np.int64)
        shape = g["shape"][np.minimum(pick, len(g["shape"]) - 1)] * s_out[..., None]
        logc = np.concatenate([np.zeros((n, 1)), np.cumsum(r_out[:, 1:], axis=1)], axis=1)
        prev = logc - r_out  # previous close in the window's log units (bar 0: from the burn-in)
        z = np.empty((n, t, 6))
        z[..., 0] = prev + shape[..., 0]
        z[..., 3] = logc
        z[..., 1] = np.maximum(z[..., 0], logc) + shape[..., 1]
        z[..., 2] = np.minimum(z[..., 0], logc) - shape[..., 2]
        z[..., 4] = lv_out
        ratio = g["amount_ratio"]
        log_ratio = np.log(ratio[rng.integers(0, len(ratio), size=(n, t))]) if len(ratio) else 0.0
        mean_over_close = np.exp(z[..., :4] - logc[..., None]).mean(axis=-1)
        z[..., 5] = np.log(mean_over_close) + log_ratio
        return z

    def _sample_z(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 0])
        weights = np.array([g["n"] for g in self.groups], dtype=np.float64)
        which = rng.choice(len(self.groups), size=n, p=weights / weights.sum())
        z = np.empty((n, self.window, 6))
        for gi, g in enumerate(self.groups):
            sel = np.nonzero(which == gi)[0]
            if len(sel):
                z[sel] = self._simulate(g, len(sel), rng)
        return z

    # -- persistence -----------------------------------------------------------------------------
    _ARRAYS = ("edges", "shape", "bin_start", "bin_count", "vol_coef", "vol_resid", "lv_start", "amount_ratio", "sigma_start")

    def _save_state(self, path: Path) -> dict[str, Any]:
        arrays = {f"g{i}_{k}": np.asarray(g[k]) for i, g in enumerate(self.groups) for k in self._ARRAYS}
        np.savez(path / "garch.npz", **arrays)
        meta = [{k: g[k] for k in ("params", "loglik", "n", "vol_scale")} for g in self.groups]
        (path / "garch.json").write_text(json.dumps(meta, indent=2))
        return {"garch_params": [m["params"] for m in meta]}

    def _load_state(self, path: Path, config: dict[str, Any]) -> None:
        meta = json.loads((path / "garch.json").read_text())
        d = load_npz(path / "garch.npz")
        self.groups = [{**m, **{k: d[f"g{i}_{k}"] for k in self._ARRAYS}} for i, m in enumerate(meta)]

    def n_parameters(self) -> int:
        return 5 * len(self.groups) + 3 * len(self.groups)
