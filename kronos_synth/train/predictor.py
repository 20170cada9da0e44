"""Predictor training with a frozen tokenizer, as the reference.

Each window of lookback + horizon + 1 bars is tokenised; inputs are tokens[:-1] with their
stamps, targets tokens[1:]; loss = (CE_s1 + CE_s2) / 2 over all positions. The s2 head is
conditioned on the true next s1 (`teacher_forcing`, the default here) or, as the reference trains it,
on an s1 sampled from the model's own s1 distribution — which teaches the head to ignore s1, and
sampled bars then come out ~30 % too small (docs/models.md, "The s2 head").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kronos_synth.data.errors import InputError
from kronos_synth.model.configs import HUB_ORG, NAMED_CONFIGS
from kronos_synth.model.hub import check_compatible, resolve_checkpoint
from kronos_synth.model.kronos import Kronos
from kronos_synth.model.pretrained import read_sidecar, sidecar_max_context
from kronos_synth.model.representation import get_representation
from kronos_synth.model.tokenizer import KronosTokenizer
from kronos_synth.train.config import S2_HEAD as S2_HEAD  # re-exported: the s2 head's parameters
from kronos_synth.train.config import PredictorTrainingConfig
from kronos_synth.train.configs import resolve_config
from kronos_synth.train.loop import evaluate_batches, fingerprint, run_loop
from kronos_synth.train.record import relative_ref, write_sidecar, write_training_json
from kronos_synth.train.tokenizer import TrainOutput, check_same_representation
from kronos_synth.train.windows import TrainingData, WindowSet, prepare_training_data


def predictor_loss(model: Kronos, tok: KronosTokenizer, x: torch.Tensor, stamps: torch.Tensor, *,
                   teacher_forcing: bool, generator: torch.Generator | None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """(CE_s1 + CE_s2) / 2 of next-token prediction on normalised windows x (B, T+1, d_in)."""
    s1, s2 = tok.encode(x, half=True)
    l1, l2 = model(s1[:, :-1], s2[:, :-1], stamps[:, :-1], use_teacher_forcing=teacher_forcing,
                   s1_targets=s1[:, 1:], generator=generator)
    ce1 = F.cross_entropy(l1.reshape(-1, l1.shape[-1]), s1[:, 1:].reshape(-1))
    ce2 = F.cross_entropy(l2.reshape(-1, l2.shape[-1]), s2[:, 1:].reshape(-1))
    loss = (ce1 + ce2) / 2
    return loss, {"loss": loss.item(), "ce_s1": ce1.item(), "ce_s2": ce2.item()}


@contextlib.contextmanager
def causal_s2(model: Kronos) -> Iterator[None]:
    """Validation in eval mode, but with the s2 layer's causal mask (which the layer applies only
    in training mode; without it each position's s2 would see later hidden states — a leak).
    The layer has no dropout, so training mode changes nothing else."""
    layer = model.dep_layer.cross_attn
    was = layer.training
    layer.train()
    try:
        yield
    finally:
        layer.train(was)


@dataclass
class PredictorTask:
    model: Kronos
    tokenizer: KronosTokenizer
    tokenizer_ref: str  # folder or hub id, recorded relative to each saved folder
    teacher_forcing: bool
    sidecar: dict[str, Any]

    def loss(self, x, stamps, generator):
        return predictor_loss(self.model, self.tokenizer, x, stamps, teacher_forcing=self.teacher_forcing,
                              generator=generator)

    def evaluate(self, val: WindowSet, batch_size: int, generator: torch.Generator) -> dict[str, float]:
        with causal_s2(self.model):
            return evaluate_batches(val, batch_size, lambda x, s: predictor_loss(
                self.model, self.tokenizer, x, s, teacher_forcing=self.teacher_forcing, generator=generator)[1])

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        write_sidecar(folder, dict(self.sidecar, tokenizer=relative_ref(self.tokenizer_ref, folder)))


def _init_context(init: str) -> int:
    """Context length a released or kronos-synth checkpoint was trained for (0 if unknown)."""
    name = init.removeprefix(f"{HUB_ORG}/")
    if name in NAMED_CONFIGS and NAMED_CONFIGS[name].context:
        return int(NAMED_CONFIGS[name].context)
    folder = resolve_checkpoint(init)
    return sidecar_max_context(folder, read_sidecar(folder)) or 0


def train_predictor(
    data: Sequence[str] | TrainingData,
    out: str | Path,
    config: PredictorTrainingConfig | None = None,
    *,
    tokenizer: str,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda line: None,
    command: list[str] | None = None,
    stop_after: int | None = None,
) -> TrainOutput:
    """Train a Kronos predictor on a frozen `tokenizer` (folder or hub id), from scratch or `config.init`.

    `data` and `out` as in `train_tokenizer`; `config`: the settings (`PredictorTrainingConfig`; None: its
    defaults). Writes `out/` (best weights in reference format, kronos_synth.json naming the tokenizer by a
    relative path, max_context and representation, training.json) and `out/checkpoint-last/`.
    `phase_offsets`: as in `train_tokenizer`. `s2_lr_scale` multiplies the learning rate of the s2 head
    (`S2_HEAD`): a model whose s2 head learned to ignore s1 (trained on sampled siblings) relearns it
    fast while the shared trunk keeps the small fine-tuning step (docs/models.md, "The s2 head").
    """
    cfg = PredictorTrainingConfig.given(config)  # checked when made: before any data is read or output written
    init, teacher_forcing = cfg.init, cfg.teacher_forcing
    loop = cfg.loop
    tok_folder = resolve_checkpoint(tokenizer)
    tok = KronosTokenizer.from_pretrained(tok_folder).eval()
    for p in tok.parameters():
        p.requires_grad_(False)
    rep = get_representation(read_sidecar(tok_folder) or None)  # the tokenizer's input space, in full
    if init is not None:
        check_same_representation(init, get_representation(read_sidecar(resolve_checkpoint(init)) or None), rep)
    td = data if isinstance(data, TrainingData) else prepare_training_data(
        data, freq=cfg.freq, lookback=cfg.lookback, horizon=cfg.horizon, representation=rep,
        phase_offsets=cfg.phase_offsets, validation=cfg.validation, log=log)
    td.check_prepared_for(cfg)
    if td.train.representation.to_dict() != rep.to_dict():
        raise InputError(f"the tokenizer was trained on representation {rep.to_dict()}, "
                         f"the data is prepared as {td.train.representation.to_dict()}")
    torch.manual_seed(cfg.seed)
    if init is not None:
        model = Kronos.from_pretrained(init).train()
    else:
        size = resolve_config("predictor", cfg.config, cfg.overrides)
        size.update(s1_bits=tok.s1_bits, s2_bits=tok.s2_bits)  # the vocabulary is the tokenizer's
        try:
            model = Kronos(**size).train()
        except ValueError as e:
            raise InputError(f"model config: {e}") from e
    check_compatible(tok, model)
    max_context = max(td.lookback + td.horizon, _init_context(init) if init else 0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok_ref = str(tok_folder.resolve()) if Path(tokenizer).is_dir() else tokenizer
    sidecar = {"kind": "predictor", **rep.to_dict(), "max_context": max_context, **td.sidecar_window()}
    from kronos_synth.model.pretrained import weights_sha256

    tok_sha = weights_sha256(tok_folder)
    run_id = fingerprint({"kind": "predictor", "config": model.config, "init": init, "loop": loop,
                          "tokenizer_sha256": tok_sha, "teacher_forcing": teacher_forcing,
                          "data": td.describe()})
    task = PredictorTask(model, tok, tok_ref, teacher_forcing, sidecar)
    result = run_loop(task, td.train, td.val, loop, out, run_fingerprint=run_id, stop_after=stop_after,
                      progress=progress, log=log)
    extra = {"tokenizer": tokenizer, "tokenizer_sha256": tok_sha, "teacher_forcing": teacher_forcing,
             "s2_lr_scale": cfg.s2_lr_scale, "regime_lr_scale": cfg.regime_lr_scale, "max_context": max_context}
    path = write_training_json(out, kind="predictor", data=td, model_config=model.config, loop=loop,
                               result=result, init=init, extra=extra, command=command)
    return TrainOutput(out, result, model.config, path, extra)
