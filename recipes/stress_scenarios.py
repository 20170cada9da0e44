"""Recipe 3 — stress scenarios: what does the model do after the most volatile markets?

The library's stress pack (`kronos-synth generate --scenario stress`): continuations of the real
train-period contexts whose realised volatility is in the top decile, then the tail risk of the
horizon return — 1 % and 5 % VaR and expected shortfall — of the generated scenarios beside what
really followed those contexts (historical) and a GARCH(1,1)-t simulated from the same contexts.
A second table compares quantiles of the horizon return, maximum drawdown and realised volatility,
and a third row set, the real continuations of ALL contexts, shows how far "after a volatile period"
is from normal.

    python recipes/stress_scenarios.py            # full size: ~1 min on 2 CPU cores
    python recipes/stress_scenarios.py --quick    # tiny (what the test runs)

CLI equivalent:  kronos-synth generate --n 2000 --freq daily --data sp500-daily --scenario stress \\
                     --samples-per-context 8 --repair --out runs/stress/scenarios

Offline: embedded data and model. The scenarios are a schema-v1 dataset in --work/scenarios.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from kronos_synth.data.conditions import conditioned_windows, parse_condition, path_statistics
from kronos_synth.data.sources import klines_for
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.generate.api import generate_dataset
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.metrics.scenario import context_last_closes, scenario_report

FREQ = "daily"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="sp500-daily", help="Real daily K-lines: embedded name or file.")
    ap.add_argument("--model", default=None, help="Generator checkpoint (default: the embedded model).")
    ap.add_argument("--n", type=int, default=2000, help="Scenarios to generate.")
    ap.add_argument("--samples", type=int, default=8, help="Generated continuations per context.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/stress")
    ap.add_argument("--quick", action="store_true", help="Tiny sizes for a smoke test.")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.samples = 32, 4
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    out = work / "scenarios"
    config = GenerationConfig(freq=FREQ, scenario="stress", seed=args.seed, samples_per_context=args.samples,
                              repair=True, batch_size=256)
    summary = generate_dataset(config, n=args.n, out=str(out), data=args.data, model=args.model, progress=False)
    klines, source = klines_for(FREQ, args.data)
    report = scenario_report(str(out), klines, source=source, discriminative=False, seed=args.seed)

    # Distributions: generated, what really followed the same (stressed) contexts, and all real windows.
    lookback, horizon = config.window
    cw = conditioned_windows(klines, FREQ, lookback, horizon, parse_condition("regime:high-vol"), source=source)
    allw = cw.windows.values
    ds = read_synthetic(out)
    bars, last = ds.to_array(), context_last_closes(ds, cw)
    sets = {
        "real, after stressed contexts": path_statistics(allw[cw.mask, lookback - 1, 3], allw[cw.mask, lookback:]),
        "synthetic, after the same contexts": path_statistics(last, bars),
        "real, after all contexts": path_statistics(allw[:, lookback - 1, 3], allw[:, lookback:]),
    }
    counts = {"real, after stressed contexts": int(cw.mask.sum()), "synthetic, after the same contexts": len(bars),
              "real, after all contexts": len(allw)}

    print(f"\nStress pack on {source}: {summary.condition_line()}")
    print(f"{cw.resolved.describe()}: {int(cw.mask.sum())} of {len(allw)} train windows; horizon {horizon} bars.\n")
    print("| set | n | VaR 1 % | ES 1 % | VaR 5 % | ES 5 % |\n|---|---:|---:|---:|---:|---:|")
    for row in report.stress["rows"]:
        print(f"| {row['set']} | {row['n']} | {row['var_1']:.3f} | {row['es_1']:.3f} | {row['var_5']:.3f} | "
              f"{row['es_5']:.3f} |")
    print(f"\ngenerated 1 % ES / historical: {report.stress['es1_ratio_to_historical']:.2f} "
          f"(GARCH / historical: {report.stress['es1_ratio_garch_to_historical']:.2f})")
    result = {"settings": vars(args), "stress": report.stress, "rows": {}, "hit_rate": summary.hit_rate}
    head = " | ".join(f"q{int(q * 100):02d}" for q in QUANTILES)
    for stat in ("return", "drawdown", "volatility"):
        print(f"\n{stat} over the next {horizon} bars\n\n| set | n | {head} |\n|---|---:|" + "---:|" * len(QUANTILES))
        for name, st in sets.items():
            q = np.nanquantile(st[stat], QUANTILES)
            result["rows"].setdefault(name, {})[stat] = q.tolist()
            print(f"| {name} | {counts[name]} | " + " | ".join(f"{v:+.3f}" for v in q) + " |")
    result["wall_time_s"] = time.perf_counter() - t0
    print(f"\ntotal {result['wall_time_s']:.0f} s; scenarios in {out}")
    (work / "result.json").write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
