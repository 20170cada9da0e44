"""Reproduce the embedded default model (kronos_synth/assets/default/{tokenizer,model}).

    python recipes/train_default_model.py                 # train into runs/default, install into the package
    python recipes/train_default_model.py --no-install    # train only (e.g. to compare sha256)
    python recipes/train_default_model.py --representation levels --work runs/default-levels --no-install  # the reference space

Data: the TRAIN periods (first 80 % of each series minus a one-window gap) of the embedded daily
datasets sp500-daily, nasdaq-daily and goog-daily. One CPU thread: results are bit-identical
for the same seed and thread count on the same torch build (and one thread is also the fastest
on a shared 2-core machine). A killed run continues where it stopped when rerun.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import torch

from kronos_synth.model.pretrained import default_model_dir
from kronos_synth.train import train_predictor, train_tokenizer

DATA = ["sp500-daily", "nasdaq-daily", "goog-daily"]
TOKENIZER = dict(config="small", steps=600, batch_size=32, lr=1e-3, eval_every=50, patience=4)
# teacher forcing: the s2 head learns p(s2 | s1); trained on sampled siblings (the reference) it ignores s1
# and sampled bars come out ~30 % too small (docs/models.md, "The s2 head")
PREDICTOR = dict(config="small", steps=700, batch_size=32, lr=5e-4, eval_every=50, patience=4, teacher_forcing=True)
SHIPPED = ("config.json", "model.safetensors", "kronos_synth.json", "training.json")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="runs/default", help="Training folder (checkpoints, resumable).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stage", choices=["all", "tokenizer"], default="all")
    ap.add_argument("--no-install", action="store_true", help="Do not copy the result into the package.")
    ap.add_argument("--representation", choices=["levels", "geometry"], default="geometry",
                    help="Input space of the tokenizer (geometry reproduces the shipped model; docs/models.md).")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    command = [sys.executable, *sys.argv]
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    tok = train_tokenizer(DATA, work / "tokenizer", freq="daily", seed=args.seed, log=log, command=command,
                          representation=args.representation, **TOKENIZER)
    print(f"tokenizer: val loss {tok.result.best_val_loss:.5f} at step {tok.result.best_step}, "
          f"sha256 {sha(work / 'tokenizer' / 'model.safetensors')}")
    if args.stage == "tokenizer":
        return
    model = train_predictor(DATA, work / "model", tokenizer=str(work / "tokenizer"), freq="daily", seed=args.seed,
                            log=log, command=command, **PREDICTOR)
    print(f"model: val loss {model.result.best_val_loss:.5f} at step {model.result.best_step}, "
          f"sha256 {sha(work / 'model' / 'model.safetensors')}")
    if args.no_install:
        return
    for part in ("tokenizer", "model"):
        dest = default_model_dir() / part
        dest.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            shutil.copy2(work / part / name, dest / name)
            (dest / name).chmod(0o644)  # safetensors writes 0600; package data is world-readable
    print(f"installed into {default_model_dir()}")


if __name__ == "__main__":
    main()
