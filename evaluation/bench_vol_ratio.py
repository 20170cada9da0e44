"""Does the generator change volatility regime inside a window as often as the market does?

For every generated sequence: log(realised volatility of the horizon / realised volatility of its real
context), close-to-close log returns (the first horizon return is from the last context close). The same
for every real test-period window (lookback + horizon bars, stride 1). Prints the median and the
interquartile range (IQR) of the log ratio for both, and the generated IQR as a share of the real one.

    python -m evaluation.bench_vol_ratio evaluation/results/zero-shot/crypto-15m \
        [--data-dir DIR]   # folder protocols: where their files are (default: evaluation.protocol.CRYPTO_DATA_DIR)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from evaluation.protocol import CRYPTO_DATA_DIR, load_protocol, resolve_data
from evaluation.stages import lookback as protocol_lookback
from kronos_synth.data.cleaning import clean_klines
from kronos_synth.data.schema import SYMBOL, TIMESTAMPS
from kronos_synth.data.sources import klines_for
from kronos_synth.data.splits import extract_windows, split_by_time
from kronos_synth.data.synthetic import read_synthetic


def log_vol_ratio(context_close: np.ndarray, horizon_close: np.ndarray) -> np.ndarray:
    """(N, L) context closes and (N, H) horizon closes → (N,) log(std of horizon returns / std of context returns)."""
    ctx = np.diff(np.log(context_close), axis=1)
    hor = np.diff(np.log(np.concatenate([context_close[:, -1:], horizon_close], axis=1)), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(hor.std(axis=1) / ctx.std(axis=1))
    return r[np.isfinite(r)]


def summary(x: np.ndarray) -> dict:
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    return {"n": int(len(x)), "median": float(med), "iqr": float(q3 - q1)}


def measure(results: Path, data_dir: str | None) -> dict:
    stages = json.loads((results / "stages.json").read_text())
    proto = load_protocol(stages["protocol"], overrides={"kronos": {"init": "zero-shot"}}
                          if "zero-shot" in str(results) else None)
    source, _ = resolve_data(proto, data_dir)
    frame = clean_klines(klines_for(proto["freq"], source)[0], proto["freq"]).frame
    lookback, horizon = protocol_lookback(proto), int(proto["window"])
    _, test = split_by_time(frame, test_fraction=0.2, gap=lookback + horizon)
    real = extract_windows(test, lookback + horizon, stride=1).values[..., 3]  # every window: the marginal distribution
    real_ratio = log_vol_ratio(real[:, :lookback], real[:, lookback:])
    ds = read_synthetic(results / "work" / "kronos")
    gen = ds.generated().sort_values(["sequence_id", "step"])
    meta = gen.groupby("sequence_id").first()[[SYMBOL, "context_end"]]
    closes = gen["close"].to_numpy().reshape(len(meta), -1)
    ctx = np.empty((len(meta), lookback))
    for sym, part in frame.groupby(frame[SYMBOL].astype(str)):
        pos = {t: i for i, t in enumerate(part[TIMESTAMPS].to_numpy())}
        c = part["close"].to_numpy()
        for k in np.flatnonzero(meta[SYMBOL].astype(str).to_numpy() == sym):
            end = pos[np.datetime64(meta["context_end"].iloc[k], "ns")]
            ctx[k] = c[end - lookback + 1:end + 1]
    out = {"real": summary(real_ratio), "generated": summary(log_vol_ratio(ctx, closes))}
    out["iqr_share"] = out["generated"]["iqr"] / out["real"]["iqr"]
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
