"""`TokenizerTrainingConfig` and `PredictorTrainingConfig`: every setting of a training run, each default
written once.

The trainers (`train_tokenizer`, `train_predictor`) take these frozen dataclasses; the CLI's `train tokenizer`
and `train model` options take their defaults from them (`default`); the benchmark stages and the recipes
build them. Settings are checked when a config is made (`__post_init__`), so a bad one fails before any data
is read or folder created; errors name the field (`InputError.param`), and the CLI shows the matching flag.

The optimisation settings of a run resolve to a `LoopConfig` (`loop`): the defaults that depend on other
settings (the steps when neither steps nor epochs is given; the learning rate, smaller when fine-tuning
`init`) are filled in there. `LoopConfig` is part of a run's fingerprint, so a folder written before these
classes existed resumes with the same settings.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar

from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import get_preset
from kronos_synth.model.representation import Representation, get_representation
from kronos_synth.train.loop import LoopConfig
from kronos_synth.train.windows import VALIDATION_PERIODS

#: parameters that only the predictor's s2 head uses (its dependency layer and projection): `s2_lr_scale`
S2_HEAD = ("dep_layer.", "head.proj_s2.")


def _is_whole(x: Any) -> bool:
    return (isinstance(x, numbers.Integral) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


def _number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Settings both trainers share: the windows, the starting point and the optimisation loop.

    Use `TokenizerTrainingConfig` or `PredictorTrainingConfig`; this base holds what they share.
    """

    #: what `init` fine-tunes, in messages
    model_name: ClassVar[str] = ""
    #: peak learning rate when `lr` is unset: from scratch, and when fine-tuning `init` (a trained model
    #: needs a small step, ≈1e-5; docs/models.md, fine-tuning)
    scratch_lr: ClassVar[float] = 0.0
    finetune_lr: ClassVar[float] = 1e-5
    #: optimizer steps when neither `steps` nor `epochs` is given
    default_steps: ClassVar[int] = 1000
    grad_clip: ClassVar[float] = 0.0

    # windows (ignored when the data come as prepared `TrainingData`)
    freq: str = "daily"  # bar frequency; finer sources are resampled to it
    lookback: int | None = None  # context bars; None: the frequency preset's
    horizon: int | None = None  # predicted bars; None: the frequency preset's
    phase_offsets: bool = False  # finer sources give train windows at every bin offset (prepare_training_data)
    #: validation windows from the "held-out" test period, or the "train-tail" (the test period stays unread)
    validation: str = "held-out"
    # starting point: a checkpoint to fine-tune, or a model size to train from scratch
    init: str | None = None  # hub id or folder
    config: str | None = None  # size: preset, released name, JSON object or .json file (train.configs); None: small
    #: single size keys over `config` (None values dropped); not hashed, so configs stay hashable
    overrides: dict[str, Any] = field(default_factory=dict, hash=False)
    # optimisation
    steps: int | None = None  # optimizer steps; or
    epochs: float | None = None  # passes over the train windows (neither: `default_steps` steps)
    batch_size: int = 32  # the predictor's; the tokenizer's is its own (below)
    lr: float | None = None  # peak learning rate; None: `finetune_lr` with `init`, else `scratch_lr`
    seed: int = 0
    eval_every: int = 100  # validate every N steps
    patience: int = 5  # validations without a new best before stopping; 0 = never stop early

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", {k: v for k, v in dict(self.overrides or {}).items() if v is not None})
        try:
            get_preset(self.freq)
        except InputError as e:
            raise InputError(str(e), param="freq") from None
        for name in ("lookback", "horizon"):
            value = getattr(self, name)
            if value is not None and (not _is_whole(value) or value < 1):
                raise InputError(f"{name} must be positive (or unset for the frequency preset's), got {value!r}",
                                 param=name)
        if self.validation not in VALIDATION_PERIODS:
            raise InputError(f"validation must be one of {', '.join(VALIDATION_PERIODS)}, got {self.validation!r}",
                             param="validation")
        if self.init is not None and (self.config is not None or self.overrides):
            given = ["config"] * (self.config is not None) + list(self.overrides)
            raise InputError(f"init fine-tunes an existing {self.model_name}: size options ({', '.join(given)}) "
                             "cannot be combined with it", param=("init", *given))
        self.loop.check()

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of one setting (for CLI option defaults)."""
        for f in fields(cls):
            if f.name == name:
                return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]
        raise KeyError(f"{cls.__name__} has no setting {name!r}")

    @classmethod
    def given(cls, config: Any) -> Any:
        """`config` as a trainer takes it: the defaults when None; another type is a caller's bug (TypeError)."""
        if config is None:
            return cls()
        if not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        return config

    @property
    def loop(self) -> LoopConfig:
        """The optimisation settings of the run, with the dependent defaults filled in."""
        both_unset = self.steps is None and self.epochs is None
        lr = self.lr if self.lr is not None else self.finetune_lr if self.init is not None else self.scratch_lr
        return LoopConfig(steps=self.default_steps if both_unset else self.steps, epochs=self.epochs,
                          batch_size=self.batch_size, lr=lr, grad_clip=self.grad_clip, seed=self.seed,
                          eval_every=self.eval_every, patience=self.patience, lr_scale=self._lr_scale())

    def _lr_scale(self) -> tuple[tuple[str, float], ...]:
        return ()


