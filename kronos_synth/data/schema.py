"""The K-line column contract every layer shares (names and order only, no logic)."""

from __future__ import annotations

#: The six model features, in the order every array in the toolkit uses.
FEATURES: tuple[str, ...] = ("open", "high", "low", "close", "volume", "amount")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
VOLUME_COLUMNS: tuple[str, ...] = ("volume", "amount")

SYMBOL = "symbol"
TIMESTAMPS = "timestamps"
SEGMENT = "segment"

#: Columns of a K-line frame, in order (cleaning appends `segment`).
KLINE_COLUMNS: tuple[str, ...] = (SYMBOL, TIMESTAMPS, *FEATURES)

#: Accepted spellings of the timestamp column (compared case-insensitively, first match wins).
TIMESTAMP_ALIASES: tuple[str, ...] = ("timestamps", "timestamp", "date", "datetime", "time")
#: A few common spellings of the other columns (case-insensitive).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "amount": ("amount", "turnover", "quote_volume", "quote_asset_volume"),
    "symbol": ("symbol", "ticker", "asset", "code"),
}
#: Tick-volume columns (FX): the volume when the file has no volume column or an all-zero one.
TICK_VOLUME_ALIASES: tuple[str, ...] = ("tick_volume", "tickvol", "tick volume", "ticks")
