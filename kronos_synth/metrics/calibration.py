"""docs/protocol.md §5: the calibration rows every fidelity/usefulness/peer-metric table carries.

- `real (train period)`: real train-period windows used as if they were synthetic.
- `real (test, disjoint halves)`: one half of the real test windows against the other — must be ≈ 0.5
  (discriminative); if not, the metric is broken.
- `shuffled bars`: real test windows with their bars permuted in time — must be detected (error ≈ 0).
"""

from __future__ import annotations

import numpy as np

from kronos_synth.metrics.context_fid import EncoderSettings, TS2VecEncoder, fit_encoders
from kronos_synth.metrics.discriminative import (
    DiscriminativeResult,
    TooFewSequencesError,
    discriminative_score,
)
from kronos_synth.metrics.features import is_volume_free, prepare_features, shuffle_bars
from kronos_synth.metrics.peers import PeerResult, peer_metrics
from kronos_synth.metrics.stats import repeat_seeds
from kronos_synth.metrics.tstr import ForecastResult, forecast_score

SYNTHETIC = "synthetic"
TRAIN_PERIOD = "real (train period)"
DISJOINT_HALVES = "real (test, disjoint halves)"
SHUFFLED = "shuffled bars"
ROWS = (SYNTHETIC, TRAIN_PERIOD, DISJOINT_HALVES, SHUFFLED)


def row_label(name: str, period: str = "test") -> str:
    """A row's name as reports show it. Scored against the validation period (the train period's tail), the
    real "test" windows are that tail and the "train period" rows come from the train period's head; the
    keys in report.json stay the same either way."""
    if period != "validation":
        return name
    return {TRAIN_PERIOD: "real (train period's head)",
            DISJOINT_HALVES: "real (validation, disjoint halves)"}.get(name, name)


