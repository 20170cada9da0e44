"""Training and fine-tuning of the Kronos tokenizer and predictor (reference objectives),
deterministic and resumable, writing reference-format checkpoint folders."""

from kronos_synth.model.representation import (
    REPRESENTATIONS,
    Geometry,
    Levels,
    Representation,
    get_representation,
)
from kronos_synth.train.config import PredictorTrainingConfig, TokenizerTrainingConfig, TrainingConfig
from kronos_synth.train.configs import PREDICTOR_PRESETS, TOKENIZER_PRESETS, resolve_config
from kronos_synth.train.loop import LoopConfig, LoopResult
from kronos_synth.train.predictor import predictor_loss, train_predictor
from kronos_synth.train.tokenizer import TrainOutput, codebook_usage, tokenizer_loss, train_tokenizer
from kronos_synth.train.windows import TrainingData, WindowSet, prepare_training_data

__all__ = [
    "Geometry", "Levels", "LoopConfig", "LoopResult", "PREDICTOR_PRESETS", "PredictorTrainingConfig",
    "REPRESENTATIONS", "Representation", "TOKENIZER_PRESETS", "TokenizerTrainingConfig", "TrainOutput",
    "TrainingConfig", "TrainingData", "WindowSet", "codebook_usage", "get_representation",
    "predictor_loss", "prepare_training_data", "resolve_config", "tokenizer_loss", "train_predictor",
    "train_tokenizer",
]
