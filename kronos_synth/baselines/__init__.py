"""Baseline generators behind one fit/sample interface (docs/baselines.md).

    from kronos_synth.baselines import get_baseline
    model = get_baseline("garch")
    report = model.fit(train_windows, seed=0)      # (N, T, 6) raw OHLCVA windows
    fake = model.sample(6000, seed=0)              # (6000, T, 6) raw-scale
    model.save("runs/garch"); model = Baseline.load("runs/garch")

Torch models are imported lazily so the series baselines stay light. Each baseline's fit settings are one
frozen dataclass, `baseline_class(name).Options` (a `BaselineOptions`), each default written once.

The registry (`REGISTRY`, `NAMES`) is the one list of baseline names: the CLI's choices and the
benchmark's generators come from it. It is defined beside `Baseline` in `base.py`, whose `load`
dispatches on it, so the package and its modules import each other in one direction only.
"""

from __future__ import annotations

from kronos_synth.baselines.base import (
    NAMES,
    REGISTRY,
    Baseline,
    BaselineError,
    BaselineOptions,
    CollapseCheck,
    CollapseWarning,
    FitReport,
    ScaleFreeTransform,
    baseline_class,
    collapse_check,
    get_baseline,
)

__all__ = ["NAMES", "REGISTRY", "Baseline", "BaselineError", "BaselineOptions", "CollapseCheck", "CollapseWarning",
           "FitReport", "ScaleFreeTransform", "baseline_class", "collapse_check", "get_baseline"]
