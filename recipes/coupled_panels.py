"""Recipe 5 — coupled multi-asset panels: S&P 500 and NASDAQ continued jointly.

Generates panels of the two embedded daily indices (`kronos-synth generate --panel SPX,IXIC`): each panel
continues both indices from one shared context date, with the draws of the two coupled by a Gaussian
copula of the context's returns (and, by default, a second draw per step by one of its log-volume changes;
for a pair as tight as these two, `--no-volume-coupling` keeps more return correlation, docs/scenarios.md).
The same run without coupling (`--coupling none`) is the control:
same sampler and marginals, independent assets. Both are scored against the real test-period panels
with the panel metrics — mean pairwise return correlation, correlation-matrix error, largest
eigenvalue, lower-tail dependence — beside the real train-period panels (real vs real).

    python recipes/coupled_panels.py            # full size: ~1-2 min on 2 CPU cores
    python recipes/coupled_panels.py --quick    # tiny (what the test runs)

CLI equivalent (a CSV or Parquet with a `symbol` column holding both indices):
    kronos-synth datasets export sp500-daily --out spx.csv    # and nasdaq-daily → ixic.csv; concatenate
    kronos-synth generate --n 500 --freq daily --data both.csv --panel SPX,IXIC --out panels/
Offline: embedded data and model. The panels are schema-v1 datasets (with panel_id) in --work.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kronos_synth.data.datasets import load_dataset
from kronos_synth.data.panels import panel_windows
from kronos_synth.data.synthetic import read_synthetic
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.panel import PanelGenerator
from kronos_synth.metrics.panel import compare_panels
from kronos_synth.model.pretrained import load_model_pair

FREQ = "daily"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="Generator checkpoint (default: the embedded model).")
    ap.add_argument("--n", type=int, default=500, help="Panels per set.")
    ap.add_argument("--samples", type=int, default=4, help="Panels per context date.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/panels")
    ap.add_argument("--quick", action="store_true", help="Tiny sizes for a smoke test.")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.samples = 16, 2
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    t0 = time.perf_counter()
    work = Path(args.work)
    klines = pd.concat([load_dataset("sp500-daily"), load_dataset("nasdaq-daily")], ignore_index=True)
    symbols = ("SPX", "IXIC")
    pair = load_model_pair(args.model)
    sets = {}
    for coupling in ("gaussian", "none"):
        config = GenerationConfig(freq=FREQ, panel=symbols, coupling=coupling, seed=args.seed,
                                  samples_per_context=args.samples, batch_size=256)
        gen = PanelGenerator(pair, klines, config, source="sp500-daily + nasdaq-daily")
        gen.write_panels(str(work / f"panels-{coupling}"), args.n, progress=False)
        sets[f"Kronos, coupling {coupling}"] = read_synthetic(work / f"panels-{coupling}").to_panels()[0]
    lookback, horizon = config.window
    test = panel_windows(klines, symbols, FREQ, horizon, split="test", gap=lookback + horizon)
    train = panel_windows(klines, symbols, FREQ, horizon, split="train", gap=lookback + horizon)
    take = np.unique(np.linspace(0, len(train) - 1, min(args.n, len(train))).round().astype(int))
    sets["real, train period"] = train.values[take]

    print(f"\nPanels of {', '.join(symbols)}: {args.n} per set, {horizon} daily bars, against the {len(test)} "
          "real test-period panels (stride 1).\n")
    print("| set | mean pairwise corr | real | Frobenius error | largest eigenvalue | real | λ_L 5 % | real |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    result = {"settings": vars(args), "n_test": len(test), "rows": {}}
    for name, bars in sets.items():
        res = compare_panels(test.values, bars, discriminative=False).to_dict()
        c, s, t = res["correlation"], res["spectrum"], res["tail_dependence"]
        result["rows"][name] = res
        print(f"| {name} | {c['mean_pairwise_synthetic']:.3f} | {c['mean_pairwise_real']:.3f} | {c['frobenius']:.3f} | "
              f"{s['largest_synthetic']:.3f} | {s['largest_real']:.3f} | {t['synthetic']:.3f} | {t['real']:.3f} |")
    result["wall_time_s"] = time.perf_counter() - t0
    print(f"\ntotal {result['wall_time_s']:.0f} s; panels in {work}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "result.json").write_text(json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
