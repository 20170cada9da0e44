"""The training loop both trainers share: AdamW + OneCycle, gradient clipping, periodic
validation with early stopping, and exact resume from `checkpoint-last/`.

Determinism: the batch of global step s is a pure function of (seed, s) — epoch e uses the
permutation drawn by `np.random.default_rng([seed, e])` — and the only other randomness
(dropout via torch's global RNG, s1 sampling via one `torch.Generator`) is saved with the
optimizer and scheduler state. So a run stopped at any saved step and rerun ends with the
same weights as an uninterrupted run. Validation draws from its own generator, reseeded at
every evaluation, so it never perturbs training.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from kronos_synth.data.errors import InputError
from kronos_synth.progress import show_progress
from kronos_synth.train.windows import WindowSet

LAST = "checkpoint-last"
STATE_FILE = "trainer_state.pt"


@dataclass
class LoopConfig:
    """Optimisation settings (defaults follow the reference fine-tuning scripts)."""

    steps: int | None = None  # total optimizer steps; or
    epochs: float | None = None  # passes over the train windows (one of the two)
    batch_size: int = 32
    lr: float = 2e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 2.0
    pct_start: float = 0.03  # OneCycle warm-up share
    div_factor: float = 10.0  # OneCycle initial lr = lr / div_factor
    eval_every: int = 100
    patience: int = 5  # evaluations without a new best before stopping; 0 = never stop early
    seed: int = 0
    #: (parameter-name prefix, lr multiplier) pairs: those parameters train at lr × multiplier
    lr_scale: tuple[tuple[str, float], ...] = ()

    def total_steps(self, n_train: int) -> int:
        if (self.steps is None) == (self.epochs is None):
            raise InputError("give exactly one of --steps and --epochs")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be positive, got {self.batch_size}")
        if self.steps is not None:
            if self.steps < 1:
                raise InputError(f"--steps must be positive, got {self.steps}")
            return int(self.steps)
        if self.epochs <= 0:
            raise InputError(f"--epochs must be positive, got {self.epochs}")
        return max(1, math.ceil(self.epochs * steps_per_epoch(n_train, self.batch_size)))


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return max(1, n_train // batch_size)


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


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> np.ndarray:
    """Train windows of global step `step` (pure function of its arguments)."""
    spe = steps_per_epoch(n, batch_size)
    epoch, k = divmod(step, spe)
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return perm[k * batch_size:(k + 1) * batch_size]


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
    if (last / STATE_FILE).is_file():
        state = torch.load(last / STATE_FILE, map_location="cpu", weights_only=False)
        if state["fingerprint"] != run_fingerprint:
            raise InputError(f"{out}: holds a run with different data or settings (checkpoint-last) — "
                             "use a new --out folder, or delete it to start over")
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
        state = {"fingerprint": run_fingerprint, "model": model.state_dict(), "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "torch_rng": torch.get_rng_state(), "generator": gen.get_state(),
                 "result": asdict(res), "window_losses": list(window_losses), "complete": complete}
        tmp = last / (STATE_FILE + ".tmp")
        torch.save(state, tmp)
        tmp.replace(last / STATE_FILE)  # atomic: a kill never leaves a half state

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


def _since_best(res: LoopResult) -> Iterator[dict]:
    """Evaluations after the best one."""
    return (h for h in res.history if h["step"] > res.best_step)
