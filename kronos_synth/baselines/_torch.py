"""Shared machinery of the PyTorch baselines: scaler, seeding, batches, weights on disk.

A torch baseline builds its networks in `_build()` (from `self.options` and `self.window`),
trains them in `_train(x, gen, progress)` on min–max-scaled windows, and generates scaled windows
in `_generate(n, gen)`. Weights go to `model.safetensors`, the scaler to config.json.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from kronos_synth.baselines.base import Baseline, BaselineOptions, MinMaxScaler

WEIGHTS = "model.safetensors"


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` intra-op threads. Default 1: on a shared 2-core CPU, two threads fighting other
    processes made small recurrent nets 10× slower than one thread (measured)."""
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass(frozen=True)
class TorchOptions(BaselineOptions):
    """Options shared by every torch baseline (their own follow)."""

    threads: int = 1  # intra-op threads (`torch_threads`)

    def check(self) -> None:
        self._count("threads")


class TorchBaseline(Baseline):
    """A baseline built from torch networks; its `Options` subclass `TorchOptions`."""

    Options: ClassVar[type[BaselineOptions]] = TorchOptions
    scale_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    sample_batch: ClassVar[int] = 1000

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.scaler = MinMaxScaler(*self.scale_range)
        self.nets: nn.ModuleDict | None = None

    # -- to implement ----------------------------------------------------------------------------
    def _build(self) -> nn.ModuleDict:
        raise NotImplementedError

    def _train(self, x: torch.Tensor, gen: torch.Generator,
               progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        raise NotImplementedError

    @torch.no_grad()
    def _generate(self, n: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    # -- Baseline hooks --------------------------------------------------------------------------
    def _fit(self, z: np.ndarray, raw: np.ndarray, *, seed: int,
             progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        self.scaler.fit(z)
        x = torch.as_tensor(self.scaler.transform(z), dtype=torch.float32)
        with torch.random.fork_rng(devices=[]), torch_threads(self.options["threads"]):
            torch.manual_seed(seed)  # weight init and dropout (the only use of the global generator)
            self.nets = self._build()
            gen = torch.Generator().manual_seed(seed)
            self.nets.train()
            final, history = self._train(x, gen, progress)
            self.nets.eval()
        return final, history

    def _sample_z(self, n: int, seed: int) -> np.ndarray:
        assert self.nets is not None
        self.nets.eval()
        gen = torch.Generator().manual_seed(seed)
        with torch_threads(self.options["threads"]), torch.inference_mode():
            out = [self._generate(min(self.sample_batch, n - i), gen).double().numpy()
                   for i in range(0, n, self.sample_batch)]
        return self.scaler.inverse(np.concatenate(out))

    def _save_state(self, path: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        assert self.nets is not None
        save_file({k: v.detach().contiguous() for k, v in self.nets.state_dict().items()}, str(path / WEIGHTS))
        return {"scaler": {"lo": self.scaler.lo, "hi": self.scaler.hi,
                           "data_min": self.scaler.data_min, "data_max": self.scaler.data_max}}

    def _load_state(self, path: Path, config: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        self.scaler = MinMaxScaler(**config["scaler"])
        self.nets = self._build()
        self.nets.load_state_dict(load_file(str(path / WEIGHTS)))
        self.nets.eval()

    def n_parameters(self) -> int:
        return 0 if self.nets is None else sum(p.numel() for p in self.nets.parameters())


def batches(x: torch.Tensor, batch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless random mini-batches (without replacement within an epoch)."""
    n = len(x)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - min(batch, n) + 1, min(batch, n)):
            yield x[perm[i:i + batch]]


def progress_bar(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, leave=False, dynamic_ncols=True)
