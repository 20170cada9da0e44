"""Recipe 2 — fine-tune Kronos on your own CSV, then generate and evaluate.

Stands in for "your CSV" with an embedded market the default model never saw: EUR/USD hourly bars
(`eurusd-1h`, exported to --work/my_market.csv). Pass --csv to use your own file instead (columns
timestamps, open, high, low, close[, volume, amount][, symbol]).

1. check the file (what `kronos-synth datasets check` prints);
2. fine-tune the embedded default predictor on the file's TRAIN period (its tokenizer stays frozen),
   choosing the checkpoint on the train period's own tail, so the test period stays unseen;
3. generate the same number of sequences with the base and the fine-tuned model (same seed);
4. evaluate both against the file's TEST period: discriminative score, validity, seam, drift and
   stylized facts, side by side.

    python recipes/finetune_your_csv.py                     # full size: ~5-8 min on 2 CPU cores
    python recipes/finetune_your_csv.py --csv my.csv --freq 15min
    python recipes/finetune_your_csv.py --quick             # tiny (what the test runs)

The CLI equivalent of steps 2-4:

    kronos-synth train model --init kronos_synth/assets/default/model \\
        --tokenizer kronos_synth/assets/default/tokenizer --data my_market.csv --freq 1h \\
        --lookback 96 --horizon 35 --steps 120 --lr 1e-4 --validation train-tail --out runs/finetune/model
    kronos-synth generate --n 400 --freq 1h --data my_market.csv --model runs/finetune/model \\
        --lookback 96 --horizon 35 --out runs/finetune/synth-finetuned
    kronos-synth evaluate all --real my_market.csv --synthetic runs/finetune/synth-finetuned \\
        --no-tsne --out runs/finetune/report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kronos_synth.data.datasets import load_dataset
from kronos_synth.data.readers import inspect_klines
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.data.writers import write_klines
from kronos_synth.generate.api import generate_dataset
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.metrics.evaluate import evaluate_all
from kronos_synth.model.pretrained import default_model_dir
from kronos_synth.train import PredictorTrainingConfig, train_predictor


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", default=None, help="Your K-line file (default: eurusd-1h exported as a CSV).")
    ap.add_argument("--freq", default="1h", help="Bar frequency to work at.")
    ap.add_argument("--lookback", type=int, default=96, help="Context bars (the default model's: 96).")
    ap.add_argument("--horizon", type=int, default=35, help="Generated bars (the default model's: 35).")
    ap.add_argument("--steps", type=int, default=120, help="Fine-tuning steps.")
    ap.add_argument("--lr", type=float, default=1e-4, help="Peak learning rate.")
    ap.add_argument("--eval-every", type=int, default=None, help="Validate every N steps (default: steps / 3).")
    ap.add_argument("--n", type=int, default=400, help="Sequences generated per model.")
    ap.add_argument("--repeats", type=int, default=3, help="Discriminator seeds.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/finetune")
    ap.add_argument("--quick", action="store_true", help="Tiny sizes for a smoke test.")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.n, args.repeats, args.eval_every = 2, 16, 1, 2
    return args


def headline(result) -> dict:
    """The numbers to compare, from an EvaluationResult."""
    disc = result.discriminative["synthetic"].score
    raw = next((v for v in result.validity if v.label.startswith("synthetic")), None)
    rows = result.stylized.rows if result.stylized is not None else []
    return {
        "discriminative": f"{disc}",
        "discriminative_mean": disc.mean,
        "invalid bars (raw, any check)": f"{raw.invalid_share:.2%}" if raw else "n/a",
        "high < max(open, close)": f"{raw.shares['high < max(open, close)']:.2%}" if raw else "n/a",
        "seam KS": f"{result.seam.ks_statistic:.3f}" if result.seam else "n/a",
        "drift slope": f"{result.drift.slope:+.4f}" if result.drift else "n/a",
        "stylized worse than real-vs-real": f"{sum(r.abs_diff > r.baseline for r in rows)} of {len(rows)}",
    }


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    csv = args.csv
    if csv is None:
        csv = str(work / ("my_market_quick.csv" if args.quick else "my_market.csv"))
        if not Path(csv).exists():
            bars = load_dataset("eurusd-1h")
            write_klines(bars.tail(1500) if args.quick else bars, csv)  # quick: fewer windows to validate on

    # 1. Check the file: a bad row stops here with the file, column and row named.
    frame, reports = inspect_klines(csv)
    print(f"{csv}: {len(frame)} bars, symbols {sorted(frame['symbol'].unique())}, "
          f"{frame['timestamps'].iloc[0]} … {frame['timestamps'].iloc[-1]}")
    for r in reports:
        print("  " + r.summary().replace("\n", "\n  "))

    # 2. Fine-tune the embedded predictor on the train period. Validation (early stopping, the checkpoint kept)
    #    is the train period's tail: step 4 scores the test period, which must not have chosen the model.
    base = default_model_dir()
    win = dict(freq=args.freq, lookback=args.lookback, horizon=args.horizon)
    config = PredictorTrainingConfig(init=str(base / "model"), steps=args.steps, lr=args.lr, seed=args.seed,
                                     eval_every=args.eval_every or max(1, args.steps // 3), patience=0,
                                     validation="train-tail", **win)
    tuned = train_predictor([csv], work / "model", config, tokenizer=str(base / "tokenizer"), progress=False, log=log)
    hist = tuned.result.history
    print(f"fine-tuning: validation loss {hist[0]['val_loss']:.4f} (base model) → "
          f"{tuned.result.best_val_loss:.4f} (best, step {tuned.result.best_step}) in "
          f"{tuned.result.wall_time_s:.0f} s")

    # 3. Generate with both models: same contexts (train period), same seed.
    results = {}
    for name, model in (("base (embedded default)", None), ("fine-tuned", str(work / "model"))):
        out = work / ("synth-base" if model is None else "synth-finetuned")
        generate_dataset(GenerationConfig(seed=args.seed, **win), n=args.n, data=csv, model=model, out=str(out),
                         progress=False)
        # 4. Evaluate against the real test period.
        res = evaluate_all(frame, read_synthetic(out), freq=args.freq,
                           metrics=("discriminative", "validity", "stylized"), repeats=args.repeats,
                           seed=args.seed, calibration=False)
        results[name] = headline(res)
        log(f"  {name}: evaluated ({time.perf_counter() - t0:.0f} s)")

    keys = [k for k in next(iter(results.values())) if k != "discriminative_mean"]
    print(f"\n{args.n} sequences of {args.horizon} bars per model, evaluated on the test period of {csv} "
          f"({args.repeats} discriminator seeds; discriminative: 0.5 = indistinguishable):\n")
    print("| model | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for name, h in results.items():
        print(f"| {name} | " + " | ".join(h[k] for k in keys) + " |")
    wall = time.perf_counter() - t0
    print(f"\ntotal {wall:.0f} s; fine-tuned model in {work / 'model'} (use it with --model)")
    out = {"settings": vars(args), "csv": csv, "val_loss_before": hist[0]["val_loss"],
           "val_loss_best": tuned.result.best_val_loss, "results": results, "wall_time_s": wall}
    (work / "result.json").write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
