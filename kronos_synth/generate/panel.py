"""Coupled multi-asset panels: A symbols continued jointly from one shared context date.

Panel p holds sequences p·A … p·A + A − 1 (asset a = id mod A, in the order the symbols were given);
its context date is `perm[(p // samples_per_context) mod P]` of the P panel contexts (windows all the
symbols trade on the same timestamps), and every asset's continuation shares its future timestamps.

Coupling. Each asset samples from its own Kronos conditional exactly as a single-asset run would —
same kept tokens, same probabilities — but the uniforms that pick the tokens are coupled across the
panel: at each step and stream, the panel's A counter-based uniforms u are mapped to normal scores
z = Φ⁻¹(u), correlated as x = C z with C the Cholesky factor of the panel's Gaussian-copula correlation
(estimated on the context's returns, `data.panels.gaussian_copula_correlation`), and mapped back,
u' = Φ(x). Each u' is still uniform, so every marginal is unchanged. For correlated uniforms to give
correlated returns, the inverse-CDF draw must walk the tokens in the order of their return: the
tokens are ordered by a return score, a linear fit of the bar's standardised close return on the
token's bits over tokenized real contexts (`token_return_scores`). With the default probability
order a larger uniform means a less likely token, whatever its direction, and the coupling is lost.

Volume (`config.volume_coupling`, the default). One uniform per token can steer only one direction of the
bar, and the s1 token decides most of both its return and its volume. So s1 is drawn in two stages
(`sample_from_logits`' `bins`): the coupled return uniform picks one of VOLUME_RETURN_BINS bins of s1 ids
(equally many ids each, by return score), then a second uniform, coupled by a copula of the context's
log-volume changes (calibrated by the same pilot), picks the token inside the bin in the order of a volume
score. Each asset's draw still has its own distribution: P(bin) · P(token | bin).

`coupling="t"` uses a Student-t copula (4 degrees of freedom) with the same correlation: one χ² draw per
panel and step scales the panel's normal scores together, so large moves coincide — the lower-tail
dependence a Gaussian copula lacks.

Determinism: a row's uniforms depend only on its panel's ids, the seed and the panel's context, so the
output is the same at any batch size and on Ray.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import chdtri, ndtr, ndtri, stdtr

from kronos_synth.data.calendar import SessionCalendar
from kronos_synth.data.panels import PanelWindows, gaussian_copula_correlation, panel_windows
from kronos_synth.generate.config import T_COPULA_DF, GenerationConfig
from kronos_synth.generate.contexts import ContextPool
from kronos_synth.generate.generator import Generator
from kronos_synth.generate.rng import counter_permutation, counter_uniform
from kronos_synth.generate.sampler import INNER_STREAM, MAX_GROUP, TokenOrder, encode_contexts
from kronos_synth.model.bsq import ids_to_codes
from kronos_synth.model.pretrained import ModelPair

SCORE_CONTEXTS = 256  # tokenized contexts the return scores are fitted on (a seeded subsample)
PILOT_PANELS = 48  # comonotone pilot panels that measure the coupling gain
VOLUME_RETURN_BINS = 8  # return bins of the s1 draw when volume is coupled too (inside a bin: by volume)


@torch.no_grad()
def token_scores(tokenizer: torch.nn.Module, norm: Any, contexts: np.ndarray, device: torch.device | str = "cpu",
                 return_bins: int = 0) -> TokenOrder:
    """The order of each token draw, from real contexts (n, L, 6). Scores are least-squares fits of a bar's
    close log return (over its window's standard deviation) or log(1 + volume) (standardised within its
    window) on the ±1 bits of the bar's (s1, s2) tokens, rounded to 6 significant digits so the order they
    give does not hinge on the last bits of a BLAS sum.

    return_bins = 0: s1 and s2 by return score. return_bins = K: s1 in K bins of equally many ids by return
    score, and by volume score inside a bin (s2 still by return): a panel then couples volume as well."""
    x = torch.from_numpy(norm.transform(contexts, norm.fit(contexts))).to(device)
    s1, s2 = encode_contexts(tokenizer, x)
    n1, n2 = int(tokenizer.s1_bits), int(tokenizer.s2_bits)
    bits = torch.cat([ids_to_codes(s1[:, 1:], n1), ids_to_codes(s2[:, 1:], n2)], -1).cpu().double().numpy()
    design = np.concatenate([bits.reshape(-1, n1 + n2), np.ones((bits.shape[0] * bits.shape[1], 1))], 1)

    def fit(target: np.ndarray, center: bool) -> np.ndarray:  # (n, L−1) → bit weights
        if center:  # a level (volume), not a change: its window's mean says nothing about the token
            target = target - target.mean(axis=1, keepdims=True)
        target = target / np.maximum(target.std(axis=1, keepdims=True), 1e-12)
        return np.linalg.lstsq(design, target.reshape(-1), rcond=None)[0]

    def scores(n_bits: int, weights: np.ndarray) -> torch.Tensor:
        v = ids_to_codes(torch.arange(1 << n_bits), n_bits).double().numpy() @ weights
        scale = np.abs(v).max() or 1.0
        return torch.from_numpy(np.round(v / scale, 6)).float()

    w = fit(np.diff(np.log(contexts[..., 3]), axis=1), center=False)
    ret1, ret2 = scores(n1, w[:n1]), scores(n2, w[n1:n1 + n2])
    if not return_bins:
        return TokenOrder(ret1, ret2)
    vol1 = scores(n1, fit(np.log1p(np.maximum(contexts[:, 1:, 4], 0.0)), center=True)[:n1])
    rank = torch.sort(ret1, stable=True)[1].argsort()  # each id's place by return score
    return TokenOrder(vol1, ret2, (rank * return_bins) // len(rank))


class PanelGenerator(Generator):
    """Kronos panels: `config.panel` symbols continued jointly (see the module docstring).

    >>> gen = PanelGenerator(load_model_pair(), klines, GenerationConfig(freq="15min", panel=("BTCUSDT", "ETHUSDT")))  # doctest: +SKIP
    >>> gen.write_panels("panels/", n_panels=1000)                  # doctest: +SKIP
    """

    def __init__(self, pair: ModelPair, klines: pd.DataFrame, config: GenerationConfig, *, source: str = "",
                 order_by_return: bool = True, calibrate: bool = True) -> None:
        if not config.panel:
            raise ValueError("PanelGenerator needs config.panel (the symbols)")
        lookback, horizon = config.window
        windows: PanelWindows = panel_windows(klines, config.panel, config.preset.name, lookback, split=config.split,
                                              test_fraction=config.test_fraction, gap=lookback + horizon,
                                              source=source or "data")
        if config.contexts_per_symbol is not None and len(windows) > config.contexts_per_symbol:
            keep = np.unique(np.linspace(0, len(windows) - 1, config.contexts_per_symbol).round().astype(int))
            windows = windows.take(keep)
        p, a = windows.values.shape[:2]
        cal = SessionCalendar.fit(pd.Series(windows.common), config.preset.name)
        future = cal.next_many(windows.timestamps[:, -1], horizon)  # (P, H): shared by the panel's assets
        pool = ContextPool(windows.values.reshape(p * a, lookback, 6), np.repeat(windows.timestamps, a, axis=0),
                           np.repeat(future, a, axis=0), np.tile(np.asarray(windows.symbols), p),
                           None if windows.regime is None else windows.regime.reshape(p * a))
        super().__init__(pair, None, config, source=source, pool=pool)
        self.symbols, self.n_assets, self.n_dates = windows.symbols, a, p
        self._dates = counter_permutation(self.seed, p, stream=1)
        coupled = config.coupling in ("gaussian", "t")
        eye = np.broadcast_to(np.eye(a), (p, a, a)).copy()
        self.correlation = gaussian_copula_correlation(windows.values) if coupled else eye
        self.order_by_return = order_by_return
        self.couple_volume = coupled and order_by_return and config.volume_coupling
        self.volume_correlation = gaussian_copula_correlation(windows.values, of="volume") if self.couple_volume else eye
        self.token_scores = None
        if order_by_return:
            pick = np.sort(counter_permutation(self.seed, p * a, stream=2)[:SCORE_CONTEXTS])
            self.token_scores = token_scores(self.tokenizer, self.norm, pool.values[pick], self.device,
                                             return_bins=VOLUME_RETURN_BINS if self.couple_volume else 0)
        off = ~np.eye(a, dtype=bool)
        order = "return score" if order_by_return else "probability"
        if self.couple_volume:
            order = f"s1: {VOLUME_RETURN_BINS} return-score bins, by volume score inside; s2: return score"
        self.metadata.update(panel=list(self.symbols), coupling=config.coupling, panel_contexts=p, token_order=order,
                             mean_context_correlation=float(self.correlation[:, off].mean()))
        if self.couple_volume:
            self.metadata["mean_context_volume_correlation"] = float(self.volume_correlation[:, off].mean())
        self.copula, self.volume_copula = self.correlation, self.volume_correlation
        self.df = T_COPULA_DF if config.coupling == "t" else None
        if config.coupling != "none" and order_by_return and calibrate:
            self.gain, volume_gain = self.coupling_gain()
            if self.couple_volume:
                self.volume_copula = calibrated_copula(self.volume_correlation, volume_gain)
                # The return gain once more with volume drawn as it will be (its calibrated copula rather than
                # comonotone): inside a bin the volume draw moves the return a little too.
                self.gain = self.coupling_gain(np.linalg.cholesky(self.volume_copula))[0]
                self.metadata.update(volume_coupling_gain=np.round(volume_gain, 6).tolist(),
                                     mean_volume_copula_correlation=float(self.volume_copula[:, off].mean()))
            self.copula = calibrated_copula(self.correlation, self.gain)
            self.metadata.update(coupling_gain=np.round(self.gain, 6).tolist(),
                                 mean_copula_correlation=float(self.copula[:, off].mean()))
        self._chol = np.linalg.cholesky(self.copula)  # (P, A, A)
        self._chol_volume = np.linalg.cholesky(self.volume_copula)

    def coupling_gain(self, volume_chol: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(A, A) twice: how much of the uniforms' dependence reaches the returns, and the log-volume changes:
        the mean per-panel correlations of pilot panels whose assets all draw the SAME uniforms (comonotone,
        copula ρ = 1), from PILOT_PANELS seeded context dates (ids in a reserved range, so no output sequence
        is touched). `volume_chol` (P, A, A): the volume draw's copula factor instead of comonotone."""
        a, spc = self.n_assets, self.samples_per_context
        base = a * spc * (1 << 44)
        ids = (base + np.arange(PILOT_PANELS)[:, None] * a * spc + np.arange(a)[None, :]).reshape(-1)
        comonotone = np.broadcast_to(np.ones((a, a)) * np.eye(a)[:, :1].T, (self.n_dates, a, a))  # every row = z₀
        self._chol = self._chol_volume = comonotone
        if volume_chol is not None:
            self._chol_volume = volume_chol
        bars = np.concatenate([self.generate_batch(ids[i:i + 256])["bars"] for i in range(0, len(ids), 256)])
        last = self.pool.values[self.context_index(ids), -1]
        close = np.concatenate([last[:, None, 3], bars[..., 3]], axis=1)
        volume = np.concatenate([last[:, None, 4], bars[..., 4]], axis=1)
        returns = np.diff(np.log(np.maximum(close, 1e-300)), axis=1).reshape(PILOT_PANELS, a, -1)
        volume = np.diff(np.log1p(np.maximum(volume, 0.0)), axis=1).reshape(PILOT_PANELS, a, -1)
        return _mean_panel_correlation(returns), _mean_panel_correlation(volume)

    def context_index(self, sequence_ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(sequence_ids, dtype=np.int64)
        date = self._dates[(ids // self.n_assets // self.samples_per_context) % self.n_dates]
        return date * self.n_assets + ids % self.n_assets

    def coupled_uniforms(self, ids: np.ndarray, step: int, stream: int) -> np.ndarray:
        """(B,) uniforms of rows `ids`: the counter draws of each row's whole panel, coupled by its copula."""
        ids = np.asarray(ids, dtype=np.int64)
        a = self.n_assets
        first = ids - ids % a
        u = counter_uniform(self.seed, (first[:, None] + np.arange(a)).reshape(-1), step, stream).reshape(-1, a)
        z = ndtri(u + 2.0 ** -54)  # counter draws are k / 2^53: the half step keeps them off 0
        chol = (self._chol_volume if stream == INNER_STREAM else self._chol)[self.context_index(first) // a]
        x = (chol[np.arange(len(ids)), ids % a] * z).sum(-1)  # row a of C times z
        if self.df is None:
            return np.minimum(ndtr(x), 1.0 - 2.0 ** -53)
        # t copula: one χ²_ν draw per panel and step scales all its assets' normals — a shared shock size
        # that makes large moves coincide (tail dependence), while each asset's u stays uniform.
        g = chdtri(self.df, counter_uniform(self.seed, first, step, stream + 2) + 2.0 ** -54)  # upper quantile
        return np.minimum(stdtr(self.df, x * np.sqrt(self.df / g)), 1.0 - 2.0 ** -53)

    def _sampling_options(self, ids: np.ndarray) -> dict[str, Any]:
        # The samples of a date are ids [k·S·A, (k+1)·S·A): grouping by that block lets each asset's samples
        # share one copy of its context's K/V.
        return {"samples_per_context": min(self.samples_per_context * self.n_assets, MAX_GROUP),
                "uniforms": lambda step, stream: self.coupled_uniforms(ids, step, stream),
                "token_scores": self.token_scores}

    def _path_ids(self, ids: np.ndarray) -> np.ndarray:
        return ids - ids % self.n_assets  # one temperature / volatility scale per panel: a common factor

    def batch_frame(self, sequence_ids: np.ndarray) -> tuple[pd.DataFrame, dict[str, Any]]:
        frame, info = super().batch_frame(sequence_ids)
        frame["panel_id"] = frame["sequence_id"].to_numpy() // self.n_assets
        return frame, info

    def write_panels(self, out: str, n_panels: int, **kwargs: Any):
        """Generate n_panels panels (n_panels · A sequences) into a schema-v1 folder with a panel_id column."""
        return self.write(out, n_panels * self.n_assets, **kwargs)


def _mean_panel_correlation(x: np.ndarray) -> np.ndarray:
    """(N, A, T) → (A, A) mean over panels of the assets' correlation (panels with a flat asset dropped)."""
    x = x - x.mean(axis=-1, keepdims=True)
    sd = np.sqrt((x * x).sum(-1))
    ok = (sd > 0).all(axis=1)
    c = (x[ok] @ np.swapaxes(x[ok], 1, 2)) / (sd[ok][:, :, None] * sd[ok][:, None, :])
    return c.mean(axis=0) if ok.any() else np.eye(x.shape[1])


def calibrated_copula(target: np.ndarray, gain: np.ndarray, floor: float = 0.2, cap: float = 0.98) -> np.ndarray:
    """Copula correlations (P, A, A) that give the target return correlations under a coupling gain (A, A):
    ρ_copula = ρ_target / gain, capped at ±`cap`, made positive definite. Pairs whose gain is below `floor`
    (the draw barely moves their returns together) keep the target unchanged rather than being blown up."""
    g = np.where(gain >= floor, gain, 1.0)
    rho = np.clip(target / g, -cap, cap)
    a = target.shape[-1]
    rho[..., np.arange(a), np.arange(a)] = 1.0
    w, v = np.linalg.eigh(rho)
    rho = (v * np.clip(w, 1e-4, None)[..., None, :]) @ np.swapaxes(v, -1, -2)
    d = np.sqrt(np.diagonal(rho, axis1=-2, axis2=-1))
    return rho / d[..., :, None] / d[..., None, :]


def build_generator(pair: ModelPair, klines: pd.DataFrame, config: GenerationConfig, *,
                    source: str = "") -> Generator:
    """The generator a config asks for: panels when `config.panel` is set, else single-asset sequences."""
    if config.panel:
        return PanelGenerator(pair, klines, config, source=source)
    return Generator(pair, klines, config, source=source)
