"""Streaming check: peak RSS of `kronos-synth generate` must stay flat as n grows.

Runs the CLI in a fresh process for each n (so peaks don't mix) and reads the child's peak RSS:

  python -m evaluation.bench_memory --n 6000 60000 --freq daily --out docs/performance.md

Uses the embedded default model unless --model is given.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evaluation.markdown import replace_section

HEADING = "## Memory while streaming"


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Run `kronos-synth …` in a child process → (peak RSS in MB, wall seconds)."""
    code = ("import resource, sys; from kronos_synth.cli import main\n"
            "try:\n    main(sys.argv[1:])\n"
            "except SystemExit as e:\n"
            "    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "    print(f'PEAK_RSS_KB={rss}', file=sys.stderr)\n    raise\n")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"generate failed: {r.stderr.strip()}")
    kb = int(next(line for line in r.stderr.splitlines() if line.startswith("PEAK_RSS_KB=")).split("=")[1])
    return kb / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[6000, 60000])
    ap.add_argument("--freq", default="daily")
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    for n in args.n:
        tmp = Path(tempfile.mkdtemp())
        cmd = ["generate", "--n", str(n), "--freq", args.freq, "--out", str(tmp / "synth"), "--no-progress",
               "--batch-size", str(args.batch_size)] + (["--model", args.model] if args.model else [])
        rss, wall = peak_rss_mb(cmd)
        rows.append((n, rss, wall))
        print(f"n={n}: peak RSS {rss:.0f} MB, {wall:.0f} s", flush=True)
        shutil.rmtree(tmp)
    ratio = rows[-1][1] / rows[0][1]
    cmd = "python -m evaluation.bench_memory --n " + " ".join(map(str, args.n)) + f" --freq {args.freq}" + (
        f" --model {args.model}" if args.model else "")
    lines = [HEADING, "", f"`kronos-synth generate` in a fresh process per n ({args.freq} bars, "
             f"{'model ' + args.model if args.model else 'embedded default model'}, batch {args.batch_size}); "
             f"peak resident memory of the process:", "", f"    {cmd}", "",
             "| n | peak RSS (MB) | wall time (s) |", "|---|---|---|"]
    lines += [f"| {n} | {rss:.0f} | {wall:.0f} |" for n, rss, wall in rows]
    lines += ["", f"Peak RSS at n = {rows[-1][0]} is **{ratio:.2f}×** the peak at n = {rows[0][0]} "
              "(parts are written as they fill; nothing grows with n but a few floats per sequence)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        replace_section(args.out, HEADING, text)


if __name__ == "__main__":
    main()
