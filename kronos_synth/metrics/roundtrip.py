"""The tokenizer round trip: the fidelity ceiling a tokenizer and its representation allow.

Real windows are mapped into the model space (statistics of the lookback only), encoded to tokens
and decoded again; the horizon is rebuilt as generation rebuilds it (geometry: from the last
lookback close). The result is what the generator would output if the predictor emitted exactly
the true tokens, so no generator scores better than its round trip. `evaluate_roundtrip` scores it
against other real test windows with the discriminative protocol, validity and stylized facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy.stats import kurtosis

from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import get_preset, infer_frequency
from kronos_synth.metrics.calibration import discriminative_table
from kronos_synth.metrics.evaluate import EvaluationResult, split_real
from kronos_synth.metrics.features import is_volume_free
from kronos_synth.metrics.stats import repeat_seeds
from kronos_synth.metrics.stylized import compare_stylized
from kronos_synth.metrics.validity import bar_validity
from kronos_synth.model.representation import Representation, get_representation


def _check_windows(windows: np.ndarray, lookback: int) -> np.ndarray:
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3 or w.shape[-1] != 6:
        raise InputError(f"windows must be (N, lookback + horizon, 6) raw bars, got shape {w.shape}")
    if not 0 < lookback < w.shape[1]:
        raise InputError(f"lookback {lookback} must leave a horizon inside windows of {w.shape[1]} bars")
    return w


@torch.no_grad()
def _roundtrip(tokenizer, rep: Representation, w: np.ndarray, lookback: int, batch_size: int,
               device: str) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    out = np.empty((len(w), w.shape[1] - lookback, 6), dtype=np.float64)
    ids1, ids2 = [], []
    if tokenizer is not None:
        tokenizer = tokenizer.to(device).eval()
    for a in range(0, len(w), max(1, int(batch_size))):
        chunk = w[a:a + batch_size]
        stats = rep.fit(chunk[:, :lookback])
        z = rep.transform(chunk, stats)
        if tokenizer is not None:
            s1, s2 = tokenizer.encode(torch.from_numpy(z).to(device), half=True)
            ids1.append(s1.cpu().numpy().ravel())
            ids2.append(s2.cpu().numpy().ravel())
            z = tokenizer.decode((s1, s2), half=True).float().cpu().numpy()
        out[a:a + len(chunk)] = rep.inverse(z[:, lookback:], stats)
    return out, ids1, ids2


def roundtrip_bars(tokenizer, representation, windows: np.ndarray, lookback: int, *, batch_size: int = 512,
                   device: str = "cpu") -> np.ndarray:
    """Real windows (N, lookback + horizon, 6) → their decoded horizons (N, horizon, 6) float64.

    Fit `representation` (instance, name or sidecar dict) on the lookback, transform the whole window,
    `tokenizer` encode (half=True) → decode, inverse continuing from the last lookback close.
    `tokenizer=None` skips the tokenizer: what the representation alone loses (clip, compression)."""
    w = _check_windows(windows, lookback)
    return _roundtrip(tokenizer, get_representation(representation), w, lookback, batch_size, device)[0]


def _usage(ids: list[np.ndarray], bits: int) -> dict[str, float]:
    counts = np.bincount(np.concatenate(ids), minlength=2 ** bits)
    return {"used": int((counts > 0).sum()), "vocab": 2 ** bits, "usage": float((counts > 0).mean())}


def close_kurtosis(bars: np.ndarray, last_close: np.ndarray | None = None) -> float:
    """Excess kurtosis of close log returns within each sequence (from `last_close` when given)."""
    c = np.asarray(bars, np.float64)[..., 3]
    if last_close is not None:
        c = np.concatenate([np.asarray(last_close, np.float64)[:, None], c], axis=1)
    r = np.diff(np.log(c), axis=1).ravel()
    return float(kurtosis(r[np.isfinite(r)], fisher=True))


@dataclass
class RoundtripResult:
    """An `EvaluationResult` of the decoded horizons plus what only a round trip has."""

    evaluation: EvaluationResult
    summary: dict = field(default_factory=dict)


def evaluate_roundtrip(tokenizer, representation, real_frame: pd.DataFrame, *, lookback: int, horizon: int,
                       freq: str | None = None, n: int = 500, repeats: int = 3, seed: int = 0,
                       test_fraction: float = 0.2, epochs: int | None = None, calibration: bool = True,
                       batch_size: int = 512, device: str = "cpu", progress: bool = False,
                       sources: dict | None = None) -> RoundtripResult:
    """Round-trip `n` real TEST-period windows (lookback + horizon, `split_real` conventions) and score
    their decoded horizons against the horizons of `n` other test windows: discriminative (paper
    protocol, `repeats` seeds, with calibration rows unless `calibration=False`), raw validity and
    stylized facts. The summary adds codebook usage and the excess kurtosis of close returns of the
    real horizons, the representation-only round trip and the tokenizer round trip."""
    if lookback < 1 or horizon < 2:
        raise InputError(f"lookback must be ≥ 1 and horizon ≥ 2, got {lookback}, {horizon}",
                         param=("lookback", "horizon"))
    if n < 4:
        raise InputError(f"n must be at least 4, got {n}", param="n")
    rep = get_representation(representation)
    preset = get_preset(freq) if freq else infer_frequency(real_frame)
    window = lookback + horizon
    real = split_real(real_frame, freq=preset, window=window, test_fraction=test_fraction)
    s_pick, s_model = repeat_seeds(seed, 2)
    perm = np.random.default_rng(s_pick).permutation(len(real.test))
    m = min(n, len(real.test) // 2)
    trip_idx, ref_idx = np.sort(perm[:m]), np.sort(perm[m:2 * m])
    trip_windows = real.test.values[trip_idx]
    decoded, ids1, ids2 = _roundtrip(tokenizer, rep, trip_windows, lookback, batch_size, device)
    rep_only = _roundtrip(None, rep, trip_windows, lookback, batch_size, device)[0]
    real_ref = real.test.values[ref_idx, lookback:]
    train_idx = np.sort(np.random.default_rng(s_pick).permutation(len(real.train))[:m])
    real_train = real.train.values[train_idx, lookback:]
    volume_free = is_volume_free(real.test.values)

    ep = 20 if epochs is None else epochs
    settings = {
        "metrics": ["discriminative", "validity", "stylized"], "protocol": "paper", "repeats": repeats,
        "seed": seed, "n_requested": n, "epochs": ep, "freq": preset.name, "window": horizon,
        "lookback": lookback, "horizon": horizon, "test_fraction": test_fraction, "gap": window,
        "representation": rep.to_dict(), "calibration": calibration, "volume_free": volume_free,
        "sample_seeds": {"windows": s_pick, "models": s_model},
        "real_windows": "round trip: n test windows (lookback + horizon); reference: the horizons of n other "
                        "test windows (disjoint indices; the classifier trains and tests on disjoint time blocks)",
    }
    data = {
        "sources": sources or {}, "synthetic_metadata": {"generator": f"tokenizer round trip ({rep.name})"},
        "n_synthetic_available": int(len(real.test)), "n_synthetic_used": int(m),
        "n_real_test_available": int(len(real.test)), "n_real_test_used": int(m),
        "n_real_train_available": int(len(real.train)), "n_real_train_used": int(len(real_train)),
        "cleaning": real.cleaning,
        "real_test_period": [str(pd.Timestamp(real.test.timestamps.min())),
                             str(pd.Timestamp(real.test.timestamps.max()))],
        "real_train_period": [str(pd.Timestamp(real.train.timestamps.min())),
                              str(pd.Timestamp(real.train.timestamps.max()))],
    }
    result = EvaluationResult(settings, data)
    if m < n:
        result.notes.append(f"only {len(real.test)} real test windows exist: {m} round-tripped, {m} as reference")
    table = discriminative_table(real_ref, decoded, real_train, seed=s_model, volume_free=volume_free,
                                 calibration=calibration, protocol="paper", repeats=repeats, epochs=ep,
                                 progress=progress, real_test_time=real.test.spans(lookback)[ref_idx],
                                 synthetic_time=real.test.spans(lookback)[trip_idx],
                                 real_train_time=real.train.spans(lookback)[train_idx])
    result.discriminative = {("tokenizer round trip" if k == "synthetic" else k): v for k, v in table.items()}
    result.validity = [bar_validity(decoded, label="tokenizer round trip (raw)"),
                       bar_validity(rep_only, label="representation only, no tokenizer (raw)"),
                       bar_validity(trip_windows[:, lookback:], label="real test bars (reference)")]
    result.stylized = compare_stylized(real_ref, decoded, real_train)
    last = trip_windows[:, lookback - 1, 3]
    summary = {
        "discriminative_error": result.discriminative["tokenizer round trip"].score.to_dict(),
        "invalid_share": result.validity[0].invalid_share,
        "excess_kurtosis": {"real": close_kurtosis(trip_windows[:, lookback:], last),
                            "representation_only": close_kurtosis(rep_only, last),
                            "tokenizer_round_trip": close_kurtosis(decoded, last)},
        "codebook_usage": ({"s1": _usage(ids1, tokenizer.s1_bits), "s2": _usage(ids2, tokenizer.s2_bits)}
                           if tokenizer is not None else {}),
        "n": int(m),
    }
    result.data["roundtrip"] = summary
    k = summary["excess_kurtosis"]
    result.notes.append(f"excess kurtosis of close log returns over the horizon (from the last lookback close): "
                        f"real {k['real']:.2f}, representation only {k['representation_only']:.2f}, "
                        f"tokenizer round trip {k['tokenizer_round_trip']:.2f}")
    if summary["codebook_usage"]:
        u = summary["codebook_usage"]
        result.notes.append(f"codebook usage on these windows: s1 {u['s1']['used']} of {u['s1']['vocab']} codes, "
                            f"s2 {u['s2']['used']} of {u['s2']['vocab']}")
    return RoundtripResult(result, summary)


def summary_lines(res: RoundtripResult) -> list[str]:
    """A few lines for the terminal."""
    s, ev = res.summary, res.evaluation
    k = s["excess_kurtosis"]
    lines = [f"{name}: discriminative error {r.score}" for name, r in (ev.discriminative or {}).items()]
    lines.append(f"raw invalid bars: round trip {ev.validity[0].invalid_share:.4%}, "
                 f"representation only {ev.validity[1].invalid_share:.4%}")
    lines.append(f"excess kurtosis of close returns: real {k['real']:.2f}, representation only "
                 f"{k['representation_only']:.2f}, round trip {k['tokenizer_round_trip']:.2f}")
    if s["codebook_usage"]:
        u = s["codebook_usage"]
        lines.append(f"codebook usage: s1 {u['s1']['usage']:.1%}, s2 {u['s2']['usage']:.1%}")
    return lines
