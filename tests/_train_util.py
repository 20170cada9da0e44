"""Shared helpers of the training tests: tiny seeded runs on the embedded GOOG data."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kronos_synth.train import (
    PredictorTrainingConfig,
    TokenizerTrainingConfig,
    prepare_training_data,
    train_predictor,
    train_tokenizer,
)

DATA = ["goog-daily"]
CALL = ("progress", "stop_after", "log", "command")  # arguments of the trainers; the rest are settings


def tiny_data(max_val_windows: int = 48):
    return prepare_training_data(DATA, freq="daily", lookback=40, horizon=10, max_val_windows=max_val_windows)


def _split(args: dict) -> tuple[dict, dict]:
    return {k: v for k, v in args.items() if k not in CALL}, {k: v for k, v in args.items() if k in CALL}


def tiny_tokenizer(out: Path, td=None, **kw):
    settings, call = _split(dict(dict(config="tiny", steps=8, batch_size=16, eval_every=4, seed=0, progress=False),
                                 **kw))
    return train_tokenizer(td if td is not None else tiny_data(), out, TokenizerTrainingConfig(**settings), **call)


def tiny_predictor(out: Path, tokenizer: Path, td=None, **kw):
    settings, call = _split(dict(dict(config="tiny", steps=8, batch_size=16, eval_every=4, seed=0, lr=1e-3,
                                      progress=False), **kw))
    return train_predictor(td if td is not None else tiny_data(), out, PredictorTrainingConfig(**settings),
                           tokenizer=str(tokenizer), **call)


def weights_hash(folder: Path) -> str:
    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()
