"""The Ray engine: one generation run sharded over a pool of Ray actors.

Each actor (`ShardWorker`) loads the model and builds the context pool once, then generates whole
parts on request: part k = sequence ids [k·P, (k+1)·P), written by the worker itself (atomic
temp + rename) into the shared output folder. The driver owns the manifest: it hands out pending
parts one at a time (a fast worker simply takes more), adopts each finished part into the manifest,
and drives the progress bar. Because every draw is counter-based (rng.py), a part's bytes depend
only on (weights, data, settings, seed, part) — so the result equals the in-process run with the
same seed, whatever the worker count, and a rerun resumes with only the missing parts.

Faults: a worker whose process dies (killed, OOM, node lost) is replaced and its part re-queued;
a slot that dies `max_worker_failures` times in a row without finishing a part is retired. The
model and the K-lines travel through the object store, so remote nodes need neither the data file
nor network access to a model hub — only kronos-synth installed and the output folder on a shared filesystem.
"""

from __future__ import annotations

import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kronos_synth.data.synthetic import ParquetSequenceWriter
from kronos_synth.generate.config import GenerationConfig
from kronos_synth.generate.panel import build_generator
from kronos_synth.generate.ray_session import RayEngineError, ray_session, task_error
from kronos_synth.generate.summary import GenerationSummary, PartStats, summarize_run
from kronos_synth.model.pretrained import ModelPair
from kronos_synth.progress import show_progress


@dataclass
class RayConfig:
    """Where and how wide to run. `num_workers=None`: as many as the cluster's CPUs (or GPUs) hold."""

    address: str | None = None
    num_workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_worker_failures: int = 3


@dataclass
class PartReport:
    """What a worker tells the driver after writing one part."""

    part: int
    sequences: int
    seconds: float
    worker: int
    pid: int
    host: str


