"""The training loop both trainers share: AdamW + OneCycle, gradient clipping, periodic
validation with early stopping, and exact resume from `checkpoint-last/`.

Determinism: the batch of global step s is a pure function of (seed, s) — epoch e uses the
permutation drawn by `np.random.default_rng([seed, e])` — and the only other randomness
(dropout via torch's global RNG, s1 sampling via one `torch.Generator`) is saved with the
optimizer and scheduler state. So a run stopped at any saved step and rerun ends with the
same weights as an uninterrupted run. Validation draws from its own generator, reseeded at
every evaluation, so it never perturbs training.

The resumable state is `checkpoint-last/trainer_state.json` (run fingerprint, progress, history) plus
`trainer_state.pt` (weights, optimizer, scheduler and RNG states: tensors and plain values only). A rerun
compares the JSON's fingerprint first and only then loads the .pt with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import pickle
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from kronos_synth.data.errors import InputError
from kronos_synth.progress import show_progress
from kronos_synth.train.windows import WindowSet, steps_per_epoch

LAST = "checkpoint-last"
STATE_FILE = "trainer_state.pt"  # tensors + the small parts; loaded with torch.load(weights_only=True)
STATE_JSON = "trainer_state.json"  # fingerprint + the small parts; read and compared before STATE_FILE
STATE_FORMAT = 2  # 1: a pickled trainer_state.pt without STATE_JSON (no longer loaded)
_STATE_KEYS = ("fingerprint", "model", "optimizer", "scheduler", "torch_rng", "generator", "result",
               "window_losses", "complete")


@dataclass(kw_only=True)
class LoopConfig:
    """The optimisation settings of one run, resolved (built by `TrainingConfig.loop`, whose fields hold the
    defaults of the settings without one here; the rest follow the reference fine-tuning scripts).

    Its repr is part of a run's fingerprint: the fields, their order and their values' types stay as they
    are, or existing training folders no longer resume."""

    steps: int | None  # total optimizer steps; or
    epochs: float | None  # passes over the train windows (one of the two)
    batch_size: int
    lr: float
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float
    pct_start: float = 0.03  # OneCycle warm-up share
    div_factor: float = 10.0  # OneCycle initial lr = lr / div_factor
    eval_every: int
    patience: int  # evaluations without a new best before stopping; 0 = never stop early
    seed: int
    #: (parameter-name prefix, lr multiplier) pairs: those parameters train at lr × multiplier
    lr_scale: tuple[tuple[str, float], ...] = ()

    def check(self) -> None:
        """Raise `InputError` on settings no run can use. The trainers call it before they prepare data or
        create the output folder, so a bad setting leaves nothing behind."""
        if (self.steps is None) == (self.epochs is None):
            raise InputError("give exactly one of steps and epochs", param=("steps", "epochs"))
        if self.steps is not None and (not _is_int(self.steps) or self.steps < 1):
            raise InputError(f"steps must be a positive whole number, got {self.steps}", param="steps")
        if self.epochs is not None and not _positive(self.epochs):
            raise InputError(f"epochs must be positive, got {self.epochs}", param="epochs")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise InputError(f"batch_size must be positive, got {self.batch_size}", param="batch_size")
        if not _positive(self.lr):
            raise InputError(f"lr must be a positive learning rate, got {self.lr}", param="lr")
        if not _is_int(self.eval_every) or self.eval_every < 1:
            raise InputError(f"eval_every must be positive (validate every N steps), got {self.eval_every}",
                             param="eval_every")
        if not _is_int(self.patience) or self.patience < 0:
            raise InputError(f"patience must be ≥ 0 (0 = never stop early), got {self.patience}", param="patience")
        if not (_positive(self.weight_decay) or self.weight_decay == 0):
            raise InputError(f"weight_decay must be ≥ 0, got {self.weight_decay}", param="weight_decay")
        if not _positive(self.grad_clip):
            raise InputError(f"grad_clip must be positive, got {self.grad_clip}", param="grad_clip")
        for prefix, scale in self.lr_scale:
            if not _positive(scale):
                raise InputError(f"lr_scale of {prefix!r} must be positive, got {scale}", param="lr_scale")

    def total_steps(self, n_train: int) -> int:
        self.check()
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.epochs * steps_per_epoch(n_train, self.batch_size)))


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def _positive(x: Any) -> bool:
    """A finite number > 0 (False for NaN, inf, bools and non-numbers)."""
    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and \
        math.isfinite(x) and x > 0


class Task(Protocol):
    """What the loop trains: a module, a batch loss and a validation pass."""

    model: torch.nn.Module

    def loss(self, x: torch.Tensor, stamps: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]: ...

    def evaluate(self, val: WindowSet, batch_size: int, generator: torch.Generator) -> dict[str, float]: ...

    def save(self, folder: Path) -> None: ...


@dataclass
class LoopResult:
    steps_done: int
    total_steps: int
    finished: bool  # False when stopped by `stop_after` or an interrupt (rerun to continue)
    stopped_early: bool
    best_step: int
    best_val_loss: float
    history: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0  # summed over all runs that built this result


def fingerprint(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """torch.use_deterministic_algorithms for the duration (restored afterwards)."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _tensors(ws: WindowSet, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return _as_tensors(*ws.batch(index))


