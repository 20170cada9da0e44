"""Recipe 4 — read a synthetic dataset with pandas, pyarrow and DuckDB, and plot candlesticks.

    python recipes/read_and_plot.py                         # generates a small dataset first (~1 min)
    python recipes/read_and_plot.py --synthetic synth/      # or use one you already have
    python recipes/read_and_plot.py --quick                 # tiny (what the test runs)

A dataset is a folder of Parquet parts (schema v1, docs/schema.md): one row per bar with
sequence_id, step, timestamp, open, high, low, close, volume, amount, symbol, context_end; the
run settings are JSON in each part's file metadata under the key "kronos_synth". No kronos-synth
code is needed to read it — the three readers below are plain pandas, pyarrow and DuckDB.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb
import matplotlib
import pandas as pd
import pyarrow.dataset as pads

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--synthetic", default=None, help="Dataset folder (default: generate one into --work).")
    ap.add_argument("--n", type=int, default=200, help="Sequences to generate when --synthetic is not given.")
    ap.add_argument("--plot", type=int, default=4, help="Sequences to plot.")
    ap.add_argument("--work", default="runs/read-and-plot")
    ap.add_argument("--quick", action="store_true", help="Tiny sizes for a smoke test.")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.plot = 8, 2
    return args


def candlesticks(ax, bars: pd.DataFrame, title: str) -> None:
    """Classic candles with plain matplotlib: a wick line from low to high, a body from open to close."""
    for i, b in enumerate(bars.itertuples()):
        up = b.close >= b.open
        color = "tab:green" if up else "tab:red"
        ax.vlines(i, b.low, b.high, color=color, linewidth=0.8)
        lo, hi = sorted((b.open, b.close))
        ax.add_patch(Rectangle((i - 0.35, lo), 0.7, max(hi - lo, 1e-12), facecolor=color, edgecolor=color))
    ax.set_xlim(-1, len(bars))
    ax.set_title(title, fontsize=9)
    ticks = list(range(0, len(bars), max(1, len(bars) // 5)))
    ax.set_xticks(ticks, [pd.Timestamp(bars["timestamp"].iloc[t]).strftime("%Y-%m-%d") for t in ticks],
                  fontsize=7, rotation=30)
    ax.autoscale_view(scalex=False)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    folder = args.synthetic
    if folder is None:
        from kronos_synth.generate.api import generate_dataset
        from kronos_synth.generate.config import GenerationConfig

        folder = str(work / "synth")
        generate_dataset(GenerationConfig(freq="daily", seed=0), n=args.n, data="sp500-daily", out=folder,
                         progress=False)

    # 1. pandas (pyarrow engine underneath): the whole dataset as one long frame.
    df = pd.read_parquet(folder)
    df = df[df["step"] >= 0].sort_values(["sequence_id", "step"])  # generated bars only (no context)
    print(f"pandas : {len(df)} rows, {df['sequence_id'].nunique()} sequences, columns {list(df.columns)}")

    # 2. pyarrow.dataset: lazy, filter pushed down to the files; the run settings from file metadata.
    ds = pads.dataset(folder, format="parquet")
    first = ds.to_table(filter=pads.field("sequence_id") == 0)
    meta = json.loads(ds.schema.metadata[b"kronos_synth"])
    print(f"pyarrow: {ds.count_rows()} rows in {len(ds.files)} part(s); sequence 0 has {first.num_rows} bars; "
          f"generator {meta.get('generator')}, model {meta.get('model')}, seed {meta.get('seed')}, "
          f"T={meta.get('temperature')}, top_p={meta.get('top_p')}")

    # 3. DuckDB: SQL straight on the part files.
    per_seq = duckdb.sql(f"""
        select sequence_id, any_value(symbol) as symbol, count(*) as bars,
               arg_max(close, step) / arg_min(open, step) - 1 as seq_return,
               avg(case when high < greatest(open, close) or low > least(open, close) then 1 else 0 end)
                   as invalid_share
        from read_parquet('{folder}/part-*.parquet') where step >= 0
        group by sequence_id order by sequence_id""").df()
    print(f"duckdb : {len(per_seq)} sequences; median return {per_seq['seq_return'].median():+.4f}, "
          f"mean share of invalid bars {per_seq['invalid_share'].mean():.3f}")

    # 4. Candlesticks of the first few sequences.
    n = min(args.plot, df["sequence_id"].nunique())
    ids = sorted(df["sequence_id"].unique())[:n]
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), squeeze=False)
    for ax, sid in zip(axes[0], ids, strict=True):
        bars = df[df["sequence_id"] == sid]
        candlesticks(ax, bars, f"sequence {sid} ({bars['symbol'].iloc[0]})")
    fig.tight_layout()
    png = work / "candles.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    print(f"plot   : {png}")
    return {"rows": int(len(df)), "sequences": int(df["sequence_id"].nunique()), "png": str(png),
            "duckdb_sequences": int(len(per_seq))}


if __name__ == "__main__":
    main()
