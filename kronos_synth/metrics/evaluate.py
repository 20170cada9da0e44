"""One call that runs the whole evaluation protocol (docs/protocol.md) on a real frame and a synthetic set.

`evaluate_all` cleans and splits the real K-lines itself (train/test by time, gap = one window), cuts
stride-1 windows of the synthetic length, checks that the synthetic set matches (length, features,
frequency) and runs the selected metric groups. Writing the report is `kronos_synth.report`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import FrequencyPreset, get_preset, infer_frequency
from kronos_synth.data.schema import FEATURES, SEGMENT, SYMBOL, TIMESTAMPS
from kronos_synth.data.splits import PERIODS, Windows, extract_windows, split_by_time
from kronos_synth.data.synthetic import SyntheticDataset, read_part_metadata
from kronos_synth.metrics.calibration import discriminative_table, forecast_table, peer_table, row_label
from kronos_synth.metrics.discriminative import PredictiveResult, predictive_score
from kronos_synth.metrics.diversity import DiversityResult, diversity
from kronos_synth.metrics.drift import DriftResult, trend_drift
from kronos_synth.metrics.features import is_volume_free, prepare_features
from kronos_synth.metrics.memorization import MemorizationResult, memorization
from kronos_synth.metrics.peers import PeerResult
from kronos_synth.metrics.stats import repeat_seeds
from kronos_synth.metrics.stylized import StylizedResult, compare_stylized
from kronos_synth.metrics.validity import (
    CHECKS,
    SeamResult,
    ValidityResult,
    bar_validity,
    real_gaps,
    seam_gap,
)

METRICS = ("discriminative", "tstr", "diversity", "validity", "stylized", "peers")
#: fewest synthetic sequences any evaluation runs on (also the smallest `n`)
MIN_SEQUENCES = 4
#: neighbours of the k-NN precision / recall (`diversity`)
DIVERSITY_K = 5
#: most Context-FID encoders (repeats) the `peers` group trains: each costs ≈ 6 s of one CPU thread
PEER_REPEATS = 3


class EvaluationInputError(InputError):
    """Real and synthetic data that cannot be compared (length, features, frequency, too little data)."""


@dataclass
class RealSplit:
    """Cleaned real K-lines and the stride-1 windows of both periods."""

    frame: pd.DataFrame
    train: Windows
    test: Windows
    cleaning: dict


def split_real(real_frame: pd.DataFrame, *, freq: FrequencyPreset, window: int,
               test_fraction: float = 0.2, period: str = "test") -> RealSplit:
    """Clean, split by time per symbol with a gap of one window, and cut stride-1 windows (§1).

    `period="validation"`: the test period is dropped first and the train period is split the same way, so
    the windows scored are its tail (compare models chosen without ever reading the test period)."""
    if period not in PERIODS:
        raise EvaluationInputError(f"period must be one of {', '.join(PERIODS)}, got {period!r}", param="period")
    cleaned = clean_klines(real_frame, freq)
    frame = cleaned.frame
    if period == "validation":
        frame = split_by_time(frame, test_fraction=test_fraction, gap=window)[0]
    train_df, test_df = split_by_time(frame, test_fraction=test_fraction, gap=window)
    train, test = extract_windows(train_df, window), extract_windows(test_df, window)
    if len(test) < 4 or len(train) < 4:
        raise EvaluationInputError(
            f"the real data give {len(train)} train and {len(test)} test windows of {window} bars — need at least 4 "
            "each; pass a longer history or a smaller test_fraction", param="test_fraction")
    return RealSplit(frame, train, test, cleaned.report.to_dict())


@dataclass
class EvaluationResult:
    settings: dict
    data: dict
    discriminative: dict | None = None
    predictive: PredictiveResult | None = None
    tstr: dict | None = None
    diversity: DiversityResult | None = None
    memorization: MemorizationResult | None = None
    validity: list[ValidityResult] = field(default_factory=list)
    seam: SeamResult | None = None
    drift: DriftResult | None = None
    stylized: StylizedResult | None = None
    peers: dict[str, PeerResult] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def rows(d):
            return None if d is None else {k: v.to_dict() for k, v in d.items()}

        def one(x):
            return None if x is None else x.to_dict()

        return {"settings": self.settings, "data": self.data, "discriminative": rows(self.discriminative),
                "predictive": one(self.predictive), "tstr": rows(self.tstr), "diversity": one(self.diversity),
                "memorization": one(self.memorization), "validity": [v.to_dict() for v in self.validity],
                "seam": one(self.seam), "drift": one(self.drift), "stylized": one(self.stylized),
                "peers": rows(self.peers), "notes": self.notes}


def _synthetic_bars(synthetic: SyntheticDataset | np.ndarray) -> tuple[np.ndarray, dict]:
    if isinstance(synthetic, SyntheticDataset):
        return synthetic.to_array(FEATURES), dict(synthetic.metadata)
    x = np.asarray(synthetic, np.float64)
    if x.ndim != 3 or x.shape[-1] != len(FEATURES):
        raise EvaluationInputError(f"synthetic bars must be (n, T, {len(FEATURES)}) {FEATURES}, got {x.shape}")
    return x, {}


def _resolve_freq(freq: str | FrequencyPreset | None, real_frame: pd.DataFrame, meta: dict) -> FrequencyPreset:
    meta_freq = meta.get("freq")
    if freq is None and not meta_freq:
        preset = infer_frequency(real_frame, label="the real data")
    elif freq is None:
        preset = get_preset(meta_freq)
    else:
        preset = get_preset(freq)
        if meta_freq and get_preset(meta_freq).name != preset.name:
            raise EvaluationInputError(f"the synthetic data were generated at '{meta_freq}' but freq is "
                                       f"'{preset.name}' — evaluate against real data of the same frequency",
                                       param="freq")
    real_freq = infer_frequency(real_frame, target=preset.name, label="the real data")
    if real_freq.name != preset.name:
        raise EvaluationInputError(f"the real data are {real_freq.name} bars but the evaluation is at "
                                   f"{preset.name} — pass real data of the synthetic set's frequency")
    return preset


def sample_indices(n_avail: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of `n` of `n_avail` items without replacement (all of them when
    `n` is None or not fewer): how `evaluate_all` draws its real and synthetic windows."""
    if n is None or n >= n_avail:
        return np.arange(n_avail)
    return np.sort(np.random.default_rng(seed).choice(n_avail, n, replace=False))