def _as_tensors(x: np.ndarray, stamps: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(stamps))


def evaluate_batches(ws: WindowSet, batch_size: int,
                     fn: Callable[[torch.Tensor, torch.Tensor], dict[str, float]]) -> dict[str, float]:
    """Mean of per-batch metrics over all windows of `ws`, in order, weighted by batch size; a mixture of
    bar sizes (`ws.groups()`) weighs each bar size equally."""
    means = []
    for part in ws.groups():
        totals: dict[str, float] = {}
        for a in range(0, len(part), batch_size):
            idx = np.arange(a, min(a + batch_size, len(part)))
            for k, v in fn(*_tensors(part, idx)).items():
                totals[k] = totals.get(k, 0.0) + float(v) * len(idx)
        means.append({k: v / len(part) for k, v in totals.items()})
    if len(means) == 1:
        return means[0]
    return {k: float(np.mean([m[k] for m in means])) for k in means[0]}


def param_groups(model: torch.nn.Module, cfg: LoopConfig) -> list[dict]:
    """Trainable parameters as AdamW groups: one at `cfg.lr`, plus one per `cfg.lr_scale` prefix that
    matches (first matching prefix wins). Without `lr_scale` a single group, as before."""
    names = [name for name, _ in model.named_parameters()]
    unused = [prefix for prefix, _ in cfg.lr_scale if not any(n.startswith(prefix) for n in names)]
    if unused:
        raise InputError(f"lr_scale: no parameter name starts with {', '.join(map(repr, unused))}")
    buckets: dict[float, list[torch.nn.Parameter]] = {1.0: []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = next((float(m) for prefix, m in cfg.lr_scale if name.startswith(prefix)), 1.0)
        buckets.setdefault(scale, []).append(p)
    return [{"params": ps, "lr": cfg.lr * m} for m, ps in buckets.items() if ps]


def run_loop(task: Task, train: WindowSet, val: WindowSet, cfg: LoopConfig, out: Path, *,
             run_fingerprint: str, stop_after: int | None = None, progress: bool | None = None,
             log: Callable[[str], None] = lambda line: None) -> LoopResult:
    """Train `task.model`, saving the best-by-validation weights to `out` via `task.save` and the
    resumable state to `out/checkpoint-last/`. Reruns with the same fingerprint continue."""
    model = task.model
    total = cfg.total_steps(len(train))
    groups = param_groups(model, cfg)
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=total,
                                                pct_start=cfg.pct_start, div_factor=cfg.div_factor)
    torch.manual_seed(cfg.seed)  # dropout
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # s1 sampling for the s2 head
    res = LoopResult(0, total, False, False, -1, math.inf)
    window_losses: list[float] = []  # train losses since the last evaluation
    last = out / LAST
    state = read_state(out, run_fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        gen.set_state(state["generator"])
        res = LoopResult(**state["result"])
        res.finished = state["complete"]
        window_losses = list(state["window_losses"])
        log(f"resuming {out} at step {res.steps_done}/{total}")
        if state["complete"]:
            return res
    t0 = time.perf_counter()
    wall0 = res.wall_time_s

    def save_last(complete: bool) -> None:
        res.wall_time_s = wall0 + time.perf_counter() - t0
        last.mkdir(parents=True, exist_ok=True)
        task.save(last)
        small = {"format": STATE_FORMAT, "fingerprint": run_fingerprint, "result": asdict(res),
                 "window_losses": list(window_losses), "complete": complete}
        text = json.dumps(small, indent=1, default=_plain)
        state = {**json.loads(text), "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "generator": gen.get_state()}
        # Each file is replaced atomically (a kill never leaves half of one). The JSON goes first: a kill
        # between the two leaves the previous .pt, whose own copy of the small parts is what a rerun uses.
        tmp = last / (STATE_JSON + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        tmp.replace(last / STATE_JSON)
        tmp = last / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(last / STATE_FILE)

    def validate(train_loss: float | None) -> bool:
        """Evaluate, keep the best weights; True when early stopping triggers."""
        model.eval()
        with torch.no_grad():
            metrics = task.evaluate(val, cfg.batch_size, torch.Generator().manual_seed(cfg.seed + 2))
        model.train()
        entry = {"step": res.steps_done, "lr": float(opt.param_groups[0]["lr"]), "train_loss": train_loss,
                 **{f"val_{k}": v for k, v in metrics.items()}}
        res.history.append(entry)
        better = metrics["loss"] < res.best_val_loss
        if better:
            res.best_val_loss, res.best_step = float(metrics["loss"]), res.steps_done
            task.save(out)
        log(f"step {res.steps_done}/{total}: train {train_loss if train_loss is None else round(train_loss, 5)} "
            f"val {metrics['loss']:.5f}" + (" (best)" if better else ""))
        bad = sum(1 for _ in _since_best(res))
        return bool(cfg.patience) and bad >= cfg.patience

    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=res.steps_done, disable=not show_progress(progress), unit="step",
               dynamic_ncols=True)
    run_steps = 0
    model.train()
    try:
        with deterministic():
            if not res.history:
                if validate(None):
                    res.stopped_early = True
            while res.steps_done < total and not res.stopped_early:
                if stop_after is not None and run_steps >= stop_after:
                    save_last(False)
                    bar.close()
                    return res
                x, stamps = _as_tensors(*train.draw(cfg.seed, res.steps_done, cfg.batch_size))
                loss, _ = task.loss(x, stamps, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                sched.step()
                res.steps_done += 1
                run_steps += 1
                window_losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{window_losses[-1]:.4f}")
                if res.steps_done % cfg.eval_every == 0 or res.steps_done == total:
                    res.stopped_early = validate(float(np.mean(window_losses)))
                    window_losses = []
                    save_last(False)
    finally:  # an interrupt keeps the last saved state (every evaluation saves one)
        bar.close()
    res.finished = True
    save_last(True)
    return res


def _plain(o: Any) -> Any:
    """JSON for numpy scalars (history entries); anything else is a bug in the caller."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON-able in a trainer state: {type(o).__name__}")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0].split(". ")[0].rstrip(".") if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "…"


def read_state(out: Path, run_fingerprint: str) -> dict[str, Any] | None:
    """The saved state of `out/checkpoint-last/` when it belongs to this run; None when there is none.

    `trainer_state.json` is read and its fingerprint compared FIRST; only then is `trainer_state.pt` loaded,
    with `torch.load(weights_only=True)` (tensors, numbers, strings, lists and dicts — never code), so a
    training folder from elsewhere cannot run anything. A state without the JSON (written by kronos-synth
    before version 2 of this format, or by something else) is refused, not loaded.
    """
    last = Path(out) / LAST
    js, pt = last / STATE_JSON, last / STATE_FILE
    again = f"use a new out folder, or delete {last} to start over"
    if not js.is_file():
        if pt.is_file():
            raise InputError(f"{pt}: a trainer state without {STATE_JSON} (an older kronos-synth format, or not "
                             f"written by kronos-synth) is not loaded — {again}", param="out")
        return None
    try:
        meta = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{js}: unreadable ({_first_line(e)}) — {again}", param="out") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("fingerprint"), str):
        raise InputError(f"{js}: not a trainer state (no fingerprint) — {again}", param="out")
    if meta["fingerprint"] != run_fingerprint:
        raise InputError(f"{out}: holds a run with different data or settings (checkpoint-last) — "
                         "use a new out folder, or delete it to start over", param="out")
    if not pt.is_file():
        return None  # interrupted between the two files of the very first save: nothing to resume
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as e:  # junk bytes, a truncated file, or pickled objects weights_only refuses
        why = ("not a torch file of tensors and plain values (junk bytes, or pickled objects, which are never "
               "loaded)" if isinstance(e, pickle.UnpicklingError) else
               "empty or truncated" if isinstance(e, EOFError) else _first_line(e))
        raise InputError(f"{pt}: cannot be loaded as a trainer state: {why} — {again}", param="out") from None
    if not isinstance(state, dict) or any(k not in state for k in _STATE_KEYS) \
            or state["fingerprint"] != run_fingerprint:
        raise InputError(f"{pt}: not the trainer state of the run {STATE_JSON} names — {again}", param="out")
    return state


def _since_best(res: LoopResult) -> Iterator[dict]:
    """Evaluations after the best one."""
    return (h for h in res.history if h["step"] > res.best_step)
