"""What a training run leaves beside its weights: the `kronos_synth.json` sidecar and `training.json`."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from kronos_synth.model.pretrained import SIDECAR, weights_sha256
from kronos_synth.train.loop import LoopConfig, LoopResult
from kronos_synth.train.windows import TrainingData

TRAINING_JSON = "training.json"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_sidecar(folder: Path, sidecar: dict[str, Any]) -> None:
    """kronos_synth.json beside config.json (never inside it: config.json stays reference-exact)."""
    _atomic_write(folder / SIDECAR, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")


def relative_ref(target: str, folder: Path) -> str:
    """A tokenizer folder as a path relative to `folder` (so the pair can move together); hub ids as is."""
    if os.path.isdir(target):
        return os.path.relpath(os.path.abspath(target), os.path.abspath(folder))
    return target


def write_training_json(out: Path, *, kind: str, data: TrainingData, model_config: dict[str, Any],
                        loop: LoopConfig, result: LoopResult, init: str | None, extra: dict[str, Any],
                        command: list[str] | None = None) -> Path:
    """training.json: everything needed to reproduce and judge the run."""
    from kronos_synth import __version__

    record = {
        "kind": kind,
        "toolkit_version": __version__,
        "command": command,
        "init": init,
        "seed": loop.seed,
        "model_config": model_config,
        "training": asdict(loop),
        "data": data.describe(),
        "steps_done": result.steps_done,
        "total_steps": result.total_steps,
        "finished": result.finished,
        "stopped_early": result.stopped_early,
        "best_step": result.best_step,
        "best_val_loss": result.best_val_loss,
        "history": result.history,
        "wall_time_s": round(result.wall_time_s, 1),
        "weights_sha256": weights_sha256(out),
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "machine": platform.machine()},
        **extra,
    }
    path = out / TRAINING_JSON
    _atomic_write(path, json.dumps(record, indent=2, default=str) + "\n")
    return path