def _context_lookup(dataset: SyntheticDataset, frame: pd.DataFrame, lookback: int, horizon: int):
    """Per synthetic sequence: the real context closes (n, L), last context close and the real
    continuation closes (n, H) — from included context bars or by (symbol, context_end) in the real frame.
    Rows that cannot be matched are NaN."""
    gen = dataset.generated()
    ids = np.sort(gen["sequence_id"].unique())
    first = gen[gen["step"] == 0].set_index("sequence_id").reindex(ids)
    n = len(ids)
    ctx = np.full((n, lookback), np.nan)
    cont = np.full((n, horizon), np.nan)
    key = pd.MultiIndex.from_arrays([frame[SYMBOL].astype(str), frame[TIMESTAMPS]])
    pos_of = pd.Series(np.arange(len(frame)), index=key)
    pos_of = pos_of[~pos_of.index.duplicated()]
    block = (frame[SYMBOL].astype(str) + "|" + (frame[SEGMENT].astype(str) if SEGMENT in frame else "")).to_numpy()
    close = frame["close"].to_numpy(np.float64)
    lookup = pd.MultiIndex.from_arrays([first["symbol"].astype(str), pd.to_datetime(first["context_end"])])
    pos = pos_of.reindex(lookup).to_numpy()
    for i, p in enumerate(pos):
        if not np.isfinite(p):
            continue
        p = int(p)
        if p - lookback + 1 >= 0 and block[p - lookback + 1] == block[p]:
            ctx[i] = close[p - lookback + 1:p + 1]
        if p + horizon < len(frame) and block[p + horizon] == block[p]:
            cont[i] = close[p + 1:p + horizon + 1]
    last = ctx[:, -1].copy()
    included = dataset.frame[dataset.frame["step"] == -1].set_index("sequence_id")["close"].reindex(ids).to_numpy()
    last = np.where(np.isfinite(included), included, last)
    return ctx, last, cont


