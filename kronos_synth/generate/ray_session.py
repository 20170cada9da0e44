"""Ray plumbing shared by every Ray-engine run: import with a one-line install hint, a session
(connect or start a local cluster), and `run_tasks` — independent stage callables run as Ray tasks.

`run_tasks` is the reusable part: generation has its own actor pool (workers keep a model loaded
across parts, see `generate/ray_engine.py`), while evaluation sweeps (benchmarks on the Ray engine) are lists
of independent stages — one (metric, dataset, seed) each — that need nothing but this:

    >>> from functools import partial                                           # doctest: +SKIP
    >>> stages = [partial(score, real, synth, seed=s) for s in range(5)]        # doctest: +SKIP
    >>> results = run_tasks(stages, num_cpus=1)   # same order as `stages`      # doctest: +SKIP

Ray is an optional extra (`pip install "kronos-synth[ray]"`); this module imports it lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

from kronos_synth.data.errors import InputError
from kronos_synth.progress import show_progress

T = TypeVar("T")
INSTALL_HINT = 'pip install "kronos-synth[ray]"'


class RayEngineError(InputError):
    """Ray is missing, the cluster cannot be reached or cannot hold the requested workers."""


def require_ray() -> ModuleType:
    """The `ray` module, or a one-line `RayEngineError` telling how to install it."""
    try:
        import ray
    except ImportError as e:
        raise RayEngineError(f"the Ray engine needs Ray, which is not installed — {INSTALL_HINT}") from e
    return ray


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Use the Ray runtime already initialised in this process, else connect to `address`
    ("auto", "HOST:6379", "ray://HOST:10001"), else start a local cluster for the duration of the block."""
    ray = require_ray()
    # Ray's own driver-side warnings (e.g. the auth-token notice) would break one-line CLI output;
    # errors still surface as exceptions.
    if ray.is_initialized():
        yield ray
        return
    try:
        if address:
            ray.init(address=address, logging_level=logging.ERROR)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RayEngineError(f"could not start or reach {where}: {first} — start one with `ray start --head` "
                             "and pass address=HOST:6379, or leave address unset for a local cluster", param="address") from e
    try:
        yield ray
    finally:
        ray.shutdown()


def task_error(e: BaseException) -> BaseException:
    """Bad input raised inside a task, unwrapped (so the CLI prints it as one line); any other error
    keeps Ray's wrapper, which carries the remote traceback and is still an instance of the cause's type."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, InputError) else e


def _call(stage: Callable[[], Any]) -> Any:
    return stage()


def run_tasks(
    stages: Sequence[Callable[[], T]],
    *,
    address: str | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    max_retries: int = 3,
    progress: bool | None = None,
    desc: str = "tasks",
) -> list[T]:
    """Run independent zero-argument callables as Ray tasks; results in the order of `stages`.

    Each stage reserves `num_cpus` / `num_gpus`; a stage whose worker process dies is rerun up to
    `max_retries` times (stages must be idempotent); the first stage that raises cancels the rest and
    its exception is re-raised (bad input unwrapped). Callables and their results travel by pickle (cloudpickle),
    so closures and `functools.partial` work; large inputs are best passed as `ray.put` references.
    """
    from tqdm.auto import tqdm

    with ray_session(address) as ray:
        remote = ray.remote(_call).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)
        refs = [remote.remote(stage) for stage in stages]
        order = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        remaining = list(refs)
        bar = tqdm(total=len(refs), unit="task", desc=desc, disable=not show_progress(progress))
        try:
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1)
                try:
                    results[order[ready[0]]] = ray.get(ready[0])
                except ray.exceptions.RayTaskError as e:
                    raise task_error(e) from None
                bar.update(1)
        finally:
            bar.close()
            for ref in remaining:
                ray.cancel(ref, force=True)
        return results


__all__ = ["INSTALL_HINT", "RayEngineError", "ray_session", "require_ray", "run_tasks", "task_error"]
