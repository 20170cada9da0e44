"""How much of the real excess kurtosis survives a tokenizer round trip, before and after more training.

    python -m evaluation.bench_tails eurusd-1h --tail-weight 2 --steps 300

Reads a finished protocol run (evaluation/results/NAME/work/{real.pkl,tokenizer}); prints the excess
kurtosis of close log returns of 2 000 test-period horizons: real, representation only (no tokenizer),
the protocol's tokenizer, and (with --steps) that tokenizer fine-tuned `steps` more with `--tail-weight`
(written to --out), or with --from-scratch a small tokenizer trained from scratch on the protocol's data.
docs/models.md ("Tail-weighted reconstruction") records the results.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from evaluation.protocol import load_protocol, resolve_data
from evaluation.stages import lookback, sample_period_windows
from kronos_synth.metrics.roundtrip import close_kurtosis, roundtrip_bars
from kronos_synth.model.pretrained import read_sidecar
from kronos_synth.model.representation import get_representation
from kronos_synth.model.tokenizer import KronosTokenizer
from kronos_synth.train import TokenizerTrainingConfig, prepare_training_data, train_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("protocol")
    ap.add_argument("--tail-weight", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=0, help="fine-tuning steps (0: only measure)")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--out", default=None, help="folder of the fine-tuned tokenizer [/tmp/tails-NAME-W]")
    ap.add_argument("--data-dir", default=None, help="folder of a folder protocol's files (e.g. crypto-15m)")
    ap.add_argument("--from-scratch", action="store_true",
                    help="train a small-config tokenizer from scratch instead of fine-tuning the protocol's")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate [5e-5 fine-tune, 1e-3 from scratch]")
    ap.add_argument("--bits", type=int, default=8, help="s1 and s2 bits (--from-scratch only)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    proto = load_protocol(args.protocol)
    run = Path("evaluation/results", proto["name"], "work")
    base = run / "tokenizer"
    window, lb = int(proto["window"]), lookback(proto)
    rep = get_representation(read_sidecar(base) or None)
    w = sample_period_windows(proto, pd.read_pickle(run / "real.pkl"), "test", args.n).values
    last = w[:, lb - 1, 3]

    def kurt(tok) -> float:
        return round(close_kurtosis(roundtrip_bars(tok, rep, w, lb), last), 2)

    print(f"{proto['name']}: real {round(close_kurtosis(w[:, lb:], last), 2)}, representation only {kurt(None)}, "
          f"protocol tokenizer {kurt(KronosTokenizer.from_pretrained(base).eval())}", flush=True)
    if args.steps:
        out = Path(args.out or f"/tmp/tails-{proto['name']}-{args.tail_weight:g}")
        source = resolve_data(proto, args.data_dir)
        if source is None:
            raise SystemExit(f"{proto['name']}: pass --data-dir with its {proto['data']} files")
        td = prepare_training_data([source[0]], freq=proto["freq"], lookback=lb, horizon=window,
                                   test_fraction=0.2, representation=rep.to_dict(), max_val_windows=512,
                                   validation="train-tail")
        t0 = time.perf_counter()
        start = dict(config="small", overrides={"s1_bits": args.bits, "s2_bits": args.bits}) if args.from_scratch \
            else dict(init=str(base))
        lr = args.lr or (1e-3 if args.from_scratch else 5e-5)
        train_tokenizer(td, out, TokenizerTrainingConfig(freq=proto["freq"], steps=args.steps, batch_size=64, lr=lr,
                                                         seed=0, eval_every=args.steps, patience=4,
                                                         tail_weight=args.tail_weight, validation="train-tail", **start), progress=False)
        how = f"from scratch ({args.bits}+{args.bits} bits)" if args.from_scratch else "more"
        print(f"{how}: {args.steps} steps, lr {lr:g}, tail weight {args.tail_weight:g} "
              f"({time.perf_counter() - t0:.0f} s): "
              f"{kurt(KronosTokenizer.from_pretrained(out).eval())}")


if __name__ == "__main__":
    main()
