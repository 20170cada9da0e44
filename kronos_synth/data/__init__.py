"""The data layer: K-line schema, readers and validation, cleaning, splits and windows,
frequency presets, trading calendars, resampling and embedded datasets.

Names are re-exported lazily (PEP 562) so that importing `kronos_synth.data.errors` — which the
CLI does at start-up — does not pull in pandas and every data module.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "calendar": "SessionCalendar future_timestamps",
    "cleaning": "CleaningEvent CleaningReport CleaningResult clean_klines",
    "datasets": "DatasetInfo dataset_info dataset_names default_dataset_for list_datasets load_dataset",
    "describe": "describe_klines",
    "errors": "InputError KlineDataError",
    "frequency": "PRESETS FrequencyPreset get_preset infer_frequency",
    "readers": "file_stem inspect_klines read_klines to_klines",
    "resample": "resample_klines",
    "schema": "FEATURES KLINE_COLUMNS PRICE_COLUMNS",
    "sources": "load_klines",
    "splits": "Windows extract_windows split_by_time",
    "validation": "KlineDataWarning ValidationReport require_rows validate_klines",
    "writers": "write_klines",
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names.split()}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
