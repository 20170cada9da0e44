"""Evaluation budgets (docs/protocol.md, section 8): one discriminative repeat at n = 3000 + 3000, length 96, and one
TSTR repeat with 6000 training sequences at the 15-minute shapes (lookback 80, horizon 16), on real
15-minute crypto windows (`evaluation.protocol.CRYPTO_DATA_DIR` when present, else simulated bars).

  python -m evaluation.bench_metrics --out docs/performance.md

Writes the `## Evaluation budgets` section of --out (replacing an earlier one) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from evaluation.markdown import replace_section
from evaluation.protocol import CRYPTO_DATA_DIR
from kronos_synth.metrics.discriminative import discriminative_score
from kronos_synth.metrics.features import prepare_features
from kronos_synth.metrics.tstr import forecast_score

HEADING = "## Evaluation budgets"
CRYPTO = str(CRYPTO_DATA_DIR)


def _windows(n: int, length: int, seed: int) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(seed)
    pattern = os.path.join(os.path.abspath(CRYPTO), "*_15m.csv")
    if os.path.isdir(CRYPTO):
        from kronos_synth.data.cleaning import clean_klines
        from kronos_synth.data.sources import load_klines
        from kronos_synth.data.splits import extract_windows

        w = extract_windows(clean_klines(load_klines(pattern), "15min").frame, length).values
        return w[rng.choice(len(w), n, replace=len(w) < n)], "crypto-binance *_15m.csv windows"
    r = rng.normal(0, 0.004, (n, length))
    close = 100 * np.exp(np.cumsum(r, axis=1))
    open_ = np.concatenate([np.full((n, 1), 100.0), close[:, :-1]], axis=1)
    hi, lo = np.maximum(open_, close) * 1.001, np.minimum(open_, close) * 0.999
    vol = np.exp(rng.normal(10, 0.5, (n, length)))
    return np.stack([open_, hi, lo, close, vol, vol * close], -1), "simulated bars"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="discriminative n (per class, train and test)")
    ap.add_argument("--tstr-train", type=int, default=6000)
    ap.add_argument("--tstr-test", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    real, source = _windows(2 * args.n, 96, 0)
    fake, _ = _windows(2 * args.n, 96, 1)
    fs = prepare_features(real, fake)
    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    d = discriminative_score(fs.real, fs.synthetic, n=args.n, repeats=1, threads=args.threads)
    t_disc = time.perf_counter() - t

    train, _ = _windows(args.tstr_train, 96, 2)
    test, _ = _windows(args.tstr_test, 96, 3)
    t = time.perf_counter()
    f = forecast_score(train, test, lookback=80, horizon=16, repeats=1, n_test=args.tstr_test, threads=args.threads)
    t_tstr = time.perf_counter() - t
    load1 = os.getloadavg()[0]

    text = "\n".join([
        HEADING, "",
        f"Measured with `python -m evaluation.bench_metrics{' --out ' + args.out if args.out else ''}` "
        f"(script: `evaluation/bench_metrics.py`) on {source}; torch {torch.__version__}, "
        f"{args.threads} torch thread(s), {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"1-min load average {load0:.1f} → {load1:.1f} (the machine is shared, so these are upper bounds).", "",
        "| metric | setting | wall time | budget |",
        "|---|---|---|---|",
        f"| discriminative, 1 repeat | n = {args.n} + {args.n} train, {args.n} + {args.n} test, length 96, "
        f"LSTM(32), 20 epochs, batch 64 | {t_disc:.1f} s | ≤ 120 s |",
        f"| TSTR, 1 repeat | {args.tstr_train} training sequences, lookback 80 → horizon 16, 2×LSTM(64), "
        f"20 epochs, batch 64, {args.tstr_test} test windows | {t_tstr:.1f} s | ≤ 180 s |",
        "",
        f"(discriminative error {d.error.mean:.3f} and TSTR price IC {f.price_ic.mean:.3f} — the sets are "
        "different real windows, so these only show the runs completed.) A full `evaluate all` adds the three "
        "calibration rows to each, so it costs about 4× (discriminative) and 4× (TSTR) these times per repeat. "
        "One torch thread is the default (`KRONOS_SYNTH_THREADS` overrides): on the shared 2-core machine a "
        "second OpenMP thread waiting for a busy core made a training step ~20× slower.",
        "",
    ])
    print(text)
    if args.out:
        replace_section(args.out, HEADING, text)



if __name__ == "__main__":
    main()
