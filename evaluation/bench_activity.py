"""Does a generated window keep its activity level from start to end, as real windows do?

For every window of the evaluation's sets (real test period, real train period, Kronos's generated set of a
protocol run): the within-window trend of volatility, log(mean |close-to-close return| over the last third /
over the first third), and of volume, log(mean volume over the last third / the first third). Prints the
mean and the interquartile range (IQR) of each, and the generated IQR as a share of the real test one. For
bar sizes with a whole number of bars per day (at most half a window), also the daily cycle of volume: the
median lag-one-day autocorrelation of log volume inside a window. A
generator whose paths wander (a level that drifts away and is not pulled back) has a wider spread and, for
a right-skewed quantity such as volume, a negative mean (the mean of the logs falls as the spread grows).

`--disc` also trains the evaluation's discriminative classifier (3 repeats) on each third of the window
alone and on the whole window: a generator that is hard to tell apart on short stretches but easy on the
whole window fails on how the stretches hang together, not on the bars themselves.

    python -m evaluation.bench_activity evaluation/results/eurusd-1h [--disc]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.protocol import load_protocol
from evaluation.stages import _eval_kwargs
from kronos_synth.data.schema import FEATURES
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.metrics.discriminative import discriminative_score
from kronos_synth.metrics.evaluate import sample_indices, split_real
from kronos_synth.metrics.features import normalize_sequences
from kronos_synth.metrics.stats import repeat_seeds


def window_trends(bars: np.ndarray) -> dict[str, np.ndarray]:
    """(n, T, 6) bars → {"volatility", "volume"}: (n,) log(last third / first third) of mean |return| and of
    mean volume (NaN where a third has no activity)."""
    x = np.asarray(bars, np.float64)
    r = np.abs(np.diff(np.log(x[..., 3]), axis=1))
    third = r.shape[1] // 3
    vol = x[:, 1:, 4]  # the bars the returns end on: both trends over the same stretches
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"volatility": np.log(r[:, -third:].mean(1) / r[:, :third].mean(1)),
                "volume": np.log(vol[:, -third:].mean(1) / vol[:, :third].mean(1))}


def daily_cycle(bars: np.ndarray, lag: int) -> float:
    """Median over windows of the lag-`lag` autocorrelation of log1p(volume) (one day of bars: how closely
    each day repeats the last one's activity clock)."""
    v = np.log1p(np.maximum(np.asarray(bars, np.float64)[..., 4], 0))
    v = v - v.mean(axis=1, keepdims=True)
    a, b = v[:, :-lag], v[:, lag:]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.nanmedian(r))


def _summary(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)]
    q1, q3 = np.quantile(x, [0.25, 0.75])
    return {"n": int(len(x)), "mean": float(x.mean()), "iqr": float(q3 - q1)}


def measure(results: Path, disc: bool = False, extra: dict[str, str] | None = None) -> dict:
    stages = json.loads((results / "stages.json").read_text())
    proto = load_protocol(stages["protocol"])
    kw = _eval_kwargs(proto)
    frame = pd.read_pickle(results / "work" / "real.pkl")
    real = split_real(frame, freq=kw["freq"], window=int(proto["window"]), test_fraction=kw["test_fraction"])
    s_real, s_syn, s_model = repeat_seeds(kw["seed"], 3)  # evaluate_all's seeds: the same samples
    ti, tri = sample_indices(len(real.test), kw["n"], s_real), sample_indices(len(real.train), kw["n"], s_real)
    ds = read_synthetic(results / "work" / "kronos")
    gen = ds.to_array(FEATURES)
    gi = sample_indices(len(gen), kw["n"], s_syn)
    sets = {"real test": (real.test.values[ti], real.test.spans()[ti]),
            "real train": (real.train.values[tri], real.train.spans()[tri]),
            "kronos": (gen[gi], ds.spans()[gi])}
    for name, folder in (extra or {}).items():  # e.g. the select stage's sets (contexts of the train period)
        other = read_synthetic(folder)
        x = other.to_array(FEATURES)
        idx = sample_indices(len(x), kw["n"], s_syn)
        sets[name] = (x[idx], other.spans()[idx])
    volume_free = bool(np.all(sets["real test"][0][..., 4] == 0))
    out: dict = {"protocol": proto["name"], "trends": {}}
    for name, (x, _) in sets.items():
        t = window_trends(x)
        out["trends"][name] = {k: _summary(v) for k, v in t.items() if not (volume_free and k == "volume")}
    per_day = pd.Timedelta("1D") / kw["freq"].timedelta
    lag = int(round(per_day))
    if not volume_free and per_day == lag and 2 <= lag <= sets["real test"][0].shape[1] // 2:
        out["daily_cycle_lag"] = lag
        for name, (x, _) in sets.items():
            out["trends"][name]["volume_daily_cycle"] = daily_cycle(x, lag)
    ref = out["trends"]["real test"]
    for name in [k for k in sets if k != "real test"]:
        for k, v in out["trends"][name].items():
            if isinstance(v, dict):
                v["iqr_share"] = v["iqr"] / ref[k]["iqr"]
    if disc:
        length = sets["real test"][0].shape[1]
        third = length // 3
        parts = {"first third": slice(0, third), "middle third": slice(third, 2 * third),
                 "last third": slice(length - third, length), "whole window": slice(0, length)}
        out["discriminative"] = {}
        rt, rtime = sets["real test"]
        for name in [k for k in sets if k != "real test"]:
            x, t = sets[name]
            row = {}
            for part, sl in parts.items():
                fr, fs = normalize_sequences(rt[:, sl]), normalize_sequences(x[:, sl])
                if volume_free:
                    fr, fs = fr[..., :4], fs[..., :4]
                d = discriminative_score(fr, fs, repeats=3, seed=s_model, epochs=kw["epochs"], real_time=rtime,
                                         synthetic_time=t, threads=1)
                row[part] = {"mean": d.error.mean, "half_width": d.error.half_width}
            out["discriminative"][name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a protocol results folder whose work/ holds real.pkl and the Kronos set")
    ap.add_argument("--disc", action="store_true", help="also the classifier on each third and on the whole window")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=FOLDER",
                    help="another generated dataset folder to measure beside Kronos's (repeatable)")
    args = ap.parse_args()
    extra = dict(item.split("=", 1) for item in args.set)
    print(json.dumps(measure(Path(args.results), args.disc, extra), indent=1))


if __name__ == "__main__":
    main()