def block_halves(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and second half in stored (time) order: overlapping stride-1 windows barely cross over."""
    h = len(x) // 2
    return x[:h], x[h:2 * h]


def discriminative_table(real_test: np.ndarray, synthetic: np.ndarray | None, real_train: np.ndarray | None,
                         *, seed: int = 0, volume_free: bool | None = None, calibration: bool = True,
                         real_test_time: np.ndarray | None = None, real_train_time: np.ndarray | None = None,
                         synthetic_time: np.ndarray | None = None, **kwargs) -> dict[str, DiscriminativeResult]:
    """The discriminative score of the synthetic set and of the three calibration rows (raw bars in).

    `*_time` are (n, 2) first/last bar times of each set's windows: with them the classifier's train and
    test windows come from disjoint time blocks (`discriminative_score`). `kwargs` go to
    `discriminative_score` (protocol, n, repeats, epochs, …). A None set skips its row;
    `calibration=False` computes the synthetic row only (a benchmark computes the others once).
    """
    sets = [x for x in (real_test, synthetic, real_train) if x is not None]
    if volume_free is None:
        volume_free = any(is_volume_free(x) for x in sets)
    cal_seed = repeat_seeds(seed, 1)[0]
    ia, ib = np.array_split(np.random.default_rng(cal_seed).permutation(len(real_test))[:len(real_test) // 2 * 2], 2)
    a, b = real_test[ia], real_test[ib]
    ta, tb = (None, None) if real_test_time is None else (real_test_time[ia], real_test_time[ib])
    pairs = {
        SYNTHETIC: (real_test, synthetic, real_test_time, synthetic_time),
        TRAIN_PERIOD: (real_test, real_train, real_test_time, real_train_time),
        DISJOINT_HALVES: (a, b, ta, tb),
        SHUFFLED: (a, shuffle_bars(b, np.random.default_rng(cal_seed)), ta, tb),
    }
    out = {}
    for name, (r, s, tr, ts) in pairs.items():
        if s is None or (not calibration and name != SYNTHETIC):
            continue
        fs = prepare_features(r, s, volume_free=volume_free)
        try:
            out[name] = discriminative_score(fs.real, fs.synthetic, seed=seed, real_time=tr, synthetic_time=ts,
                                             **kwargs)
        except TooFewSequencesError as e:  # say which row: the calibration rows use halves of the real set
            raise TooFewSequencesError(f"discriminative row '{name}': {e}", param=e.param) from None
        out[name].settings["volume_free"] = volume_free
    return out


def forecast_table(real_test: np.ndarray, synthetic: np.ndarray | None, real_train: np.ndarray | None, *,
                   lookback: int, horizon: int, seed: int = 0, n_train: int | None = None,
                   include_volume: bool | None = None, calibration: bool = True,
                   **kwargs) -> dict[str, ForecastResult]:
    """TSTR of the synthetic set plus the calibration rows (TRTR = `real (train period)`);
    `calibration=False` computes the synthetic row only.

    TRTR trains on as many real train windows as TSTR uses synthetic ones. The halves rows train on the
    first half of the test windows and test on the second (block split, to limit overlap leakage).
    """
    sets = [x for x in (real_test, synthetic, real_train) if x is not None]
    if include_volume is None:
        include_volume = not any(is_volume_free(x) for x in sets)
    common = dict(lookback=lookback, horizon=horizon, seed=seed, include_volume=include_volume, **kwargs)
    out = {}
    if synthetic is not None:
        out[SYNTHETIC] = forecast_score(synthetic, real_test, train_on="synthetic (TSTR)", n_train=n_train,
                                        **common)
    if not calibration:
        return out
    if real_train is not None:
        m = len(synthetic) if synthetic is not None else len(real_train)
        m = min(m, n_train) if n_train else m
        out[TRAIN_PERIOD] = forecast_score(real_train, real_test, train_on="real train period (TRTR)",
                                           n_train=m, **common)
    a, b = block_halves(real_test)
    out[DISJOINT_HALVES] = forecast_score(a, b, train_on="real test, first half → second half",
                                          n_train=n_train, **common)
    out[SHUFFLED] = forecast_score(shuffle_bars(a, np.random.default_rng(repeat_seeds(seed, 1)[0])), b,
                                   train_on="shuffled bars (first half) → second half", n_train=n_train,
                                   **common)
    return out


def peer_table(real_test: np.ndarray, synthetic: np.ndarray | None, real_train: np.ndarray | None, *,
               seed: int = 0, repeats: int = 1, volume_free: bool | None = None, calibration: bool = True,
               fid_settings: EncoderSettings = EncoderSettings(), encoders: list[TS2VecEncoder] | None = None,
               threads: int | None = None, **kwargs) -> dict[str, PeerResult]:
    """The peer metrics (`peers.peer_metrics`) of the synthetic set and of the calibration rows.

    Context-FID's `repeats` encoders train once, on the real train-period windows (the test windows when
    there are none), and embed every row; `encoders` (`context_fid.fit_encoders`) skips that training.
    The halves rows compare the first and second half of the test windows in time (block halves:
    overlapping stride-1 windows barely cross over), so they have half the windows of the other rows.
    `kwargs` go to `peer_metrics` (lags, depth, permutations, …).
    """
    sets = [x for x in (real_test, synthetic, real_train) if x is not None]
    if volume_free is None:
        volume_free = any(is_volume_free(x) for x in sets)
    reference = real_train if real_train is not None else real_test
    if encoders is None:
        encoders = fit_encoders(reference, repeats=repeats, seed=seed, settings=fid_settings,
                                volume_free=volume_free, threads=threads)
    a, b = block_halves(real_test)
    pairs = {SYNTHETIC: (real_test, synthetic), TRAIN_PERIOD: (real_test, real_train), DISJOINT_HALVES: (a, b),
             SHUFFLED: (a, shuffle_bars(b, np.random.default_rng(repeat_seeds(seed, 1)[0])))}
    return {name: peer_metrics(r, s, encoders=encoders, seed=seed, volume_free=volume_free, threads=threads,
                               **kwargs)
            for name, (r, s) in pairs.items() if s is not None and (calibration or name == SYNTHETIC)}
