"""Write a K-line frame to CSV / CSV.gz / Parquet atomically (temp name, then rename)."""

from __future__ import annotations

import os
import tempfile

import pandas as pd

from kronos_synth.data.errors import KlineDataError


def write_klines(df: pd.DataFrame, path: str) -> str:
    """Write `df` to `path` (format from the extension); never leaves a half-written file."""
    lower = path.lower()
    if not lower.endswith((".csv", ".csv.gz", ".parquet", ".pq")):
        raise KlineDataError("unknown output file type", file=path, hint="use .csv, .csv.gz or .parquet")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise KlineDataError("output folder does not exist", file=path, hint="create it first")
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        if lower.endswith((".parquet", ".pq")):
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False, compression="gzip" if lower.endswith(".gz") else None)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
