"""Stationary block bootstrap (Politis & Romano 1994) of real training bars.

Generated windows are made of blocks of consecutive real bars with geometrically distributed
lengths (mean `block`). Closes follow the real close log returns of the drawn bars; each bar keeps
its own open/high/low offsets relative to its close, its own volume and its own VWAP relative to
its close (log(amount / (volume · close))), so every bar's geometry — including where its VWAP
sits — is a real bar's geometry. Amount is rebuilt as volume · new close · that ratio: keeping the
raw amount would put the VWAP of a bar re-anchored at another price level outside the bar.
Windows start at a real start price (a training window's first close). A strong, honest
reference: it cannot invent anything, and memorization metrics show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kronos_synth.baselines.base import (
    Baseline,
    BaselineError,
    BaselineOptions,
    load_npz,
    log_vwap_over_close,
    windows_to_runs,
)


@dataclass(frozen=True)
class BootstrapOptions(BaselineOptions):
    """The block bootstrap's fit settings."""

    block: float = 10.0  # mean block length in bars

    def check(self) -> None:
        self._number("block", at_least=1)


class BootstrapBaseline(Baseline):
    name = "bootstrap"
    Options = BootstrapOptions

    def _fit(self, z: np.ndarray, raw: np.ndarray, *, seed: int,
             progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        self._set_bars(windows_to_runs(raw))
        return {}, {}

    def _set_bars(self, runs: list[np.ndarray]) -> None:
        # Per bar: close log return vs the previous close in its run (bar 0 of a run has none),
        # log(open|high|low / close), volume, log(VWAP / close). `next_ok` marks bars whose
        # successor is the next bar of the same run, so a block continues only inside a run.
        feats, next_ok, has_ret = [], [], []
        for r in runs:
            ret = np.concatenate([[0.0], np.diff(np.log(r[:, 3]))])
            off = np.log(r[:, :3] / r[:, 3:4])
            feats.append(np.column_stack([ret, off, r[:, 4], log_vwap_over_close(r[:, 4], r[:, 5], r[:, 3])]))
            ok = np.ones(len(r), dtype=bool)
            ok[-1] = False
            next_ok.append(ok)
            h = np.ones(len(r), dtype=bool)
            h[0] = False
            has_ret.append(h)
        self.bars = np.concatenate(feats)
        self.next_ok = np.concatenate(next_ok)
        self.starts = np.nonzero(np.concatenate(has_ret))[0]
        if len(self.starts) == 0:
            raise BaselineError("bootstrap: training data hold no close-to-close returns")

    def _sample_z(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 0])
        t = self.window
        p_new = 1.0 / float(self.options["block"])
        idx = np.empty((n, t), dtype=np.int64)
        idx[:, 0] = self.starts[rng.integers(0, len(self.starts), size=n)]
        jump = rng.random((n, t)) < p_new
        fresh = self.starts[rng.integers(0, len(self.starts), size=(n, t))]
        for k in range(1, t):
            prev = idx[:, k - 1]
            cont = ~jump[:, k] & self.next_ok[prev]
            idx[:, k] = np.where(cont, prev + 1, fresh[:, k])
        b = self.bars[idx]
        # close relative to the window's first close: cumulative returns after bar 0
        logc = np.concatenate([np.zeros((n, 1)), np.cumsum(b[:, 1:, 0], axis=1)], axis=1)
        z = np.empty((n, t, 6))
        z[..., :3] = logc[..., None] + b[..., 1:4]
        z[..., 3] = logc
        z[..., 4] = np.log1p(b[..., 4])
        z[..., 5] = b[..., 5]
        return z

    def _save_state(self, path: Path) -> dict[str, Any]:
        np.savez(path / "bars.npz", bars=self.bars, next_ok=self.next_ok, starts=self.starts)
        return {}

    def _load_state(self, path: Path, config: dict[str, Any]) -> None:
        d = load_npz(path / "bars.npz")
        self.bars, self.next_ok, self.starts = d["bars"], d["next_ok"], d["starts"]

    def n_parameters(self) -> int:
        return 1
