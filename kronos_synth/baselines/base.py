"""The baseline interface: fit on raw windows, sample raw windows, save/load a folder.

Every baseline models windows in a scale-free form (`ScaleFreeTransform`): prices relative to
the window's first close (log), volume as log1p, amount as the bar's VWAP relative to its close
(log). Outputs are mapped back by anchoring at a real start price drawn from the training
windows. After fitting, a collapse check compares the per-feature spread of generated windows
with the real ones (docs/baselines.md).
"""

from __future__ import annotations

import importlib
import json
import math
import numbers
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from kronos_synth.data.errors import InputError

FEATURES = ("open", "high", "low", "close", "volume", "amount")
CONFIG = "config.json"
COLLAPSE_THRESHOLD = 0.5
#: Recorded in config.json; a folder saved with another text was fitted in another representation.
TRANSFORM = ("scale-free v2: log(OHLC / first close of window), log1p(volume), "
             "log(amount / (volume * close)); inverse anchored at a training window's first close (anchors.npy)")


class BaselineError(InputError):
    """Bad baseline name, option, folder or training windows."""


class CollapseWarning(UserWarning):
    """Generated windows vary much less than the real ones (mode collapse)."""


# ----------------------------------------------------------------------------------------------
# scale-free transform


def log_vwap_over_close(volume: np.ndarray, amount: np.ndarray, close: np.ndarray) -> np.ndarray:
    """log(amount / (volume · close)): the bar's VWAP relative to its close; 0 (VWAP = close) where
    the ratio is undefined or not positive (volume or amount 0)."""
    v, a, c = (np.asarray(x, dtype=np.float64) for x in (volume, amount, close))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = a / (v * c)
        ok = np.isfinite(ratio) & (ratio > 0)
        return np.where(ok, np.log(np.where(ok, ratio, 1.0)), 0.0)


