"""Training windows from a built corpus (`kronos_synth.data.corpus`): memory-mapped, balanced, seeded.

A corpus split holds one window set per bar size (windows differ in length: each frequency uses
its preset's lookback + horizon + 1). A training batch comes from one bar size. The draw of step s
is a pure function of (seed, s), so a resumed run sees the same batches:
1. a bar size, uniformly among those present;
2. B windows: first a group (asset class: crypto, forex, indices, …) uniformly among the groups with
   windows at that bar size, then an instrument uniformly inside the group, then a window uniformly
   inside the instrument — so 136 crypto pairs weigh as much as 3 commodities, not 45× more.
Validation takes evenly spaced windows, at most `max_windows` per bar size, and weighs every bar size
equally in its mean.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kronos_synth.data.corpus import read_corpus_manifest
from kronos_synth.data.errors import InputError
from kronos_synth.data.frequency import get_preset
from kronos_synth.data.regime import segment_first
from kronos_synth.model.normalize import time_features
from kronos_synth.model.representation import Representation, get_representation
from kronos_synth.train.windows import TrainingData, WindowSet


@dataclass
class TimedWindowSet(WindowSet):
    """A WindowSet over memory-mapped rows whose time features are computed per batch from int64 ns stamps."""

    def batch(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.asarray(index)
        idx = self.starts[index][:, None] + np.arange(self.length)[None, :]
        stamps = time_features(np.asarray(self.stamps[idx]).astype("datetime64[ns]"))
        return self.representation.encode(np.asarray(self.rows[idx]), self.lookback), self._stamps(index, stamps)


@dataclass
class MixtureWindows:
    """Window sets of several bar sizes with per-window sampling probabilities (module doc)."""

    parts: dict[str, WindowSet]  # freq → windows
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # freq → (N,) probabilities, sum 1

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts.values())

    @property
    def representation(self) -> Representation:
        return next(iter(self.parts.values())).representation

    def groups(self) -> Iterator[WindowSet]:
        return iter(self.parts.values())

    def draw(self, seed: int, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, step, 7])
        freqs = sorted(self.parts)
        freq = freqs[int(rng.integers(len(freqs)))]
        cum = np.cumsum(self.weights[freq])
        index = np.minimum(np.searchsorted(cum, rng.random(batch_size) * cum[-1], side="right"), len(cum) - 1)
        return self.parts[freq].batch(index)


def balanced_weights(instrument: np.ndarray, group_of: dict[int, str]) -> np.ndarray:
    """Per-window probabilities: groups equal, instruments equal inside a group, windows equal inside one."""
    ids, inverse, counts = np.unique(instrument, return_inverse=True, return_counts=True)
    groups = np.array([group_of[int(i)] for i in ids])
    per_group = {g: int((groups == g).sum()) for g in set(groups.tolist())}
    inst_weight = np.array([1.0 / len(per_group) / per_group[g] for g in groups])  # (I,)
    w = inst_weight[inverse] / counts[inverse]
    return w / w.sum()


def _open_split(folder: Path, manifest: dict[str, Any], split: str, rep: Representation,
                freqs: list[str] | None) -> dict[str, tuple[TimedWindowSet, np.ndarray]]:
    out = {}
    for freq in sorted(manifest["arrays"].get(split, {})):
        if freqs is not None and freq not in freqs:
            continue
        d = folder / split / freq
        starts = np.load(d / "starts.npy")
        if len(starts) == 0:
            continue
        preset = get_preset(freq)
        # every window start of a segment is listed (stride 1), so a run of consecutive starts is a segment
        ws = TimedWindowSet(np.load(d / "rows.npy", mmap_mode="r"), np.load(d / "timestamps.npy", mmap_mode="r"),
                            starts, preset.lookback + preset.horizon + 1, preset.lookback, rep,
                            first=segment_first(starts))
        out[freq] = (ws, np.load(d / "instrument.npy"))
    return out


def _evenly(ws: WindowSet, n: int) -> None:
    if len(ws) > n:
        keep = np.unique(np.linspace(0, len(ws) - 1, n).round().astype(np.int64))
        ws.keep(keep)


@dataclass
class CorpusTrainingData(TrainingData):
    """TrainingData over a corpus: train / val (held-out periods) / holdout (held-out instruments)."""

    holdout: MixtureWindows | None = None
    folder: str = ""
    freqs: tuple[str, ...] = ()
    manifest_sha256: str = ""

    def sidecar_window(self) -> dict:
        return {"freqs": list(self.freqs),
                "windows": {f: [get_preset(f).lookback, get_preset(f).horizon] for f in self.freqs}}

    def describe(self) -> dict:
        sizes = lambda m: {f: len(p) for f, p in m.parts.items()} if m is not None else {}  # noqa: E731
        return {"corpus": self.folder, "manifest_sha256": self.manifest_sha256, "freqs": list(self.freqs),
                "representation": self.representation, "representation_config": self.train.representation.to_dict(),
                "train_windows": sizes(self.train), "val_windows": sizes(self.val),
                "holdout_windows": sizes(self.holdout), "sampling": "bar size uniform; group, instrument, window "
                "uniform within (kronos_synth.train.corpus)"}


def load_corpus(folder: str | Path, *, representation: str | dict | Representation = "geometry",
                freqs: list[str] | None = None, max_val_windows: int = 256) -> CorpusTrainingData:
    """Open a built corpus for training (memory-mapped): balanced train mixture plus capped validation sets."""
    import hashlib

    folder = Path(folder)
    manifest = read_corpus_manifest(folder)
    rep = get_representation(representation)
    group_of = {int(v["id"]): v["group"] for v in manifest["instruments"].values()}
    train_parts = _open_split(folder, manifest, "train", rep, freqs)
    if not train_parts:
        raise InputError(f"{folder}: the corpus has no train windows" + (f" at {', '.join(freqs)}" if freqs else ""))
    train = MixtureWindows({f: ws for f, (ws, _) in train_parts.items()},
                           {f: balanced_weights(inst, group_of) for f, (_, inst) in train_parts.items()})

    def capped(split: str) -> MixtureWindows | None:
        parts = {f: ws for f, (ws, _) in _open_split(folder, manifest, split, rep, list(train.parts)).items()}
        for ws in parts.values():
            _evenly(ws, max_val_windows)
        return MixtureWindows(parts) if parts else None

    val = capped("val")
    if val is None:
        raise InputError(f"{folder}: the corpus has no validation windows")
    used = tuple(sorted(train.parts, key=lambda f: get_preset(f).timedelta))
    longest = max(used, key=lambda f: get_preset(f).window)
    sha = hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    return CorpusTrainingData(train, val, [], "mixed", get_preset(longest).lookback, get_preset(longest).horizon,
                              float(manifest["settings"]["val_fraction"]), rep.name, holdout=capped("holdout"),
                              folder=str(folder), freqs=used, manifest_sha256=sha)
