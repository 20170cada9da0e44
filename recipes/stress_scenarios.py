"""Recipe 3 — stress scenarios: what does the model do after the most volatile markets?

Picks the real train-period contexts (96 daily bars of sp500-daily) with the highest realized
volatility, generates several 35-bar continuations of each with the embedded Kronos model, and
compares the distribution of the generated continuations with what really followed those contexts:
quantiles of the 35-day return, of the maximum drawdown and of the realized volatility. A third row,
the real continuations of ALL contexts, shows how far "after a volatile period" is from normal.

    python recipes/stress_scenarios.py            # full size: ~3-5 min on 2 CPU cores
    python recipes/stress_scenarios.py --quick    # tiny (what the test runs)

Offline: embedded data and model. The generated scenarios are written to --work/scenarios
(Parquet, schema v1) for your own analysis.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.sources import klines_for
from kronos_synth.data.splits import extract_windows
from kronos_synth.data.synthetic import ParquetSequenceWriter, sequences_to_frame
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.generator import Generator
from kronos_synth.model.pretrained import load_model_pair

FREQ = "daily"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="sp500-daily", help="Real daily K-lines: embedded name or file.")
    ap.add_argument("--model", default=None, help="Generator checkpoint (default: the embedded model).")
    ap.add_argument("--top", type=float, default=0.05, help="Share of contexts kept, by realized volatility.")
    ap.add_argument("--samples", type=int, default=8, help="Generated continuations per context.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/stress")
    ap.add_argument("--quick", action="store_true", help="Tiny sizes for a smoke test.")
    args = ap.parse_args(argv)
    if args.quick:
        args.top, args.samples = 0.005, 2
    return args


def realized_vol(close: np.ndarray) -> np.ndarray:
    """Std of close-to-close log returns along the last axis."""
    return np.diff(np.log(close), axis=-1).std(axis=-1)


def path_stats(last_close: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    """Horizon return, max drawdown (from the running peak, starting at the last context close) and vol."""
    path = np.concatenate([last_close[:, None], close], axis=1)
    peak = np.maximum.accumulate(path, axis=1)
    return {"return": close[:, -1] / last_close - 1, "max_drawdown": (path / peak - 1).min(axis=1),
            "volatility": realized_vol(path)}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    klines, source = klines_for(FREQ, args.data)
    pair = load_model_pair(args.model)
    gen = Generator(pair, klines, GenerationConfig(freq=FREQ, seed=args.seed, split="train",
                                                   samples_per_context=args.samples, repair=True, batch_size=256),
                    source=source)
    lookback, horizon, pool = gen.lookback, gen.horizon, gen.pool

    # Real continuations: every (context + horizon) window of the cleaned series, keyed by the
    # context's symbol and last timestamp, so each pool context finds what really followed it.
    full = extract_windows(clean_klines(klines, FREQ).frame, lookback + horizon)
    where = {(s, t): i for i, (s, t) in enumerate(zip(full.symbols, full.timestamps[:, lookback - 1],
                                                      strict=True))}
    match = np.array([where.get((s, t), -1) for s, t in zip(pool.symbols, pool.timestamps[:, -1], strict=True)])
    usable = np.flatnonzero(match >= 0)
    vol = realized_vol(pool.values[usable, :, 3])
    k = max(1, int(round(args.top * len(usable))))
    chosen = usable[np.argsort(vol)[::-1][:k]]  # the k most volatile contexts
    print(f"{len(usable)} train contexts with a real continuation; the {k} most volatile have realized daily "
          f"vol ≥ {np.sort(vol)[::-1][k - 1]:.4f} (median of all: {np.median(vol):.4f})", file=sys.stderr)

    # Sequence i continues context perm[i // samples]; invert the permutation to ask for given contexts.
    c = len(pool)
    perm = gen.context_index(np.arange(c) * args.samples)
    pos = np.empty(c, dtype=np.int64)
    pos[perm] = np.arange(c)
    ids = (pos[chosen][:, None] * args.samples + np.arange(args.samples)[None, :]).reshape(-1)
    bars = np.concatenate([gen.generate_batch(ids[i:i + 256])["bars"] for i in range(0, len(ids), 256)])
    ctx_of = np.repeat(chosen, args.samples)

    real_future = full.values[match[chosen], lookback:, 3]
    all_future = full.values[match[usable], lookback:, 3]
    sets = {
        "real, after volatile contexts": path_stats(pool.values[chosen, -1, 3], real_future),
        "synthetic, after the same contexts": path_stats(pool.values[ctx_of, -1, 3], bars[:, :, 3]),
        "real, after all contexts": path_stats(pool.values[usable, -1, 3], all_future),
    }
    counts = {"real, after volatile contexts": len(chosen), "synthetic, after the same contexts": len(ids),
              "real, after all contexts": len(usable)}

    frame = sequences_to_frame(bars, pool.future[ctx_of], np.arange(len(ids)), pool.symbols[ctx_of],
                               pool.timestamps[ctx_of, -1])
    writer = ParquetSequenceWriter(work / "scenarios", n=len(ids), sequences_per_part=len(ids),
                                   metadata={**gen.writer_metadata(), "scenario": f"top {args.top:g} by volatility"})
    if writer.pending_parts():
        writer.write_part(0, frame)

    head = " | ".join(f"q{int(q * 100):02d}" for q in QUANTILES)
    print(f"\nStress scenarios on {source}: {k} most volatile of {len(usable)} train contexts "
          f"({lookback} bars), {args.samples} generated continuations each, horizon {horizon} bars.")
    out = {"settings": vars(args), "contexts": int(k), "rows": {}}
    for stat in ("return", "max_drawdown", "volatility"):
        print(f"\n{stat} over the next {horizon} bars\n\n| set | n | {head} |\n|---|---:|" + "---:|" * len(QUANTILES))
        for name, st in sets.items():
            q = np.quantile(st[stat], QUANTILES)
            out["rows"].setdefault(name, {})[stat] = q.tolist()
            print(f"| {name} | {counts[name]} | " + " | ".join(f"{v:+.3f}" for v in q) + " |")
    wall = time.perf_counter() - t0
    print(f"\ntotal {wall:.0f} s; scenarios in {work / 'scenarios'}")
    out["wall_time_s"] = wall
    (work / "result.json").write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
