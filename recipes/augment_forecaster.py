"""Recipe 1 — does synthetic data help a downstream forecaster?

Trains the evaluation layer's forecaster (docs/protocol.md §4: 2-layer LSTM(64), predicts the next 5
daily bars from 30) on (a) real train-period windows only and (b) the same real windows plus
synthetic Kronos sequences at ratios 0.5, 1 and 2, and scores every variant on the real TEST period
(IC / RankIC of the predicted price paths and of the 5-day return, mean ± 95 % interval over seeds).

    python recipes/augment_forecaster.py            # full size: ~2-8 min on 2 CPU cores (machine load)
    python recipes/augment_forecaster.py --quick    # tiny, ~1 min (what the test runs)

Offline: embedded data (sp500-daily) and the embedded default model. Everything lands in --work;
rerunning reuses the synthetic dataset it generated (generation resumes, same seed → same data).
The equivalent CLI for one ratio:

    kronos-synth generate --n 1200 --freq daily --data sp500-daily --repair --out runs/augment/synth
    kronos-synth augment --real sp500-daily --synthetic runs/augment/synth --ratio 1 --max-real 600 \\
        --out runs/augment/train-ratio1.parquet
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from kronos_synth.data.augment import augment_training_set, write_augmented
from kronos_synth.data.frequency import get_preset
from kronos_synth.data.sources import klines_for
from kronos_synth.generate.api import generate_dataset
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.metrics.evaluate import split_real
from kronos_synth.metrics.tstr import forecast_score

FREQ = "daily"
METRICS = ("price_ic", "price_rank_ic", "return_ic", "return_rank_ic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="sp500-daily", help="Real daily K-lines: embedded name or file.")
    ap.add_argument("--model", default=None, help="Generator checkpoint (default: the embedded model).")
    ap.add_argument("--real-windows", type=int, default=600, help="Real train windows (a seeded sample).")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--repeats", type=int, default=5, help="Forecaster seeds per variant (the protocol: 5).")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--test-windows", type=int, default=1000, help="Real test windows scored (at most).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/augment", help="Folder for the synthetic data and results.")
    ap.add_argument("--quick", action="store_true", help="Tiny sizes for a smoke test (~1 min).")
    args = ap.parse_args(argv)
    if args.quick:
        args.real_windows, args.repeats, args.epochs, args.test_windows = 40, 2, 2, 100
    return args


def fmt(e) -> str:
    """mean ± half width of a 95 % interval (no interval with one repeat)."""
    return f"{e.mean:+.3f}" + ("" if math.isnan(e.half_width) else f" ± {e.half_width:.3f}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    preset = get_preset(FREQ)
    lookback, horizon = preset.tstr_lookback, preset.tstr_horizon
    window = lookback + horizon

    # 1. Synthetic sequences: continuations of real TRAIN-period contexts (no test information).
    n_syn = math.ceil(max(args.ratios) * args.real_windows)
    config = GenerationConfig(freq=FREQ, horizon=window, seed=args.seed, split="train", repair=True)
    summary = generate_dataset(config, n=n_syn, data=args.data, model=args.model, out=str(work / "synth"),
                               progress=False)
    print(f"synthetic: {n_syn} sequences of {window} bars in {work / 'synth'} "
          f"({summary.wall_time_s:.0f} s, {summary.parts_skipped} parts reused)", file=sys.stderr)

    # 2. Real test windows: the last 20 % of the series, never seen by the generator or the forecasters.
    frame, _ = klines_for(FREQ, args.data)
    test = split_real(frame, freq=preset, window=window).test.values

    # 3. One training set per ratio (the same real windows each time), one forecaster per set and seed.
    rows = []
    for ratio in [0.0, *args.ratios]:
        aug = augment_training_set(args.data, work / "synth", ratio=ratio, window=window, freq=FREQ,
                                   seed=args.seed, max_real=args.real_windows)
        if ratio:
            write_augmented(aug, work / f"train-ratio{ratio:g}.parquet")
        name = "real only" if ratio == 0 else f"real + synthetic ×{ratio:g}"
        res = forecast_score(aug.to_array(), test, lookback=lookback, horizon=horizon, train_on=name,
                             repeats=args.repeats, seed=args.seed, epochs=args.epochs, n_test=args.test_windows)
        rows.append({"train_set": name, "ratio": ratio, "n_real": aug.n_real, "n_synthetic": aug.n_synthetic,
                     **{k: getattr(res, k) for k in METRICS}})
        print(f"  {name}: done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)

    # 4. The table (Markdown, so it can be pasted into docs as is).
    cmd = "python recipes/augment_forecaster.py " + " ".join(sys.argv[1:] if argv is None else argv)
    n_test = min(args.test_windows, len(test))
    print(f"\nForecaster trained on {args.data} train windows ({lookback} → {horizon} bars), tested on "
          f"{n_test} real test-period windows; mean ± 95 % interval over {args.repeats} seeds.")
    print(f"Command: `{cmd.strip()}`\n")
    print("| training set | real | synthetic | price IC | price RankIC | return IC | return RankIC |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['train_set']} | {r['n_real']} | {r['n_synthetic']} | "
              + " | ".join(fmt(r[k]) for k in METRICS) + " |")
    wall = time.perf_counter() - t0
    print(f"\ntotal {wall:.0f} s")
    result = {"command": cmd.strip(), "settings": vars(args), "n_test": n_test, "wall_time_s": wall,
              "rows": [{**r, **{k: r[k].to_dict() for k in METRICS}} for r in rows]}
    (work / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
