"""Scale-out check: the in-process engine vs Ray workers — sequences/s and byte identity of the parts.

Builds a Kronos-small-shaped predictor with a Kronos-Tokenizer-base-shaped tokenizer (seeded random
weights; the cost is the released weights') in --work, then runs the same `kronos-synth generate`
command four ways — local at 2 and at 1 torch threads, Ray with 1 and with 2 workers (1 thread each) —
and compares every Parquet part with the local 2-thread run.

  python -m evaluation.bench_scaleout --n 64 --out docs/scale-out.md

Writes a Markdown section to --out (replacing an earlier one) and prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from evaluation.markdown import replace_section
from evaluation.protocol import CRYPTO_DATA_DIR
from kronos_synth.model import Kronos, KronosTokenizer

HEADING = "## Measured: workers vs sequences/s on a 2-core machine"
CRYPTO = CRYPTO_DATA_DIR / "BTCUSDT_15m.csv"


def build_model(work: Path) -> Path:
    """Seeded random Kronos-small + Kronos-Tokenizer-base folders (kronos-synth layout)."""
    model_dir = work / "small" / "model"
    if (model_dir / "kronos_synth.json").exists():
        return model_dir
    torch.manual_seed(0)
    tok = KronosTokenizer.from_config("Kronos-Tokenizer-base").eval()
    model = Kronos.from_config("Kronos-small").eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in [*tok.parameters(), *model.parameters()]:
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    tok.save_pretrained(work / "small" / "tokenizer")
    model.save_pretrained(model_dir)
    (model_dir / "kronos_synth.json").write_text(json.dumps(
        {"kind": "predictor", "tokenizer": "../tokenizer", "max_context": 512, "representation": "levels"}))
    return model_dir


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stderr}")
    return wall, res.stdout + res.stderr


def load1() -> float:
    return os.getloadavg()[0]


def parts(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--work", default="runs/bench-scaleout")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    model = build_model(work)
    data = str(CRYPTO) if CRYPTO.exists() else "eurusd-1h"
    freq = "15min" if CRYPTO.exists() else "1h"
    common = ["kronos-synth", "generate", "--n", str(args.n), "--freq", freq, "--data", data, "--model", str(model),
              "--dtype", "fp32", "--batch-size", str(args.batch_size), "--sequences-per-part", str(args.batch_size),
              "--no-progress"]
    runs = [("local", "1 × 2", {"OMP_NUM_THREADS": "2"}, []),
            ("local", "1 × 1", {"OMP_NUM_THREADS": "1"}, []),
            ("ray", "1 × 1", {}, ["--engine", "ray", "--num-workers", "1"]),
            ("ray", "2 × 1", {}, ["--engine", "ray", "--num-workers", "2"])]
    rows, outputs = [], []
    for i, (engine, shape, env_extra, extra) in enumerate(runs):
        out = work / f"out-{i}"
        subprocess.run(["rm", "-rf", str(out)], check=True)
        before = load1()
        wall, log = run([*common, *extra, "--out", str(out)], {**os.environ, **env_extra})
        rate = re.search(r"\(([\d.]+) seq/s\)", log)
        outputs.append(parts(out))
        same = sum(outputs[0].get(k) == v for k, v in outputs[-1].items())
        rows.append(f"| {engine} | {shape} | {before:.1f} → {load1():.1f} | {rate.group(1) if rate else '?'} | "
                    f"{wall:.1f} s | {'—' if i == 0 else f'{same} of {len(outputs[-1])}'} |")
        print(rows[-1], flush=True)
    cmd = "python -m evaluation.bench_scaleout " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out")
    text = "\n".join([
        HEADING, "",
        f"Kronos-small-shaped predictor (24.7 M parameters) with a Kronos-Tokenizer-base-shaped tokenizer, seeded "
        f"random weights (no network here; the cost is the released weights'), contexts from {Path(data).name} "
        f"(lookback and horizon of the {freq} preset), fp32, batch and part size {args.batch_size}, {args.n} sequences. "
        f"Machine: {os.cpu_count()} CPU cores, torch {torch.__version__}; measured on {time.strftime('%Y-%m-%d')} with",
        "", f"    {cmd}", "",
        "which runs `kronos-synth generate` with the same arguments four ways:", "",
        "```bash",
        f"COMMON=\"{' '.join(common[2:])}\"",
        "OMP_NUM_THREADS=2 kronos-synth generate $COMMON --out out-0",
        "OMP_NUM_THREADS=1 kronos-synth generate $COMMON --out out-1",
        "kronos-synth generate $COMMON --engine ray --num-workers 1 --out out-2",
        "kronos-synth generate $COMMON --engine ray --num-workers 2 --out out-3",
        "```", "",
        "| engine | workers × torch threads | load (1 min) | generation seq/s | wall time (incl. start-up) "
        "| parts byte-identical to `local, 1 × 2` |",
        "|---|---|---|---|---|---|", *rows, ""]) + "\n"
    print(text)
    if args.out:
        replace_section(args.out, HEADING, text)


if __name__ == "__main__":
    main()
