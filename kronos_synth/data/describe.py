"""Basic per-symbol statistics of a K-line frame (for `datasets show` and reports)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kronos_synth.data.schema import SYMBOL, TIMESTAMPS


def describe_klines(df: pd.DataFrame) -> pd.DataFrame:
    """One row per symbol: rows, first/last bar, close min/max, log-return mean/std/min/max, volume share of zero."""
    rows = []
    for sym, g in df.groupby(SYMBOL, sort=True):
        close = g["close"].to_numpy(dtype=np.float64)
        r = np.diff(np.log(close)) if close.size > 1 else np.zeros(0)
        rows.append(
            {
                SYMBOL: sym,
                "rows": len(g),
                "first": g[TIMESTAMPS].iloc[0],
                "last": g[TIMESTAMPS].iloc[-1],
                "close_min": float(close.min()),
                "close_max": float(close.max()),
                "ret_mean": float(r.mean()) if r.size else float("nan"),
                "ret_std": float(r.std(ddof=1)) if r.size > 1 else float("nan"),
                "ret_min": float(r.min()) if r.size else float("nan"),
                "ret_max": float(r.max()) if r.size else float("nan"),
                "zero_volume": float((g["volume"].to_numpy() == 0).mean()),
            }
        )
    return pd.DataFrame(rows)
