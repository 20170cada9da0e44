"""Measure every baseline: fit time, sampling time for 6000 windows, collapse check.

Runs the library exactly as `kronos-synth baseline fit/sample` does, on
- the embedded daily dataset (`sp500-daily`, window 35), and
- `BTCUSDT_15m.csv` of the crypto benchmark folder (`evaluation.protocol.CRYPTO_DATA_DIR`, or the file
  `$KRONOS_SYNTH_CRYPTO`; 15min, window 96),
with the CPU-sized defaults (or `--steps N` / `-o key=value` for quick timings and variants), and
writes one JSON line per (dataset, baseline) to `evaluation/results/bench_baselines.jsonl`.

    python -m evaluation.bench_baselines [--only garch,bootstrap] [--sets daily,crypto] [-o sampling_steps=50]
    python evaluation/bench_baselines.py …   (the same, run as a script)

Run it alone: the machine has 2 shared cores. Rows record wall and process CPU seconds and the
1-minute load average, since wall times on a shared machine depend on the other jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import numpy as np

from kronos_synth.baselines import NAMES, get_baseline
from kronos_synth.baselines.fitting import fit_baseline

if not __package__:  # run as a script (python evaluation/bench_baselines.py): make `evaluation` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from evaluation.protocol import CRYPTO_DATA_DIR  # noqa: E402

SETS = {
    "daily": ("sp500-daily", "daily", 35),
    "crypto": (os.environ.get("KRONOS_SYNTH_CRYPTO", str(CRYPTO_DATA_DIR / "BTCUSDT_15m.csv")),
               "15min", 96),
}


def run(name: str, data: str, freq: str, window: int, out_root: str, steps: int | None = None,
        n_sample: int = 6000, options: dict | None = None) -> dict:
    out = os.path.join(out_root, f"{name}-{freq}")
    load_start = os.getloadavg()[0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit_baseline(name, data, freq, out, seed=0, window=window, steps=steps, options=options)
        fit_total, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    load_fit_end = os.getloadavg()[0]
    model = get_baseline(name).load(out)
    t0, c0 = time.perf_counter(), time.process_time()
    x = model.sample(n_sample, seed=1)
    sample_s, sample_cpu = time.perf_counter() - t0, time.process_time() - c0
    r = res.report
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "dataset": data, "freq": freq, "window": window, "baseline": name, "n_windows": r.n_windows,
        "steps": steps if steps is not None else "default", "options": model.options,
        "n_parameters": r.n_parameters,
        "fit_s": r.wall_time_s, "fit_total_s": round(fit_total, 2), "fit_total_cpu_s": round(fit_cpu, 2),
        "n_sample": n_sample, "sample_s": round(sample_s, 2), "sample_cpu_s": round(sample_cpu, 2),
        # 1-minute load average at the start, after the fit and after sampling (2 cores: > 2 = contention)
        "load_avg_1min": [round(load_start, 2), round(load_fit_end, 2), round(os.getloadavg()[0], 2)],
        "final_losses": r.final_losses,
        "collapse_ratios": {k: round(v, 3) for k, v in r.collapse.ratios.items()},
        "collapsed": r.collapse.collapsed, "finite": bool(np.isfinite(x).all()),
        "prices_positive": bool((x[..., :4] > 0).all()),
        "ohlc_valid_share": float(((x[..., 1] >= x[..., [0, 3]].max(-1)) & (x[..., 2] <= x[..., [0, 3]].min(-1))
                                   & (x[..., 2] > 0)).mean()),
        "negative_volume_share": float((x[..., 4] < 0).mean()),
        "warnings": [str(w.message) for w in caught if "Collapse" in w.category.__name__],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(NAMES))
    ap.add_argument("--sets", default="daily,crypto")
    ap.add_argument("--steps", type=int, default=None, help="override the training budget (quick timing runs)")
    ap.add_argument("--n-sample", type=int, default=6000)
    ap.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                    help="model option (JSON value), as `kronos-synth baseline fit -o`")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_baselines.jsonl"))
    args = ap.parse_args()
    options = {}
    for pair in args.option:
        key, _, value = pair.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.sets.split(","):
            data, freq, window = SETS[s]
            for name in args.only.split(","):
                row = run(name, data, freq, window, tmp, args.steps, args.n_sample, options or None)
                print(json.dumps(row), flush=True)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
