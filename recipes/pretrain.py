"""Pretrain Kronos on a multi-market corpus on the CPU: the embedded default model's recipe.

    python recipes/pretrain.py corpus                      # fetch the MIT sources, build corpus/ (≈ 1 min + download)
    python recipes/pretrain.py tokenizer                   # ≈ 7 min on one thread (1 000 steps)
    python recipes/pretrain.py predictor --size small      # sizes: small (0.9 M), medium (3.1 M), large (7.5 M)
    python recipes/pretrain.py holdout --size small        # validation loss on held-out periods and instruments
    python recipes/pretrain.py predictor --steps 5000 --seed 2 --continue-from kronos_synth/assets/default/model
                                                           # more steps for a trained predictor (and its tokenizer)
    python recipes/pretrain.py install --size small        # copy tokenizer + predictor into the package
    python recipes/pretrain.py dataset                     # the embedded crypto-15m dataset (BTC, ETH) from the sources
    python recipes/pretrain.py heldout-data                # held-out instruments' 15-min files for the heldout-15m protocol

Sources (MIT licence, public GitHub repositories, taken at fixed commits; see docs/models.md):
- imsatoshi/GeneTrader: 136 Binance spot USDT pairs at 5m/15m/1h/4h/1d, 2024-01 → 2024-09;
- TheSnowGuru/Stocks-Futures-Financial-Time-series-Tick-Bar-Data: 42 FX, commodity, index, crypto and
  stock series at 15m/30m/1h/4h/daily, 2007–2023.
`corpus` clones each repository into --src (needs the network once; `--mirror DIR` uses existing git
directories instead), extracts the files at the pinned commit with `git archive`, and runs
`kronos-synth corpus build` with the embargo below. The benchmark protocols' test periods are kept out:
the S&P 500, NASDAQ 100 and Dow index bars from the start of the gap before the sp500/nasdaq-daily test
period to its end, and EURUSD over the eurusd-1h test period (the crypto-15m test period, 2025, lies after
the corpus). Everything is seeded; one CPU thread gives bit-identical weights for the same torch build, and
a killed stage continues where it stopped when rerun.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

SOURCES = [
    # (group or "", repository, commit, path inside the repository)
    ("crypto", "imsatoshi/GeneTrader", "2b5dfc6e2077ef65b086376b2b536dad121c36cd", "user_data/data/binance"),
    ("", "TheSnowGuru/Stocks-Futures-Financial-Time-series-Tick-Bar-Data",
     "5fa48d39fd20858d6591db25e6eeee5de45ce6fd", "."),
]
EMBARGO = [
    "USA500IDXUSD@2014-06-26..2018-12-31",   # sp500-daily: gap + test period
    "USATECHIDXUSD@2014-06-26..2018-12-31",  # nasdaq-daily (NASDAQ 100 beside the Composite)
    "USA30IDXUSD@2014-06-26..2018-12-31",    # the Dow, same US large caps
    "EURUSD@2017-11-29..2018-02-07",         # eurusd-1h: gap + test period
]
REPRESENTATION = {"representation": "geometry", "center_returns": True}
TOKENIZER = dict(config="small", steps=1000, batch_size=64, lr=1e-3, eval_every=100, patience=0, tail_weight=2.0)
#: predictor sizes of the scaling comparison: steps give each about the same compute (≈ 17 min on one thread of
#: the reference machine: 0.65 / 1.9 / 3.9 s per step of 32 windows, averaged over the bar sizes)
SIZES = {
    "small": (dict(), 1600, 200),  # overrides of the small preset, steps, eval_every
    "medium": (dict(n_layers=6, d_model=192, n_heads=6, ff_dim=512), 540, 90),
    "large": (dict(n_layers=8, d_model=256, n_heads=8, ff_dim=768), 270, 45),
}
PREDICTOR = dict(batch_size=32, lr=5e-4, patience=0, teacher_forcing=True)
MAX_VAL_WINDOWS = 128  # per bar size, evenly spaced
#: the new regime table of a --regime-from continuation learns at this multiple of --lr (it starts at zero)
REGIME_LR_SCALE = 20.0
SHIPPED = ("config.json", "model.safetensors", "kronos_synth.json", "training.json")


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fetch_sources(src: Path, mirror: list[str]) -> list[str]:
    """Extract each pinned source into src/NAME; returns the `corpus build` source arguments."""
    args = []
    for group, repo, commit, path in SOURCES:
        name = repo.split("/")[1]
        dest = src / name
        if not (dest / ".complete").is_file():
            gitdir = next((m for m in mirror if repo.replace("/", "+") in m or m.rstrip("/").endswith(name)), None)
            if gitdir is None:
                gitdir = str(src / f"{name}.git")
                if not Path(gitdir).is_dir():
                    subprocess.run(["git", "clone", "--bare", f"https://github.com/{repo}", gitdir], check=True)
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            # blobs absent from a snapshot (files stored with Git LFS upstream) are skipped, not fatal
            listing = subprocess.run(["git", "-C", gitdir, "ls-tree", "-r", "-l", commit, "--", path],
                                     check=True, capture_output=True, text=True).stdout.splitlines()
            present = [ln.split("\t", 1)[1] for ln in listing
                       if subprocess.run(["git", "-C", gitdir, "cat-file", "-e", ln.split()[2]]).returncode == 0]
            archive = subprocess.run(["git", "-C", gitdir, "archive", commit, "--", *present], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
            (dest / ".complete").write_text(f"{repo}@{commit}\n")
            log(f"{repo}@{commit[:10]}: {len(present)} of {len(listing)} files extracted into {dest}")
        folder = dest / path if path != "." else dest
        args.append(f"{group}={folder}" if group else str(folder))
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["corpus", "dataset", "heldout-data", "tokenizer", "predictor", "holdout",
                                      "install"])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--corpus", default="corpus", help="Corpus folder (built by the `corpus` stage).")
    ap.add_argument("--src", default="corpus-src", help="Where the sources are extracted (`corpus` stage).")
    ap.add_argument("--mirror", action="append", default=[], help="Existing (bare) git directory of a source.")
    ap.add_argument("--work", default="runs/pretrain", help="Training folders (resumable).")
    ap.add_argument("--steps", type=int, default=None,
                    help="Train longer than the scaling comparison's equal-compute budget (own folder).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--regime-from", default=None, metavar="FOLDER",
                    help="predictor stage: continue a trained predictor (FOLDER) with the volatility-regime input "
                         "added (data/regime.py; zero at the start), for --steps at --lr, in its own folder.")
    ap.add_argument("--continue-from", default=None, metavar="FOLDER",
                    help="predictor stage: continue a trained predictor (FOLDER, e.g. the embedded default's "
                         "model folder) as it is, for --steps at --lr with fresh batches (--seed), in its own folder.")
    ap.add_argument("--lr", type=float, default=2e-4,
                    help="Peak learning rate of a --regime-from or --continue-from continuation.")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    command = [sys.executable, *sys.argv]
    if args.stage == "corpus":
        sources = fetch_sources(Path(args.src), args.mirror)
        cmd = ["kronos-synth", "corpus", "build", *sources, "--out", args.corpus, "--no-progress"]
        cmd += [a for e in EMBARGO for a in ("--embargo", e)]
        log("+ " + " ".join(cmd))
        subprocess.run(cmd, check=True)
        return
    if args.stage == "dataset":
        write_embedded_dataset(Path(args.src))
        return
    if args.stage == "heldout-data":
        link_heldout_files(Path(args.corpus), Path(args.src) / "heldout-15m")
        return

    from kronos_synth.train import (
        PredictorTrainingConfig,
        TokenizerTrainingConfig,
        train_predictor,
        train_tokenizer,
    )
    from kronos_synth.train.corpus import load_corpus

    td = load_corpus(args.corpus, representation=REPRESENTATION, max_val_windows=MAX_VAL_WINDOWS)
    if args.stage == "tokenizer":
        out = train_tokenizer(td, work / "tokenizer", TokenizerTrainingConfig(seed=args.seed, **TOKENIZER), log=log,
                              command=command)
        log(f"tokenizer: val {out.result.best_val_loss:.5f} at step {out.result.best_step}, "
            f"{out.result.wall_time_s:.0f} s")
        return
    overrides, steps, eval_every = SIZES[args.size]
    folder = work / f"predictor-{args.size}"
    if args.steps is not None and args.steps != steps:
        eval_every = max(eval_every, args.steps // 12)
        steps, folder = args.steps, work / f"predictor-{args.size}-{args.steps}"
    if args.regime_from is not None and args.continue_from is not None:
        ap.error("--regime-from and --continue-from exclude each other")
    if args.regime_from is not None:
        folder = work / f"predictor-{args.size}-regime-{steps}"
    if args.continue_from is not None:
        folder = work / f"predictor-{args.size}-continued-{steps}-seed{args.seed}"
    if args.stage == "predictor" and args.regime_from is not None:
        init = add_regime_input(Path(args.regime_from), work / f"init-regime-{args.size}")
        config = PredictorTrainingConfig(init=str(init), steps=steps, eval_every=eval_every, seed=args.seed,
                                         regime_lr_scale=REGIME_LR_SCALE, **dict(PREDICTOR, lr=args.lr))
        out = train_predictor(td, folder, config, tokenizer=str(work / "tokenizer"), log=log, command=command)
        log(f"predictor {args.size} + regime: val {out.result.best_val_loss:.5f} at step {out.result.best_step}, "
            f"{out.result.wall_time_s:.0f} s")
    elif args.stage == "predictor" and args.continue_from is not None:
        if not (work / "tokenizer").is_dir():  # continue with the tokenizer the predictor was trained on
            side = json.loads((Path(args.continue_from) / "kronos_synth.json").read_text())
            shutil.copytree((Path(args.continue_from) / side["tokenizer"]).resolve(), work / "tokenizer")
        config = PredictorTrainingConfig(init=str(Path(args.continue_from)), steps=steps, eval_every=eval_every,
                                         seed=args.seed, **dict(PREDICTOR, lr=args.lr))
        out = train_predictor(td, folder, config, tokenizer=str(work / "tokenizer"), log=log, command=command)
        log(f"predictor {args.size} continued: val {out.result.best_val_loss:.5f} at step {out.result.best_step}, "
            f"{out.result.wall_time_s:.0f} s")
    elif args.stage == "predictor":
        config = PredictorTrainingConfig(config="small", overrides=overrides, steps=steps, eval_every=eval_every,
                                         seed=args.seed, **PREDICTOR)
        out = train_predictor(td, folder, config, tokenizer=str(work / "tokenizer"), log=log, command=command)
        log(f"predictor {args.size}: val {out.result.best_val_loss:.5f} at step {out.result.best_step}, "
            f"{out.result.wall_time_s:.0f} s")
    elif args.stage == "holdout":
        if args.regime_from is None:
            print(json.dumps(held_out_losses(td, folder), indent=1))
        else:  # with the regime ids, and with every id "unknown": what the input itself is worth
            out = {"with_regime": held_out_losses(td, folder)}
            for mix in (td.val, td.holdout):
                for ws in mix.parts.values():
                    ws.first = None  # no regime column: bucket 0
            out["unknown"] = held_out_losses(td, folder)
            print(json.dumps(out, indent=1))
    elif args.stage == "install":
        from kronos_synth.model.pretrained import default_model_dir

        for part, src in (("tokenizer", work / "tokenizer"), ("model", folder)):
            dest = default_model_dir() / part
            dest.mkdir(parents=True, exist_ok=True)
            for name in SHIPPED:
                shutil.copy2(src / name, dest / name)
                (dest / name).chmod(0o644)  # safetensors writes 0600; package data is world-readable
        sidecar = default_model_dir() / "model" / "kronos_synth.json"
        side = json.loads(sidecar.read_text())
        side["tokenizer"] = "../tokenizer"
        sidecar.write_text(json.dumps(side, indent=2, sort_keys=True) + "\n")
        log(f"installed {folder} into {default_model_dir()}")


#: the embedded 15-minute dataset: two liquid pairs, six months (MIT, GeneTrader at the pinned commit)
DATASET = dict(files={"BTCUSDT": "BTC_USDT-15m.feather", "ETHUSDT": "ETH_USDT-15m.feather"},
               first="2024-03-01", last="2024-09-06 23:59")


def write_embedded_dataset(src: Path) -> None:
    """kronos_synth/assets/datasets/crypto_15m.csv.gz from the extracted GeneTrader files (`corpus` stage)."""
    import pandas as pd

    from kronos_synth.data.readers import read_klines

    folder = src / "GeneTrader" / SOURCES[0][3]
    frames = []
    for symbol, name in DATASET["files"].items():
        df = read_klines(str(folder / name))
        df = df[(df.timestamps >= DATASET["first"]) & (df.timestamps <= DATASET["last"])]
        frames.append(df.assign(symbol=symbol)[["timestamps", "symbol", "open", "high", "low", "close", "volume"]])
    out = Path(__file__).resolve().parents[1] / "kronos_synth" / "assets" / "datasets" / "crypto_15m.csv.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = pd.concat(frames, ignore_index=True)
    # mtime=0 in the gzip header: the same input gives the same bytes
    import gzip
    import io

    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(data.to_csv(index=False, date_format="%Y-%m-%d %H:%M:%S").encode())
    out.write_bytes(buf.getvalue())
    log(f"{out}: {len(data)} bars, {data.timestamps.min()} .. {data.timestamps.max()}, {out.stat().st_size} bytes")


def link_heldout_files(corpus: Path, dest: Path, freq: str = "15min") -> None:
    """Symlink the `freq` files of the corpus's held-out instruments into `dest` as NAME-15m.EXT (the
    heldout-15m benchmark protocol reads them with `--data-dir dest`)."""
    manifest = json.loads((corpus / "manifest.json").read_text())
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in manifest["files"]:
        if f["split"] == "holdout" and f["freq"] == freq:
            src = (Path(f["source"]) / f["path"]).resolve()
            link = dest / f"{f['instrument']}-15m{''.join(src.suffixes)}"
            link.unlink(missing_ok=True)
            link.symlink_to(src)
            n += 1
    log(f"{dest}: {n} held-out {freq} files")


def add_regime_input(src: Path, dest: Path) -> Path:
    """A copy of the predictor in `src` with a zero volatility-regime table (the same model until trained)."""
    from kronos_synth.data.regime import REGIME_BUCKETS
    from kronos_synth.model.kronos import Kronos

    if (dest / "model.safetensors").is_file():
        return dest
    old = Kronos.from_pretrained(src)
    model = Kronos(**dict(old.config, regime_buckets=REGIME_BUCKETS))
    missing, unexpected = model.load_state_dict(old.state_dict(), strict=False)
    assert missing == ["regime_emb.weight"] and not unexpected, (missing, unexpected)
    model.save_pretrained(dest)
    side = json.loads((src / "kronos_synth.json").read_text())
    side["tokenizer"] = str((src / side["tokenizer"]).resolve())
    (dest / "kronos_synth.json").write_text(json.dumps(side, indent=2, sort_keys=True) + "\n")
    return dest


def held_out_losses(td, folder: Path) -> dict:
    """Validation loss (and its s1/s2 parts) of the best weights: per bar size and balanced, on held-out
    periods of the training instruments and on held-out instruments."""
    from kronos_synth.model.kronos import Kronos
    from kronos_synth.model.tokenizer import KronosTokenizer
    from kronos_synth.train.loop import evaluate_batches
    from kronos_synth.train.predictor import causal_s2, predictor_loss

    model = Kronos.from_pretrained(folder).eval()
    side = json.loads((folder / "kronos_synth.json").read_text())
    tok = KronosTokenizer.from_pretrained((folder / side["tokenizer"]).resolve()).eval()
    record = json.loads((folder / "training.json").read_text())
    out = {"folder": str(folder), "parameters": sum(p.numel() for p in model.parameters()),
           "steps": record["steps_done"], "best_step": record["best_step"], "wall_time_s": record["wall_time_s"]}
    t0 = time.perf_counter()
    for name, mix in (("val_periods", td.val), ("holdout_instruments", td.holdout)):
        per = {}
        with torch.no_grad(), causal_s2(model):
            for freq, ws in mix.parts.items():
                gen = torch.Generator().manual_seed(2)
                per[freq] = evaluate_batches(ws, 64, lambda x, s, g=gen: predictor_loss(
                    model, tok, x, s, teacher_forcing=True, generator=g)[1])
        out[name] = {"balanced": {k: sum(p[k] for p in per.values()) / len(per) for k in ("loss", "ce_s1", "ce_s2")},
                     "per_freq": per}
    out["eval_s"] = round(time.perf_counter() - t0, 1)
    return out


if __name__ == "__main__":
    main()
