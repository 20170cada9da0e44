"""Tokenizer training: loss = (MSE(coarse recon) + MSE(full recon) + BSQ loss) / 2, as the reference.

The coarse reconstruction decodes the s1 bits alone, so s1 learns the big picture and s2 the
residual; the BSQ loss (commitment + entropy terms) may be negative. Codebook usage of both
halves is reported (reference Kronos: 97.7 % of s1 codes, 85.3 % of s2 codes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kronos_synth.data.errors import InputError
from kronos_synth.model.hub import resolve_checkpoint
from kronos_synth.model.pretrained import read_sidecar
from kronos_synth.model.representation import Geometry, Representation, get_representation
from kronos_synth.model.tokenizer import KronosTokenizer
from kronos_synth.train.config import TokenizerTrainingConfig
from kronos_synth.train.configs import resolve_config
from kronos_synth.train.loop import LoopResult, evaluate_batches, fingerprint, run_loop
from kronos_synth.train.record import write_sidecar, write_training_json
from kronos_synth.train.windows import TrainingData, WindowSet, prepare_training_data


def tokenizer_loss(tok: KronosTokenizer, x: torch.Tensor, tail_weight: float = 0.0
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """The reference objective on normalised windows x (B, T, d_in).

    `tail_weight` w > 0 weighs each squared reconstruction error by (1 + w·x²) / mean(1 + w·x²): rare
    large values (a 6σ bar is 1 in ~10⁴ of the inputs) otherwise barely move the MSE, and the decoded
    returns lose their tails (docs/models.md, "Tails"). w = 0 is the reference loss exactly."""
    out = tok(x)
    if tail_weight > 0:
        w = 1 + tail_weight * x.detach().square()
        w = w / w.mean()
        coarse, full = (w * (out.recon_coarse - x).square()).mean(), (w * (out.recon_full - x).square()).mean()
    else:
        coarse, full = F.mse_loss(out.recon_coarse, x), F.mse_loss(out.recon_full, x)
    loss = (coarse + full + out.bsq_loss.total) / 2
    return loss, {"loss": loss.item(), "recon_coarse": coarse.item(), "recon_full": full.item(),
                  "bsq": out.bsq_loss.total.item()}


@torch.no_grad()
def codebook_usage(tok: KronosTokenizer, ws: WindowSet, batch_size: int = 256,
                   max_windows: int = 2048) -> dict[str, float]:
    """Share of the 2^bits codes that occur, and perplexity / vocabulary, for s1 and s2 separately,
    over (up to `max_windows` evenly spaced) windows of `ws`."""
    ids: dict[str, list[np.ndarray]] = {"s1": [], "s2": []}
    parts = list(ws.groups())  # a mixture of bar sizes: the windows are shared out evenly
    for part in parts:
        n = len(part)
        index = np.unique(np.linspace(0, n - 1, min(n, max_windows // len(parts))).round().astype(np.int64))
        for a in range(0, len(index), batch_size):
            x, _ = part.batch(index[a:a + batch_size])
            s1, s2 = tok.encode(torch.from_numpy(x), half=True)
            ids["s1"].append(s1.numpy().ravel())
            ids["s2"].append(s2.numpy().ravel())
    out: dict[str, float] = {"tokens": float(sum(len(v) for v in ids["s1"]))}
    for half, bits in (("s1", tok.s1_bits), ("s2", tok.s2_bits)):
        counts = np.bincount(np.concatenate(ids[half]), minlength=2 ** bits)
        p = counts[counts > 0] / counts.sum()
        out[f"{half}_used"] = int((counts > 0).sum())
        out[f"{half}_vocab"] = 2 ** bits
        out[f"{half}_usage"] = round(float((counts > 0).mean()), 4)
        out[f"{half}_perplexity_share"] = round(float(np.exp(-(p * np.log(p)).sum()) / 2 ** bits), 4)
    return out


@dataclass
class TokenizerTask:
    model: KronosTokenizer
    sidecar: dict[str, Any]
    tail_weight: float = 0.0

    def loss(self, x, stamps, generator):
        return tokenizer_loss(self.model, x, self.tail_weight)

    def evaluate(self, val: WindowSet, batch_size: int, generator: torch.Generator) -> dict[str, float]:
        return evaluate_batches(val, batch_size, lambda x, s: tokenizer_loss(self.model, x, self.tail_weight)[1])

    def save(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        write_sidecar(folder, self.sidecar)


def _comparable(rep: Representation) -> dict:
    return {k: v for k, v in rep.to_dict().items() if k != "center_returns"}


def check_same_representation(init: str, init_rep: Representation, rep: Representation) -> None:
    """Fine-tuning keeps the input space the `init` checkpoint learned (its kronos_synth.json, else levels).

    `center_returns` may change: it only drops the shift of the gap/body z-scores by the context's mean
    return/std (≈ 1/√lookback), so the fine-tune adapts to it like to a new market."""
    if _comparable(init_rep) != _comparable(rep):
        raise InputError(f"init {init} was trained in representation {init_rep.to_dict()} but this run uses "
                         f"{rep.to_dict()} — fine-tuning cannot change the representation; train from scratch "
                         "or pass the checkpoint's representation", param="init")


@dataclass
class TrainOutput:
    """A finished (or paused) training run."""

    out: Path
    result: LoopResult
    model_config: dict[str, Any]
    training_json: Path
    extra: dict[str, Any]


def train_tokenizer(
    data: Sequence[str] | TrainingData,
    out: str | Path,
    config: TokenizerTrainingConfig | None = None,
    *,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda line: None,
    command: list[str] | None = None,
    stop_after: int | None = None,
) -> TrainOutput:
    """Train a Kronos tokenizer from scratch (`config.config`/`overrides`) or fine-tune one (`config.init`).

    `data`: sources (files, globs, embedded dataset names) or prepared `TrainingData` (then the config's
    freq, lookback, horizon and phase_offsets are those it was prepared with). `config`: the settings
    (`TokenizerTrainingConfig`; None: its defaults). Writes `out/` (best weights, reference format, +
    kronos_synth.json + training.json) and `out/checkpoint-last/` (resumable); rerunning the same call
    continues an unfinished run, and `stop_after` pauses it after that many steps.
    `representation` (None → the `init` checkpoint's, else levels) is recorded in kronos_synth.json;
    fine-tuning cannot change it, except `center_returns` (True scales the gap/body around 0 instead of the
    context's mean return, so no trend is carried on; geometry only; None keeps the chosen one).
    `phase_offsets`: sources finer than an intraday `freq` give train windows at every bin origin offset
    (`prepare_training_data`). `tail_weight` > 0 weighs the
    reconstruction error of large normalised values up (`tokenizer_loss`; train and validation loss).
    """
    cfg = TokenizerTrainingConfig.given(config)  # checked when made: before any data is read or output written
    init, representation = cfg.init, cfg.representation
    loop = cfg.loop
    init_rep = get_representation(read_sidecar(resolve_checkpoint(init)) or None) if init is not None else None
    if isinstance(data, TrainingData):
        rep = data.train.representation
        if representation is not None and get_representation(representation).to_dict() != rep.to_dict():
            raise InputError(f"the windows are prepared as {rep.to_dict()}, not as {representation}")
    elif isinstance(representation, str) and init_rep is not None and representation == init_rep.name:
        rep = init_rep  # the name alone keeps the checkpoint's settings (clip, …)
    else:
        rep = get_representation(representation if representation is not None else init_rep)
    if cfg.center_returns is not None:
        if not isinstance(rep, Geometry):
            raise InputError("center_returns needs representation='geometry'",
                             param=("center_returns", "representation"))
        if isinstance(data, TrainingData) and rep.center_returns != bool(cfg.center_returns):
            raise InputError(f"the windows are prepared with center_returns={rep.center_returns}")
        rep = dataclasses.replace(rep, center_returns=bool(cfg.center_returns))
    if init_rep is not None:
        check_same_representation(init, init_rep, rep)
    td = data if isinstance(data, TrainingData) else prepare_training_data(
        data, freq=cfg.freq, lookback=cfg.lookback, horizon=cfg.horizon, representation=rep,
        phase_offsets=cfg.phase_offsets, validation=cfg.validation, log=log)
    td.check_prepared_for(cfg)
    torch.manual_seed(cfg.seed)  # initial weights
    if init is not None:
        tok = KronosTokenizer.from_pretrained(init).train()
    else:
        size = resolve_config("tokenizer", cfg.config, cfg.overrides)  # its errors name the key already
        try:
            tok = KronosTokenizer(**size).train()
        except ValueError as e:
            raise InputError(f"tokenizer config: {e}") from e
    if tok.d_in != rep.d_in:
        raise InputError(f"tokenizer d_in {tok.d_in} does not match representation "
                         f"'{rep.name}' ({rep.d_in} features)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    objective = {"tail_weight": float(cfg.tail_weight)} if cfg.tail_weight else {}  # absent: fingerprints stay as they were
    run_id = fingerprint({"kind": "tokenizer", "config": tok.config, "init": init, "loop": loop,
                          "data": td.describe(), **objective})
    task = TokenizerTask(tok, {"kind": "tokenizer", **rep.to_dict(), **td.sidecar_window()}, float(cfg.tail_weight))
    result = run_loop(task, td.train, td.val, loop, out, run_fingerprint=run_id, stop_after=stop_after,
                      progress=progress, log=log)
    extra: dict[str, Any] = dict(objective)
    if result.finished:  # usage of the best (= saved) weights
        best = KronosTokenizer.from_pretrained(out)
        extra["codebook_usage"] = {"val": codebook_usage(best, td.val), "train": codebook_usage(best, td.train)}
    path = write_training_json(out, kind="tokenizer", data=td, model_config=tok.config, loop=loop,
                               result=result, init=init, extra=extra, command=command)
    return TrainOutput(out, result, tok.config, path, extra)
