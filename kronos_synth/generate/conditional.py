"""M sampled continuations of given real contexts: Kronos as a probabilistic forecaster.

The calibration evaluation (`kronos_synth.metrics.forecast_calibration`) calls a forecaster with
windows of lookback + horizon real bars; the forecaster sees the first `lookback` bars (and the
timestamps of the rest, which Kronos's time features need) and returns M close paths per context.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from kronos_synth.data.splits import Windows
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.contexts import ContextPool
from kronos_synth.generate.generator import Generator
from kronos_synth.model.pretrained import ModelPair
from kronos_synth.progress import show_progress


class KronosForecaster:
    """`forecaster(windows, lookback, samples, seed) -> (K, M, H)` close paths sampled by Kronos.

    Sequence k·M + j is sample j of context k, drawn from the counter-based sampler: the paths depend
    on (weights, contexts, settings, seed) only, not on the batch size.
    """

    name = "kronos"

    def __init__(self, pair: ModelPair, *, freq: str, temperature: float = 1.0, top_p: float = 0.95,
                 top_k: int = 0, temperature_spread: float = 0.0, volatility_spread: float = 0.0,
                 batch_size: int = 512, device: str = "auto", dtype: str = "auto", progress: bool | None = None) -> None:
        self.pair, self.freq = pair, freq
        self.settings = dict(temperature=temperature, top_p=top_p, top_k=top_k, temperature_spread=temperature_spread,
                             volatility_spread=volatility_spread, batch_size=batch_size, device=device, dtype=dtype)
        self.progress = progress

    def describe(self) -> dict:
        return {"model": self.pair.model_id, "tokenizer": self.pair.tokenizer_id,
                **{k: self.settings[k] for k in ("temperature", "top_p", "top_k")},
                **{k: self.settings[k] for k in ("temperature_spread", "volatility_spread") if self.settings[k]}}

    def __call__(self, windows: Windows, lookback: int, samples: int, seed: int) -> np.ndarray:
        horizon = windows.length - lookback
        config = GenerationConfig(freq=self.freq, lookback=lookback, horizon=horizon, seed=seed,
                                  samples_per_context=samples, **self.settings)
        pool = ContextPool(windows.values[:, :lookback], windows.timestamps[:, :lookback],
                           windows.timestamps[:, lookback:], np.asarray(windows.symbols).astype(str), windows.regime)
        gen = Generator(self.pair, None, config, pool=pool)
        n = len(windows) * samples
        out = np.empty((n, horizon))
        bar = tqdm(total=n, unit="seq", desc="kronos paths", disable=not show_progress(self.progress))
        for lo in range(0, n, config.batch_size):
            ids = np.arange(lo, min(n, lo + config.batch_size))
            out[ids] = gen.generate_batch(ids)["bars"][..., 3]
            bar.update(len(ids))
        bar.close()
        return out.reshape(len(windows), samples, horizon)
