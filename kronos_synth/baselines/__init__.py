"""Baseline generators behind one fit/sample interface (BASELINES.md).

    from kronos_synth.baselines import get_baseline
    model = get_baseline("garch")
    report = model.fit(train_windows, seed=0)      # (N, T, 6) raw OHLCVA windows
    fake = model.sample(6000, seed=0)              # (6000, T, 6) raw-scale
    model.save("runs/garch"); model = Baseline.load("runs/garch")

Torch models are imported lazily so the series baselines stay light.
"""

from __future__ import annotations

import importlib
from typing import Any

from kronos_synth.baselines.base import (
    Baseline,
    BaselineError,
    CollapseCheck,
    CollapseWarning,
    FitReport,
    ScaleFreeTransform,
    collapse_check,
)

# name → (module, class)
REGISTRY: dict[str, tuple[str, str]] = {
    "bootstrap": ("kronos_synth.baselines.bootstrap", "BootstrapBaseline"),
    "garch": ("kronos_synth.baselines.garch", "GarchBaseline"),
    "timevae": ("kronos_synth.baselines.timevae", "TimeVAEBaseline"),
    "diffusion-ts": ("kronos_synth.baselines.diffusion_ts", "DiffusionTSBaseline"),
    "timegan": ("kronos_synth.baselines.timegan", "TimeGANBaseline"),
}
NAMES = tuple(REGISTRY)


def baseline_class(name: str) -> type[Baseline]:
    """The class registered under `name` (BaselineError for unknown names)."""
    key = name.lower().replace("_", "-")
    if key not in REGISTRY:
        raise BaselineError(f"unknown baseline '{name}' (choose from {', '.join(NAMES)})")
    module, cls = REGISTRY[key]
    return getattr(importlib.import_module(module), cls)


def get_baseline(name: str, **options: Any) -> Baseline:
    """A fresh, unfitted baseline `name` with `options` overriding its CPU-sized defaults."""
    return baseline_class(name)(**options)


__all__ = ["NAMES", "Baseline", "BaselineError", "CollapseCheck", "CollapseWarning", "FitReport",
           "ScaleFreeTransform", "baseline_class", "collapse_check", "get_baseline"]