@dataclass
class ScaleFreeTransform:
    """Raw OHLCVA windows ⇄ scale-free windows.

    Forward: OHLC → log(price / first close of the window) (the first close is 0 by construction);
    volume → log1p; amount → log(amount / (volume · close)), the VWAP relative to the bar's close,
    0 where volume or amount is 0. Amount is carried relative to price because it is a price times
    a volume: log1p(amount) of a window re-anchored at another price level would put the VWAP
    outside the bar (docs/baselines.md).
    Inverse: price = anchor · exp(z − z_close[0]) (so the first close is exactly the anchor),
    volume = expm1(z), amount = volume · close · exp(z) (0 when volume is 0), with `anchor` a real
    start price (first close of a training window). Volume is NOT clipped at 0: a model that
    produces z < 0 yields a negative volume (and amount), which the validity metric reports.
    """

    anchors: np.ndarray = field(default_factory=lambda: np.empty(0))

    def fit(self, windows: np.ndarray) -> ScaleFreeTransform:
        self.anchors = np.asarray(windows[:, 0, 3], dtype=np.float64).copy()
        return self

    @staticmethod
    def forward(windows: np.ndarray) -> np.ndarray:
        w = np.asarray(windows, dtype=np.float64)
        out = np.empty_like(w)
        out[..., :4] = np.log(w[..., :4] / w[:, :1, 3:4])
        out[..., 4] = np.log1p(w[..., 4])
        out[..., 5] = log_vwap_over_close(w[..., 4], w[..., 5], w[..., 3])
        return out

    def draw_anchors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if len(self.anchors) == 0:
            raise RuntimeError("transform is not fitted (no anchor prices)")
        return self.anchors[rng.integers(0, len(self.anchors), size=n)]

    @staticmethod
    def inverse(z: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        out = np.empty_like(z)
        # Re-anchor on the generated first close: in this representation the first close is 1 by
        # definition, so a learned model's small error there would only shift the price level.
        # A common shift of all four prices leaves the bar geometry untouched.
        rel = z[..., :4] - z[:, :1, 3:4]
        out[..., :4] = np.asarray(anchors, dtype=np.float64)[:, None, None] * np.exp(rel)
        out[..., 4] = np.expm1(z[..., 4])
        out[..., 5] = out[..., 4] * out[..., 3] * np.exp(z[..., 5])
        return out


@dataclass
class MinMaxScaler:
    """Per-feature min–max scaling to [lo, hi] of scale-free windows, fitted on training windows."""

    lo: float = 0.0
    hi: float = 1.0
    data_min: list[float] = field(default_factory=list)
    data_max: list[float] = field(default_factory=list)

    def fit(self, x: np.ndarray) -> MinMaxScaler:
        self.data_min = x.reshape(-1, x.shape[-1]).min(0).tolist()
        self.data_max = x.reshape(-1, x.shape[-1]).max(0).tolist()
        return self

    def _span(self) -> tuple[np.ndarray, np.ndarray]:
        mn, mx = np.asarray(self.data_min), np.asarray(self.data_max)
        # A constant feature (e.g. a dataset without volume) maps to lo and back exactly.
        return mn, np.where(mx > mn, mx - mn, 1.0)

    def transform(self, x: np.ndarray) -> np.ndarray:
        mn, span = self._span()
        return (x - mn) / span * (self.hi - self.lo) + self.lo

    def inverse(self, y: np.ndarray) -> np.ndarray:
        mn, span = self._span()
        return (np.asarray(y, dtype=np.float64) - self.lo) / (self.hi - self.lo) * span + mn


# ----------------------------------------------------------------------------------------------
# reports


@dataclass
class CollapseCheck:
    """Per-feature std across generated windows divided by the same on real windows (scale-free form).

    The std is taken across windows at each step and averaged over steps; a ratio below 0.5 means
    the generator covers much less variety than the data (collapse).
    """

    ratios: dict[str, float]
    threshold: float = COLLAPSE_THRESHOLD
    n_generated: int = 0

    @property
    def collapsed(self) -> list[str]:
        return [f for f, r in self.ratios.items() if np.isfinite(r) and r < self.threshold]

    @property
    def ok(self) -> bool:
        return not self.collapsed

    def to_dict(self) -> dict[str, Any]:
        return {"ratios": self.ratios, "threshold": self.threshold, "n_generated": self.n_generated,
                "collapsed": self.collapsed, "ok": self.ok}


def collapse_check(real: np.ndarray, generated: np.ndarray, threshold: float = COLLAPSE_THRESHOLD) -> CollapseCheck:
    """Compare per-feature spread of generated vs real raw windows (both (N, T, 6))."""
    zr, zg = ScaleFreeTransform.forward(real), ScaleFreeTransform.forward(generated)
    sr, sg = zr.std(axis=0).mean(axis=0), zg.std(axis=0).mean(axis=0)
    ratios = {f: (float(g / r) if r > 0 else float("nan")) for f, r, g in zip(FEATURES, sr, sg, strict=True)}
    return CollapseCheck(ratios=ratios, threshold=threshold, n_generated=len(generated))


@dataclass
class FitReport:
    """What a fit did: timings, size, final losses (and their history), collapse check."""

    name: str
    seed: int
    wall_time_s: float
    n_parameters: int
    n_windows: int
    window: int
    final_losses: dict[str, float]
    collapse: CollapseCheck | None = None
    history: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["collapse"] = self.collapse.to_dict() if self.collapse else None
        return d


# ----------------------------------------------------------------------------------------------
# options


def _frozen(value: Any) -> Any:
    """Lists (JSON, TOML, the CLI's -o values) as tuples, nested, so an options object stays immutable."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list | tuple) else value


def _plain(value: Any) -> Any:
    """Tuples back as lists: the JSON-like form of `Baseline.options` (config.json, dataset metadata)."""
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def is_whole(x: Any) -> bool:
    """An int (not a bool) or a float without a fraction (JSON numbers such as 5.0)."""
    return (isinstance(x, numbers.Integral) and not isinstance(x, bool)) or (isinstance(x, float) and x.is_integer())


@dataclass(frozen=True)
class BaselineOptions:
    """The fit settings of one baseline: each a field with its CPU-sized default, written once.

    A baseline declares its subclass as `Options`; `parse` builds it from `-o key=value` pairs, keyword
    arguments, a protocol table or a saved config.json, refusing unknown keys. Values are kept as given
    (lists become tuples); `__post_init__` refuses values no fit can use, naming the option
    (`BaselineError.param`). `to_dict` is the JSON-like form a fitted model records (`Baseline.options`).
    """

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _frozen(getattr(self, f.name)))
        self.check()

    def check(self) -> None:
        """Raise `BaselineError` on values no fit can use (subclasses; the base checks nothing)."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of one option."""
        for f in fields(cls):
            if f.name == name:
                return _plain(f.default)
        raise KeyError(f"{cls.__name__} has no option {name!r}")

    @classmethod
    def parse(cls, options: Mapping[str, Any], *, baseline: str) -> BaselineOptions:
        """The options of `baseline` from a mapping; an unknown key or a bad value → one-line BaselineError."""
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            raise BaselineError(f"{baseline}: unknown option '{unknown[0]}' (known: {', '.join(sorted(cls.names()))})",
                                param="options")
        try:
            return cls(**options)
        except BaselineError as e:
            raise BaselineError(f"{baseline}: {e}", param=e.param) from None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    # -- checks for subclasses -----------------------------------------------------------------
    def _count(self, *names: str, minimum: int = 1, unset: bool = False) -> None:
        """Each of `names` a whole number ≥ `minimum` (or None when `unset`)."""
        for name in names:
            value = getattr(self, name)
            if value is None and unset:
                continue
            if not is_whole(value) or value < minimum:
                what = "a positive whole number" if minimum == 1 else f"a whole number ≥ {minimum}"
                raise BaselineError(f"{name} must be {what}{' (or null for the default)' if unset else ''}, "
                                    f"got {value!r}", param=name)

    def _number(self, *names: str, above: float | None = None, at_least: float | None = None,
                below: float | None = None) -> None:
        """Each of `names` a finite number > `above` / ≥ `at_least` / < `below` (those given)."""
        for name in names:
            value = getattr(self, name)
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and \
                (above is None or value > above) and (at_least is None or value >= at_least) and \
                (below is None or value < below)
            if not ok:
                bounds = [f"{sign} {bound:g}" for sign, bound in ((">", above), ("≥", at_least), ("<", below))
                          if bound is not None]
                raise BaselineError(f"{name} must be a number {' and '.join(bounds)}, got {value!r}", param=name)


# ----------------------------------------------------------------------------------------------
# base class


class Baseline:
    """Shared machinery; subclasses implement `_fit`, `_sample_z`, `_state` / `_load_state`.

    Subclasses declare their options (with CPU-sized defaults) as a `BaselineOptions` dataclass, `Options`;
    unknown options raise `BaselineError`. `config` is that dataclass, `options` its JSON-like dict.
    `_sample_z(n, rng_seed)` returns scale-free windows (n, T, 6).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type[BaselineOptions]] = BaselineOptions
    collapse_samples: ClassVar[int] = 1000

    def __init__(self, **options: Any) -> None:
        self.config = self.Options.parse(options, baseline=self.name)
        self.options: dict[str, Any] = self.config.to_dict()
        self.transform = ScaleFreeTransform()
        self.window: int = 0
        self.report: FitReport | None = None

    # -- to implement -------------------------------------------------------------------------
    def _fit(self, z: np.ndarray, raw: np.ndarray, *, seed: int,
             progress: bool) -> tuple[dict[str, float], dict[str, list[float]]]:
        """Fit on scale-free windows `z` (raw windows alongside); return final losses and their history."""
        raise NotImplementedError

    def _sample_z(self, n: int, seed: int) -> np.ndarray:
        raise NotImplementedError

    def _save_state(self, path: Path) -> dict[str, Any]:
        """Write weights into `path`; return extra JSON-able config (e.g. the scaler)."""
        raise NotImplementedError

    def _load_state(self, path: Path, config: dict[str, Any]) -> None:
        raise NotImplementedError

    def n_parameters(self) -> int:
        return 0

    # -- public -------------------------------------------------------------------------------
    def fit(self, windows: np.ndarray, *, seed: int = 0, progress: bool = False) -> FitReport:
        """Fit on raw training windows (N, T, 6); runs the collapse check and returns a FitReport."""
        windows = validate_windows(windows)
        self.window = windows.shape[1]
        self.transform.fit(windows)
        t0 = time.perf_counter()
        final, history = self._fit(self.transform.forward(windows), windows, seed=seed, progress=progress)
        wall = time.perf_counter() - t0
        n_check = min(len(windows), self.collapse_samples)
        check = collapse_check(windows, self.sample(n_check, seed=seed + 7919))
        if not check.ok:
            warnings.warn(
                f"{self.name}: generated windows collapse — std ratio vs real below {check.threshold} for "
                + ", ".join(f"{f} ({check.ratios[f]:.2f})" for f in check.collapsed),
                CollapseWarning, stacklevel=2)
        self.report = FitReport(name=self.name, seed=int(seed), wall_time_s=round(wall, 3),
                                n_parameters=int(self.n_parameters()), n_windows=len(windows),
                                window=self.window, final_losses={k: float(v) for k, v in final.items()},
                                collapse=check, history=history)
        return self.report

    def sample(self, n: int, *, seed: int = 0, anchors: np.ndarray | None = None) -> np.ndarray:
        """n raw windows (n, T, 6); the same seed gives the same bytes.

        `anchors` (n,) are the first closes of the windows; by default they are drawn (seeded)
        from the training windows' first closes.
        """
        if self.window <= 0:
            raise BaselineError(f"{self.name}: sample() before fit() — fit or load a model first")
        if n <= 0:
            raise BaselineError(f"n must be positive, got {n}")
        z = self._sample_z(int(n), int(seed))
        if anchors is None:
            anchors = self.transform.draw_anchors(int(n), np.random.default_rng([int(seed), 1]))
        elif np.shape(anchors) != (n,) or not (np.asarray(anchors) > 0).all():
            raise BaselineError(f"anchors must be {n} positive prices")
        return self.transform.inverse(z, anchors)

    def save(self, path: str | os.PathLike) -> None:
        """Write the folder: config.json (settings, scaler, report) and the weights."""
        if self.window <= 0:
            raise BaselineError(f"{self.name}: nothing to save — fit first")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        extra = self._save_state(path)
        np.save(path / "anchors.npy", self.transform.anchors)
        config = {
            "name": self.name,
            "options": self.options,
            "window": self.window,
            "features": list(FEATURES),
            "transform": TRANSFORM,
            **extra,
            **(self.report.to_dict() if self.report else {}),
        }
        tmp = path / f".{CONFIG}.tmp"
        tmp.write_text(json.dumps(config, indent=2, default=_json_default))
        os.replace(tmp, path / CONFIG)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Baseline:
        """Load a folder written by `save` (works on the base class: dispatches on the saved name)."""
        path = Path(path)
        cfg_path = path / CONFIG
        kronos = (path / "kronos_synth.json").is_file() or ((path / "model.safetensors").is_file()
                                                             and _is_kronos(cfg_path))
        if kronos:
            raise BaselineError(f"{path}: is a Kronos checkpoint, not a baseline folder — pass a folder written by "
                                "`kronos-synth baseline fit` (Kronos checkpoints generate with `kronos-synth "
                                "generate`)")
        if not cfg_path.is_file():
            raise BaselineError(f"{path}: no {CONFIG} — pass a folder written by `kronos-synth baseline fit`")
        try:
            config = json.loads(cfg_path.read_text())
        except (UnicodeDecodeError, ValueError) as e:
            raise BaselineError(f"{cfg_path}: unreadable ({e})") from None
        if not isinstance(config, dict):
            raise BaselineError(f"{cfg_path}: not a JSON object — pass a folder written by `kronos-synth baseline fit`")
        if config.get("transform") != TRANSFORM:
            # Before v2 amount was log1p(amount): the stored state means something else now.
            raise BaselineError(f"{path}: saved with an older scale-free transform (amount as log1p) — "
                                "refit it with `kronos-synth baseline fit`")
        model = get_baseline(config.get("name", "?"), **config.get("options", {}))
        if cls is not Baseline and not isinstance(model, cls):
            raise BaselineError(f"{path}: holds a '{model.name}' model, not '{cls.name}'")
        try:
            model.window = int(config["window"])
            model.transform.anchors = load_npy(path / "anchors.npy")
            model._load_state(path, config)
        except InputError:
            raise
        except FileNotFoundError as e:
            name = Path(e.filename).name if e.filename else str(e)
            raise BaselineError(f"{path}: {name} is missing — the folder is incomplete; refit it with "
                                "`kronos-synth baseline fit`") from None
        except KeyError as e:
            raise BaselineError(f"{path}: the saved state lacks {e} — refit it with `kronos-synth baseline fit`") \
                from None
        except Exception as e:  # wrong shapes, corrupt weights, …: one line, never a traceback
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise BaselineError(f"{path}: cannot load the saved model ({first}) — refit it with "
                                "`kronos-synth baseline fit`") from None
        if "wall_time_s" in config:
            collapse = config.get("collapse")
            model.report = FitReport(
                name=model.name, seed=config["seed"], wall_time_s=config["wall_time_s"],
                n_parameters=config["n_parameters"], n_windows=config["n_windows"], window=model.window,
                final_losses=config["final_losses"], history=config.get("history", {}),
                collapse=CollapseCheck(collapse["ratios"], collapse["threshold"], collapse["n_generated"])
                if collapse else None)
        return model


def _is_kronos(config_file: Path) -> bool:
    """config.json of a Kronos tokenizer or predictor (reference format), not of a baseline."""
    try:
        config = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(config, dict) and "name" not in config and "s1_bits" in config


def load_npy(file: Path) -> np.ndarray:
    """A saved .npy array, never unpickled (allow_pickle=False): object arrays are refused."""
    return _no_pickle(file, lambda: np.load(file, allow_pickle=False))


def load_npz(file: Path) -> dict[str, np.ndarray]:
    """Every array of a saved .npz archive, never unpickled (allow_pickle=False): object arrays are refused."""
    def read() -> dict[str, np.ndarray]:
        with np.load(file, allow_pickle=False) as d:
            return {k: d[k] for k in d.files}
    return _no_pickle(file, read)


def _no_pickle(file: Path, read: Any) -> Any:
    try:
        return read()
    except FileNotFoundError:
        raise BaselineError(f"{file.parent}: {file.name} is missing — the folder is incomplete; refit it with "
                            "`kronos-synth baseline fit`") from None
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise BaselineError(f"{file}: holds an object array, which loads only by unpickling — refused "
                                "(arrays load with allow_pickle=False); refit the baseline") from None
        raise BaselineError(f"{file}: not a readable NumPy file ({e})") from None
    except Exception as e:  # truncated archive (BadZipFile, EOFError), unreadable file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BaselineError(f"{file}: not a readable NumPy file ({first})") from None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def validate_windows(windows: np.ndarray) -> np.ndarray:
    """Check raw training windows: (N, T, 6), finite, positive prices, non-negative volume/amount."""
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 3 or w.shape[2] != len(FEATURES):
        raise BaselineError(f"training windows must have shape (N, T, {len(FEATURES)}) {FEATURES}, got {w.shape}")
    if w.shape[0] < 2 or w.shape[1] < 2:
        raise BaselineError(f"need at least 2 training windows of at least 2 bars, got {w.shape[:2]}")
    if not np.isfinite(w).all():
        raise BaselineError("training windows hold non-finite values — clean the data first")
    if (w[..., :4] <= 0).any():
        raise BaselineError("training windows hold non-positive prices — clean the data first")
    if (w[..., 4:] < 0).any():
        raise BaselineError("training windows hold negative volume or amount — clean the data first")
    return w


def windows_to_runs(windows: np.ndarray) -> list[np.ndarray]:
    """Recover the contiguous bar series behind consecutive overlapping windows.

    Windows cut with a stride s < T from one segment overlap: window i+1 starts s bars after
    window i. Consecutive windows whose overlap matches exactly are chained into one run; any
    other boundary (new segment or symbol) starts a new run. Series models (GARCH, bootstrap)
    fit on runs so overlapping windows do not count a bar many times.
    """
    w = validate_windows(windows)
    n, t, _ = w.shape
    runs: list[np.ndarray] = []
    current = [w[0]]
    for i in range(1, n):
        prev, nxt = w[i - 1], w[i]
        # stride candidates: positions in prev where next window's first bar appears
        hits = np.nonzero((prev == nxt[0]).all(axis=1))[0]
        stride = next((int(s) for s in hits if s > 0 and np.array_equal(prev[s:], nxt[: t - s])), None)
        if stride is None:
            runs.append(np.concatenate(current))
            current = [nxt]
        else:
            current.append(nxt[t - stride:])
    runs.append(np.concatenate(current))
    return runs


# ----------------------------------------------------------------------------------------------
# registry

#: name → (module, class): the one list of baselines (re-exported by `kronos_synth.baselines`). Its order
#: is the order of the CLI's choices (`kronos-synth baseline fit NAME`) and of the benchmark's generators
#: and report rows. Modules are imported on first use, so the torch models stay unloaded until needed.
REGISTRY: dict[str, tuple[str, str]] = {
    "timegan": ("kronos_synth.baselines.timegan", "TimeGANBaseline"),
    "timevae": ("kronos_synth.baselines.timevae", "TimeVAEBaseline"),
    "diffusion-ts": ("kronos_synth.baselines.diffusion_ts", "DiffusionTSBaseline"),
    "garch": ("kronos_synth.baselines.garch", "GarchBaseline"),
    "bootstrap": ("kronos_synth.baselines.bootstrap", "BootstrapBaseline"),
}
NAMES = tuple(REGISTRY)


def baseline_class(name: str) -> type[Baseline]:
    """The class registered under `name` (BaselineError for unknown names)."""
    key = name.lower().replace("_", "-")
    if key not in REGISTRY:
        raise BaselineError(f"unknown baseline '{name}' (choose from {', '.join(NAMES)})")
    module, cls = REGISTRY[key]
    return getattr(importlib.import_module(module), cls)


def get_baseline(name: str, **options: Any) -> Baseline:
    """A fresh, unfitted baseline `name` with `options` overriding its CPU-sized defaults."""
    return baseline_class(name)(**options)