def evaluate_all(real_frame: pd.DataFrame, synthetic: SyntheticDataset | np.ndarray, *,
                 freq: str | FrequencyPreset | None = None, metrics: tuple[str, ...] = METRICS,
                 repeats: int = 5, n: int | None = None, seed: int = 0, protocol: str = "paper",
                 epochs: int | None = None, iterations: int | None = None, test_fraction: float = 0.2,
                 n_test_tstr: int = 3000, max_plot: int = 1000, tsne: bool = True, progress: bool = False,
                 sources: dict[str, Any] | None = None, calibration: bool = True,
                 synthetic_time: np.ndarray | None = None, period: str = "test") -> EvaluationResult:
    """Run the selected metric groups (`METRICS`) of the protocol; see docs/protocol.md.

    `n` caps the sequences drawn per set (real test windows and synthetic sequences, seeded, without
    replacement); by default all synthetic sequences and as many real test windows. `epochs` overrides
    the paper's 20 (discriminative and TSTR), `iterations` the TimeGAN protocol's 2000 / 5000.
    `calibration=False` skips the calibration rows (a benchmark over many generators computes them once;
    the real samples depend only on `seed` and `n`, so the rows stay comparable).
    `synthetic_time`: (n, 2) first/last bar times of a bare array's sequences (a dataset brings its own):
    the discriminative classifier's train and test windows then come from disjoint time blocks.
    `peers` trains min(repeats, PEER_REPEATS) Context-FID encoders on the sampled real train windows.
    `period="validation"` scores against the train period's tail instead of the test period (`split_real`);
    pair it with sequences generated from `split="train-head"` contexts.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise EvaluationInputError(f"unknown metric(s) {sorted(unknown)} — choose from {', '.join(METRICS)}")
    syn_all, meta = _synthetic_bars(synthetic)
    preset = _resolve_freq(freq, real_frame, meta)
    window = syn_all.shape[1]
    expected = int(meta.get("horizon") or preset.horizon)
    if window != expected:
        raise EvaluationInputError(f"synthetic sequences have {window} bars but their run says horizon {expected} "
                                   "— the dataset is inconsistent; regenerate it")
    lb, k = preset.tstr_lookback, preset.tstr_horizon
    if "tstr" in metrics and window < lb + k:
        raise EvaluationInputError(f"synthetic sequences have {window} bars; TSTR at {preset.name} needs "
                                   f"{lb} + {k} = {lb + k} — generate sequences of {lb + k} bars or more")
    real = split_real(real_frame, freq=preset, window=window, test_fraction=test_fraction, period=period)
    real_has_volume, syn_has_volume = not is_volume_free(real.test.values), not is_volume_free(syn_all)
    if real_has_volume != syn_has_volume:
        which = "the synthetic data have no volume but the real data do" if real_has_volume else \
            "the synthetic data have volume but the real data have none"
        raise EvaluationInputError(f"features do not match: {which} — compare sets with the same features")
    volume_free = not real_has_volume

    s_real, s_syn, s_model = repeat_seeds(seed, 3)
    syn_idx = sample_indices(len(syn_all), n, s_syn)
    syn = syn_all[syn_idx]
    if len(syn) < MIN_SEQUENCES:
        raise EvaluationInputError(f"the synthetic set has {len(syn)} sequences — the evaluation needs at least "
                                   f"{MIN_SEQUENCES}; generate more")
    syn_spans = synthetic.spans() if isinstance(synthetic, SyntheticDataset) else synthetic_time
    if syn_spans is not None and len(syn_spans) != len(syn_all):
        raise EvaluationInputError(f"synthetic_time has {len(syn_spans)} rows for {len(syn_all)} sequences")
    n_real = len(syn) if n is None else n
    test_idx = sample_indices(len(real.test), n_real, s_real)
    real_test = real.test.values[test_idx]
    real_train_all = real.train.values
    train_idx = sample_indices(len(real.train), n_real, s_real)
    real_train = real_train_all[train_idx]
    if "diversity" in metrics and min(len(real_test), len(syn)) < DIVERSITY_K + 1:
        raise EvaluationInputError(
            f"diversity needs at least {DIVERSITY_K + 1} real test windows and {DIVERSITY_K + 1} synthetic sequences "
            f"(k-NN coverage with k = {DIVERSITY_K}); got {len(real_test)} and {len(syn)} — use a larger n, more "
            "sequences or a longer real test period", param="n")
    times = {"real_test_time": real.test.spans()[test_idx], "real_train_time": real.train.spans()[train_idx],
             "synthetic_time": None if syn_spans is None else np.asarray(syn_spans)[syn_idx]}

    settings = {
        "metrics": list(metrics), "protocol": protocol, "repeats": repeats, "seed": seed, "n_requested": n,
        "epochs": epochs if epochs is not None else 20, "iterations": iterations, "freq": preset.name,
        "window": window, "tstr_lookback": lb, "tstr_horizon": k, "test_fraction": test_fraction, "period": period,
        "gap": window, "n_test_tstr": n_test_tstr, "max_plot": max_plot, "tsne": tsne,
        "sample_seeds": {"real": s_real, "synthetic": s_syn, "models": s_model}, "calibration": calibration,
        "peer_repeats": min(repeats, PEER_REPEATS),
        "features": list(FEATURES[:4] if volume_free else FEATURES), "volume_free": volume_free,
        "normalization": "per sequence: prices share one mean/std, log1p volume/amount z-scored, clip ±5",
        "real_windows": ("cut from the test period" if period == "test" else "cut from the validation period (the "
                         "train period's tail; the test period is not read)") +
                        " (stride 1), sampled without replacement; the discriminative "
                        "classifier trains and tests on windows from disjoint time blocks",
        "preset": preset.to_dict(),
    }
    data = {
        "sources": sources or {}, "synthetic_metadata": meta, "n_synthetic_available": int(len(syn_all)),
        "n_synthetic_used": int(len(syn)), "n_real_test_available": int(len(real.test)),
        "n_real_test_used": int(len(real_test)), "n_real_train_available": int(len(real.train)),
        "n_real_train_used": int(len(real_train)), "cleaning": real.cleaning,
        "real_test_period": [str(pd.Timestamp(real.test.timestamps.min())),
                             str(pd.Timestamp(real.test.timestamps.max()))],
        "real_train_period": [str(pd.Timestamp(real.train.timestamps.min())),
                              str(pd.Timestamp(real.train.timestamps.max()))],
    }
    result = EvaluationResult(settings, data)
    if len(real_test) < len(syn):
        result.notes.append(f"only {len(real_test)} real test windows exist (asked for {len(syn)}): all are used")
    if meta.get("split") == "test":
        result.notes.append("the synthetic contexts come from the TEST period (split='test', the paper's setting): "
                            "test-period information reached the synthetic data")
    if volume_free:
        result.notes.append("volume-free data: volume and amount are dropped from the model features for both sets")
    ep = 20 if epochs is None else epochs

    if "discriminative" in metrics:
        kw: dict[str, Any] = dict(protocol=protocol, repeats=repeats, seed=s_model, epochs=ep, progress=progress)
        if iterations is not None:
            kw["iterations"] = iterations
        result.discriminative = discriminative_table(real_test, syn, real_train, volume_free=volume_free,
                                                     calibration=calibration, **times, **kw)
        if protocol == "timegan":
            fs = prepare_features(real_test, syn, volume_free=volume_free)
            result.predictive = predictive_score(fs.real, fs.synthetic, repeats=repeats, seed=s_model,
                                                 iterations=iterations or 5000, progress=progress)
    if "tstr" in metrics:
        tstr_test = real.test.values[sample_indices(len(real.test), n_test_tstr, s_real)]
        result.tstr = forecast_table(tstr_test, syn, real_train_all, lookback=lb, horizon=k, seed=s_model,
                                     repeats=repeats, epochs=ep, n_test=None,
                                     include_volume=not volume_free, progress=progress, calibration=calibration)
    if "diversity" in metrics:
        fs = prepare_features(real_test, syn, volume_free=volume_free)
        result.diversity = diversity(fs.real, fs.synthetic, real_close=real_test[..., 3],
                                     synthetic_close=syn[..., 3], max_n=max_plot, seed=s_model, tsne=tsne,
                                     k=DIVERSITY_K)
        # all train windows (not the sample): a copied window must find itself
        ft = prepare_features(real_train_all, syn[:1], volume_free=volume_free)
        result.memorization = memorization(fs.synthetic, ft.real, fs.real, seed=s_model)
    if "validity" in metrics:
        repaired = bool(meta.get("repair"))
        result.validity = [bar_validity(syn_all, label="synthetic (after repair)" if repaired else "synthetic (raw)")]
        raw = _raw_violations(synthetic) if repaired else None
        if raw is not None:
            result.validity.insert(0, raw)
        elif repaired:
            result.notes.append("the dataset was generated with repair=True and stores no raw violation counts: "
                                "the raw rate is in the generation summary, not in this report")
        result.validity.append(bar_validity(real.test.values[:, :1], label="real test bars (reference)"))
        if isinstance(synthetic, SyntheticDataset):
            _seam_and_drift(result, synthetic, real.frame, meta, preset, window)
        else:
            result.notes.append("seam and drift need a synthetic dataset with contexts: skipped for a bare array")
    if "stylized" in metrics:
        result.stylized = compare_stylized(real_test, syn, real_train)
    if "peers" in metrics:  # Context-FID's encoders train on the real train-period windows
        result.peers = peer_table(real_test, syn, real_train, seed=s_model, repeats=min(repeats, PEER_REPEATS),
                                  volume_free=volume_free, calibration=calibration)
    return result


def _raw_violations(dataset: SyntheticDataset) -> ValidityResult | None:
    """Raw (pre-repair) violation counts when the generator stored them per part as `raw_violations`."""
    path = Path(dataset.path)
    parts = sorted(path.glob("part-*.parquet")) if path.is_dir() else [path]
    counts: dict[str, int] = {}
    invalid = 0
    for p in parts:
        raw = read_part_metadata(p).get("raw_violations")
        if not raw:
            return None
        for k, v in raw.items():
            if k in CHECKS:  # the generator stores `bar_validity` counts under the same names
                counts[k] = counts.get(k, 0) + int(v)
        invalid += int(raw.get("invalid_bars", 0))
    n_bars = int((dataset.frame["step"] >= 0).sum())
    return ValidityResult(n_bars, counts, invalid, label="synthetic (raw, before repair)")


def _seam_and_drift(result: EvaluationResult, dataset: SyntheticDataset, frame: pd.DataFrame, meta: dict,
                    preset: FrequencyPreset, window: int) -> None:
    lookback = int(meta.get("lookback") or preset.lookback)
    ctx, last, cont = _context_lookup(dataset, frame, lookback, window)
    syn_all = dataset.to_array(FEATURES)
    blocks = (frame[SYMBOL].astype(str) + "|" + frame.get(SEGMENT, pd.Series("", index=frame.index)).astype(str))
    same = blocks.to_numpy()[1:] == blocks.to_numpy()[:-1]
    gaps = real_gaps(frame["open"].to_numpy()[None, :], frame["close"].to_numpy()[None, :])[same]
    ok = np.isfinite(last)
    if ok.any():
        result.seam = seam_gap(last[ok], syn_all[ok, 0, 0], gaps)
    else:
        result.notes.append("seam skipped: no sequence carries context bars or a context_end found in the real data")
    ok = np.isfinite(ctx).all(axis=1) & np.isfinite(cont).all(axis=1)
    if ok.sum() >= 5:
        result.drift = trend_drift(ctx[ok], syn_all[ok, :, 3], cont[ok])
    else:
        result.notes.append(f"drift skipped: only {int(ok.sum())} contexts have a real continuation of {window} bars")


def summary_lines(result: EvaluationResult) -> list[str]:
    """A few lines for the terminal: the headline number of each metric group that ran."""
    lines = []
    period = result.settings.get("period", "test")
    if result.discriminative:
        for name, r in result.discriminative.items():
            lines.append(f"discriminative [{r.protocol}] {row_label(name, period)}: {r.score}")
    if result.predictive is not None:
        lines.append(f"predictive score [timegan] (MAE): {result.predictive.mae}")
    if result.tstr:
        for name, r in result.tstr.items():
            lines.append(f"tstr {row_label(name, period)}: price IC {r.price_ic}, return IC {r.return_ic}")
    if result.diversity is not None:
        d = result.diversity
        lines.append(f"diversity: k-NN precision {d.precision:.3f}, recall {d.recall:.3f}")
    if result.memorization is not None:
        lines.append(f"memorization: {result.memorization.share_below_real_p1:.3f} of synthetic closer than the "
                     "real 1st percentile")
    for v in result.validity:
        lines.append(f"validity {v.label}: {v.invalid_share:.4%} of bars invalid")
    if result.seam is not None:
        lines.append(f"seam: KS {result.seam.ks_statistic:.3f}")
    if result.drift is not None:
        lines.append(f"drift slope: {result.drift.slope:.4f}")
    if result.stylized is not None:
        worse = sum(1 for r in result.stylized.rows if r.abs_diff > r.baseline)
        lines.append(f"stylized facts: {worse} of {len(result.stylized.rows)} differ more than real-vs-real")
    if result.peers:
        for name, p in result.peers.items():
            fid = "n/a" if p.context_fid is None else str(p.context_fid.score)
            lines.append(f"peers {row_label(name, period)}: Context-FID {fid}, correlational {p.correlational:.4f}, "
                         f"W1/std {p.w1_scaled_mean:.3f}, signature MMD p {p.signature.p_value:.3f}")
    return lines + [f"note: {n}" for n in result.notes]
