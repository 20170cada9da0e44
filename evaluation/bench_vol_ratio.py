"""Does the generator change volatility regime inside a window as often as the market does?

For every generated sequence: log(realised volatility of the horizon / realised volatility of its real
context), close-to-close log returns (the first horizon return is from the last context close). The same
for every real test-period window (lookback + horizon bars, stride 1). Prints the median and the
interquartile range (IQR) of the log ratio for both, and the generated IQR as a share of the real one.

Mean reversion: the slope (and R²) of that log ratio on the context's own volatility regime, log(context
vol / vol over the up to 8 lookbacks ending with it; kronos_synth.data.regime), for the real test windows
and for the generated sequences (their contexts' history taken from the generation split, the train period).
Real markets: about −0.45 at 15 minutes — a volatile context calms down, a quiet one wakes up.

    python -m evaluation.bench_vol_ratio evaluation/results/zero-shot/crypto-15m \
        [--data-dir DIR]   # folder protocols: where their files are (default: evaluation.protocol.CRYPTO_DATA_DIR)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from evaluation.protocol import CRYPTO_DATA_DIR, load_protocol, resolve_data
from evaluation.stages import lookback as protocol_lookback
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.regime import context_vol_ratio
from kronos_synth.data.schema import SYMBOL, TIMESTAMPS
from kronos_synth.data.sources import klines_for
from kronos_synth.data.splits import block_first, extract_windows, split_by_time
from kronos_synth.data.synthetic import read_synthetic


def log_vol_ratio(context_close: np.ndarray, horizon_close: np.ndarray, *, finite: bool = True) -> np.ndarray:
    """(N, L) context closes and (N, H) horizon closes → (N,) log(std of horizon returns / std of context returns)
    (only the finite ones unless `finite` is False)."""
    ctx = np.diff(np.log(context_close), axis=1)
    hor = np.diff(np.log(np.concatenate([context_close[:, -1:], horizon_close], axis=1)), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(hor.std(axis=1) / ctx.std(axis=1))
    return r[np.isfinite(r)] if finite else r


def reversion(x: np.ndarray, y: np.ndarray) -> dict:
    """Least-squares slope and R² of y on x over the pairs where both are finite."""
    ok = np.isfinite(x) & np.isfinite(y)
    b, a = np.polyfit(x[ok], y[ok], 1)
    resid = y[ok] - (a + b * x[ok])
    return {"n": int(ok.sum()), "slope": float(b), "r2": float(1 - resid.var() / y[ok].var())}


def summary(x: np.ndarray) -> dict:
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return {"n": int(len(x)), "median": float(med), "iqr": float(q3 - q1)}


def measure(results: Path, data_dir: str | None) -> dict:
    stages = json.loads((results / "stages.json").read_text())
    proto = load_protocol(stages["protocol"], overrides={"kronos": {"init": "zero-shot"}}
                          if "zero-shot" in str(results) else None)
    resolved = resolve_data(proto, data_dir)
    if resolved is None:
        print(f"{proto['name']}: no {proto['data']} files in {data_dir} — pass --data-dir FOLDER", file=sys.stderr)
        raise SystemExit(2)
    source, _ = resolved
    frame = clean_klines(klines_for(proto["freq"], source)[0], proto["freq"]).frame
    lookback, horizon = protocol_lookback(proto), int(proto["window"])
    train, test = split_by_time(frame, test_fraction=0.2, gap=lookback + horizon)
    w = extract_windows(test, lookback + horizon, stride=1)  # every window: the marginal distribution
    real = w.values[..., 3]
    real_ratio = log_vol_ratio(real[:, :lookback], real[:, lookback:])
    x_real = context_vol_ratio(test["close"].to_numpy(), w.starts, block_first(test, w.starts), lookback)
    ds = read_synthetic(results / "work" / "kronos")
    gen = ds.generated().sort_values(["sequence_id", "step"])
    meta = gen.groupby("sequence_id").first()[[SYMBOL, "context_end"]]
    closes = gen["close"].to_numpy().reshape(len(meta), -1)
    ctx = np.empty((len(meta), lookback))
    ctx_start = np.empty(len(meta), dtype=np.int64)  # row of each context's first bar in the train frame
    syms = train[SYMBOL].astype(str).to_numpy()
    for sym in np.unique(meta[SYMBOL].astype(str).to_numpy()):
        rows = np.flatnonzero(syms == sym)
        pos = {t: rows[i] for i, t in enumerate(train[TIMESTAMPS].to_numpy()[rows])}
        for k in np.flatnonzero(meta[SYMBOL].astype(str).to_numpy() == sym):
            ctx_start[k] = pos[np.datetime64(meta["context_end"].iloc[k], "ns")] - lookback + 1
    close = train["close"].to_numpy()
    ctx = close[ctx_start[:, None] + np.arange(lookback)[None, :]]
    x_gen = context_vol_ratio(close, ctx_start, block_first(train, ctx_start), lookback)
    gen_ratio = log_vol_ratio(ctx, closes, finite=False)
    out = {"real": summary(real_ratio), "generated": summary(gen_ratio[np.isfinite(gen_ratio)])}
    out["iqr_share"] = out["generated"]["iqr"] / out["real"]["iqr"]
    out["reversion"] = {"real": reversion(x_real, log_vol_ratio(real[:, :lookback], real[:, lookback:], finite=False)),
                        "generated": reversion(x_gen, gen_ratio)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a protocol results folder whose work/kronos holds the generated set")
    ap.add_argument("--data-dir", default=str(CRYPTO_DATA_DIR))
    args = ap.parse_args()
    res = measure(Path(args.results), args.data_dir)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