@dataclass(frozen=True, kw_only=True)
class TokenizerTrainingConfig(TrainingConfig):
    """Settings of a tokenizer training run (`train_tokenizer`, `kronos-synth train tokenizer`)."""

    model_name: ClassVar[str] = "tokenizer"
    scratch_lr: ClassVar[float] = 1e-3
    grad_clip: ClassVar[float] = 2.0

    batch_size: int = 64
    #: input space: a name ('levels', 'geometry'), a sidecar dict or a `Representation`; None: the `init`
    #: checkpoint's, else levels. Fine-tuning cannot change it (except `center_returns`)
    representation: str | dict | Representation | None = field(default=None, hash=False)
    #: geometry: scale gap/body around 0 instead of the context's mean return (no trend carried on);
    #: None keeps the chosen representation's
    center_returns: bool | None = None
    #: > 0 weighs the reconstruction error of large normalised values up (`tokenizer_loss`); 0: the reference
    tail_weight: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not _number(self.tail_weight) or self.tail_weight < 0:
            raise InputError(f"tail_weight must be ≥ 0, got {self.tail_weight}", param="tail_weight")
        if isinstance(self.representation, str | dict):
            try:
                get_representation(self.representation)
            except InputError as e:
                raise InputError(str(e), param="representation") from None


@dataclass(frozen=True, kw_only=True)
class PredictorTrainingConfig(TrainingConfig):
    """Settings of a predictor training run (`train_predictor`, `kronos-synth train model`); the frozen
    tokenizer is an argument of `train_predictor`, not a setting."""

    model_name: ClassVar[str] = "model"
    scratch_lr: ClassVar[float] = 5e-4
    grad_clip: ClassVar[float] = 3.0

    #: condition the s2 head on the true next s1 (True), or on an s1 sampled from the model as the reference
    #: does (its s2 head then learns to ignore s1; docs/models.md, "The s2 head")
    teacher_forcing: bool = True
    #: learning-rate multiplier of the s2 head (`S2_HEAD`)
    s2_lr_scale: float = 1.0
    #: learning-rate multiplier of the volatility-regime table (`regime_emb`, data/regime.py): a table added to
    #: a trained predictor starts at zero, and at a fine-tuning learning rate Adam moves it ~lr per step
    regime_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        for key in ("s2_lr_scale", "regime_lr_scale"):
            v = getattr(self, key)
            if not _number(v) or not v > 0:
                raise InputError(f"{key} must be > 0, got {v}", param=key)
        super().__post_init__()

    def _lr_scale(self) -> tuple[tuple[str, float], ...]:
        out = [] if self.regime_lr_scale == 1 else [("regime_emb.", float(self.regime_lr_scale))]
        if self.s2_lr_scale != 1:
            out += [(prefix, float(self.s2_lr_scale)) for prefix in S2_HEAD]
        return tuple(out)