class ShardWorker:
    """A Ray actor: one Generator (model loaded once) and a shard writer that never touches the manifest."""

    def __init__(self, pair: ModelPair, klines: pd.DataFrame, config: GenerationConfig, *, source: str, out: str,
                 n: int, threads: int, slot: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.slot = slot
        self.gen = build_generator(pair, klines, config, source=source)
        self.writer = ParquetSequenceWriter(out, n=n, sequences_per_part=config.part_size,
                                            metadata=self.gen.writer_metadata(), shard=True)

    def info(self) -> dict[str, Any]:
        return {"run_key": self.writer.key, "metadata": self.gen.writer_metadata(),
                "part_size": self.writer.part_size, "dtype_note": self.gen.dtype_note,
                "device": str(self.gen.device), "pid": os.getpid(), "host": socket.gethostname()}

    def run_part(self, index: int) -> tuple[PartStats, PartReport]:
        t0 = time.perf_counter()
        start, stop = self.writer.part_range(index)
        stats = self.gen.write_part(self.writer, index)
        return stats, PartReport(index, stop - start, time.perf_counter() - t0, self.slot, os.getpid(),
                                 socket.gethostname())


def _workers_for(ray: Any, config: RayConfig) -> int:
    """Check the cluster can hold one worker; default the count to what it can hold."""
    have = ray.cluster_resources()
    cpus, gpus = float(have.get("CPU", 0)), float(have.get("GPU", 0))
    if config.gpus_per_worker > 0 and gpus < config.gpus_per_worker:
        raise RayEngineError(f"gpus_per_worker {config.gpus_per_worker:g}: the Ray cluster has {gpus:g} GPU(s) — "
                             "add GPU nodes or use 0 GPUs per worker")
    if cpus < config.cpus_per_worker:
        raise RayEngineError(f"the Ray cluster has {cpus:g} CPU(s), a worker needs {config.cpus_per_worker:g}")
    if config.num_workers is not None:
        if config.num_workers <= 0:
            raise RayEngineError(f"num_workers must be positive, got {config.num_workers}")
        return int(config.num_workers)
    fit = int(cpus // config.cpus_per_worker)
    if config.gpus_per_worker > 0:
        fit = min(fit, int(gpus // config.gpus_per_worker))
    return max(1, fit)


def generate_on_ray(
    pair: ModelPair,
    klines: pd.DataFrame,
    generation: GenerationConfig,
    *,
    out: str | os.PathLike,
    n: int,
    source: str = "",
    config: RayConfig | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda line: None,
    on_start: Callable[[], object] | None = None,
    on_part: Callable[[PartReport], object] | None = None,
) -> GenerationSummary:
    """Generate n sequences into `out` on Ray workers; same bytes as `Generator(...).write(out, n)`.

    `generation` is the run's settings, applied on every worker (its device is the workers'). `on_start` runs once the output folder is accepted (notes printed then
    keep bad input one line); `on_part` runs on the driver after each part is in the manifest.
    """
    from tqdm.auto import tqdm

    config = config or RayConfig()
    if config.gpus_per_worker < 0 or config.cpus_per_worker <= 0:
        raise RayEngineError("gpus_per_worker must be ≥ 0 and cpus_per_worker > 0")
    # Workers run in their own working directory (and maybe on other machines): send an absolute path.
    out = str(Path(out).resolve())
    with ray_session(config.address) as ray:
        n_workers = _workers_for(ray, config)
        actor = ray.remote(ShardWorker)
        # The model and the K-lines go to the object store once; every worker (and replacement) reads them.
        shared = (ray.put(pair), ray.put(klines))
        threads = max(1, int(config.cpus_per_worker))

        def spawn(slot: int) -> Any:
            return actor.options(num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker).remote(
                *shared, generation, source=source, out=out, n=n, threads=threads, slot=slot)

        slots: list[Any] = [spawn(i) for i in range(n_workers)]
        try:
            return _drive(ray, slots, spawn, out=out, n=n, config=config, progress=progress, log=log,
                          on_start=on_start, on_part=on_part, tqdm=tqdm)
        finally:
            for a in slots:
                if a is not None:
                    ray.kill(a)


def _drive(ray: Any, slots: list[Any], spawn: Callable[[int], Any], *, out: str, n: int, config: RayConfig,
           progress: bool | None, log: Callable[[str], None], on_start: Callable[[], object] | None,
           on_part: Callable[[PartReport], object] | None, tqdm: Any) -> GenerationSummary:
    try:
        infos = ray.get([a.info.remote() for a in slots])
    except ray.exceptions.RayTaskError as e:
        raise task_error(e) from None
    except ray.exceptions.RayActorError as e:
        raise RayEngineError(f"a Ray worker failed to start: {_last_line(e)}") from None
    if len({i["run_key"] for i in infos}) > 1:
        raise RayEngineError("Ray workers resolved different settings (e.g. dtype auto on mixed hardware) — "
                             "set dtype to fp32 or bf16")
    first = infos[0]
    writer = ParquetSequenceWriter(out, n=n, sequences_per_part=first["part_size"], metadata=first["metadata"])
    pending = deque(writer.pending_parts())
    if on_start is not None:
        on_start()
    # Fewer parts left than workers: let the spare ones go now.
    for i in range(len(pending), len(slots)):
        ray.kill(slots[i])
        slots[i] = None
    used = sum(a is not None for a in slots)
    hosts = sorted({i["host"] for i in infos[:used]})
    log(f"Ray: {used} worker(s) on {len(hosts)} node(s), device {first['device']}; {first['dtype_note']}")
    todo = sum(writer.part_range(k)[1] - writer.part_range(k)[0] for k in pending)
    parts_written = len(pending)
    stats: list[PartStats] = []
    inflight: dict[Any, tuple[int, int]] = {}
    idle = [i for i, a in enumerate(slots) if a is not None]
    failures = [0] * len(slots)
    restarts = 0
    last_error = ""
    t0 = time.perf_counter()
    bar = tqdm(total=todo, unit="seq", desc="generate (ray)", disable=not show_progress(progress), smoothing=0.1)
    try:
        while pending or inflight:
            while pending and idle:
                slot = idle.pop(0)
                k = pending.popleft()
                inflight[slots[slot].run_part.remote(k)] = (slot, k)
            if not inflight:
                raise RayEngineError(
                    f"every Ray worker failed {config.max_worker_failures} times in a row ({last_error}); "
                    f"{writer.n_parts - len(pending)} of {writer.n_parts} parts are written — rerun the same "
                    "command to resume")
            ready, _ = ray.wait(list(inflight), num_returns=1)
            slot, k = inflight.pop(ready[0])
            try:
                part_stats, report = ray.get(ready[0])
            except ray.exceptions.RayActorError as e:
                # The worker process died mid-part: the part never got renamed into place, so redo it.
                last_error = _last_line(e)
                pending.appendleft(k)
                failures[slot] += 1
                ray.kill(slots[slot])
                if failures[slot] >= config.max_worker_failures:
                    slots[slot] = None
                else:
                    slots[slot] = spawn(slot)
                    restarts += 1
                    idle.append(slot)
                continue
            except ray.exceptions.RayTaskError as e:
                raise task_error(e) from None
            failures[slot] = 0
            writer.record_part(k)
            stats.append(part_stats)
            bar.update(report.sequences)
            idle.append(slot)
            if on_part is not None:
                on_part(report)
    finally:
        bar.close()
    _remove_stale_temps(Path(out))
    summary = summarize_run(n=n, horizon=int(first["metadata"]["horizon"]), generated=todo,
                         wall_time_s=time.perf_counter() - t0, parts_written=parts_written,
                         parts_skipped=writer.n_parts - parts_written, stats=stats,
                         repaired=bool(first["metadata"]["repair"]), out=out, engine="ray", workers=used,
                         worker_restarts=restarts,
                         condition=(first["metadata"].get("condition") or {}).get("description", ""))
    return summary.with_condition_totals(out) if summary.condition else summary


def _last_line(e: BaseException) -> str:
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    return lines[-1] if lines else type(e).__name__


def _remove_stale_temps(out: Path) -> None:
    """Temp files of parts whose writer was killed before the rename; the run is complete, so none is live."""
    for tmp in out.glob(".part-*.parquet.tmp-*"):
        tmp.unlink(missing_ok=True)


__all__ = ["PartReport", "RayConfig", "ShardWorker", "generate_on_ray"]
