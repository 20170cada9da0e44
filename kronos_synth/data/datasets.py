"""Embedded real datasets: OHLCV files that ship inside installed packages (arch, backtesting, and
kronos-synth itself: crypto-15m, from the MIT-licensed GeneTrader repository; docs/models.md).

Files are located with `importlib.util.find_spec`, which finds a package's folder without
importing it (importing `arch` alone takes ~2 s), and read as package data files.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import asdict, dataclass

import pandas as pd

from kronos_synth.data.errors import KlineDataError
from kronos_synth.data.readers import to_klines
from kronos_synth.data.schema import TIMESTAMPS


@dataclass(frozen=True)
class _Source:
    name: str
    package: str
    path: str  # inside the package
    symbol: str | None  # None: the file has a `symbol` column (several instruments)
    frequency: str
    date_format: str | None
    description: str


_SOURCES: dict[str, _Source] = {
    s.name: s
    for s in (
        _Source("sp500-daily", "arch", "data/sp500/sp500.csv.gz", "SPX", "daily", "%m/%d/%Y",
                "S&P 500 index, daily OHLCV 1999-2018 (Adj Close ignored)"),
        _Source("nasdaq-daily", "arch", "data/nasdaq/nasdaq.csv.gz", "IXIC", "daily", "%m/%d/%Y",
                "NASDAQ Composite, daily OHLCV 1999-2018 (Adj Close ignored)"),
        _Source("goog-daily", "backtesting", "test/GOOG.csv", "GOOG", "daily", "%Y-%m-%d",
                "Alphabet (GOOG) stock, daily OHLCV 2004-2013"),
        _Source("eurusd-1h", "backtesting", "test/EURUSD.csv", "EURUSD", "1h", "%Y-%m-%d %H:%M:%S",
                "EUR/USD, hourly OHLC with tick volume 2017-2018"),
        _Source("crypto-15m", "kronos_synth", "assets/datasets/crypto_15m.csv.gz", None, "15min",
                "%Y-%m-%d %H:%M:%S", "Binance spot BTC/USDT and ETH/USDT, 15-minute OHLCV 2024-03..2024-09 "
                "(amount = volume x mean price; MIT, imsatoshi/GeneTrader)"),
    )
}

_DEFAULT_FOR_FREQ = {"daily": "sp500-daily", "1h": "eurusd-1h", "15min": "crypto-15m"}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    symbol: str
    frequency: str
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    source: str  # "package:path"
    description: str

    def to_dict(self) -> dict:
        d = asdict(self)
        d["first"], d["last"] = str(self.first), str(self.last)
        return d


def dataset_names() -> list[str]:
    return list(_SOURCES)


def _source(name: str) -> _Source:
    if name not in _SOURCES:
        raise KlineDataError(
            f"unknown dataset '{name}'", hint=f"embedded datasets: {', '.join(_SOURCES)}"
        )
    return _SOURCES[name]


def dataset_path(name: str) -> str:
    """Absolute path of the embedded file (KlineDataError if its package is not installed)."""
    src = _source(name)
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        raise KlineDataError(
            f"dataset '{name}' needs the package '{src.package}', which is not installed",
            hint=f"pip install {src.package}",
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], *src.path.split("/"))
    if not os.path.isfile(path):
        raise KlineDataError(f"dataset '{name}': {src.package} has no file {src.path}", hint="upgrade the package")
    return path


@functools.lru_cache(maxsize=16)
def _load(name: str) -> pd.DataFrame:
    src = _source(name)
    raw = pd.read_csv(dataset_path(name))
    date_col = raw.columns[0]  # "Date" (arch) or unnamed index (backtesting)
    raw[date_col] = pd.to_datetime(raw[date_col], format=src.date_format)
    keep = [date_col, *(c for c in raw.columns if c.lower() in ("symbol", "open", "high", "low", "close", "volume"))]
    raw = raw[keep].rename(columns={date_col: TIMESTAMPS})
    return to_klines(raw, file=f"{src.package}:{src.path}", symbol=src.symbol)


def load_dataset(name: str) -> pd.DataFrame:
    """A validated K-line frame of an embedded dataset (a fresh copy on every call)."""
    return _load(name).copy()


def dataset_info(name: str) -> DatasetInfo:
    src = _source(name)
    df = _load(name)
    return DatasetInfo(
        name=name,
        symbol=src.symbol or ",".join(sorted(df["symbol"].astype(str).unique())),
        frequency=src.frequency,
        rows=len(df),
        first=df[TIMESTAMPS].iloc[0],
        last=df[TIMESTAMPS].iloc[-1],
        source=f"{src.package}:{src.path}",
        description=src.description,
    )


def list_datasets() -> list[DatasetInfo]:
    """Every embedded dataset whose package is installed, with rows and date range."""
    out = []
    for name in _SOURCES:
        try:
            out.append(dataset_info(name))
        except KlineDataError:
            continue  # package missing: not listed
    return out


def default_dataset_for(freq: str) -> str | None:
    """The embedded dataset to use for a frequency when the user gives no data, or None."""
    from kronos_synth.data.frequency import get_preset

    return _DEFAULT_FOR_FREQ.get(get_preset(freq).name)
