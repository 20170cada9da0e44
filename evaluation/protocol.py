"""Benchmark protocols: one TOML file per dataset × frequency in `evaluation/protocols/`.

A protocol names the data (an embedded dataset, or a glob inside `--data-dir`), the split, the
window, the seed, the generators and every size setting of every stage. `--quick` merges `QUICK`
(and the file's own `[quick]` table) over it: tiny n, a few steps, one repeat.
"""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from kronos_synth.baselines import NAMES as BASELINES
from kronos_synth.baselines import baseline_class
from kronos_synth.data.errors import InputError
from kronos_synth.data.hashing import sha256_file  # noqa: F401 (re-exported)
from kronos_synth.generate.config import GenerationConfig

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Default data folder of the folder protocols (crypto-15m: Binance `*_15m.csv` files), which the package does
#: not ship: `../shared/data/crypto-binance` beside the checkout. The one definition: `evaluation.run`
#: (`--data-dir`), the bench scripts and the tests import it from here.
CRYPTO_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "crypto-binance"
#: The TimeGAN "Stocks" file (stock_data.csv) of the stocks-timegan protocol, also not shipped: beside the checkout.
TIMEGAN_STOCKS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "timegan-stocks"
KRONOS, ROUNDTRIP = "kronos", "tokenizer-roundtrip"

#: generation's gap convention in every benchmark (GenerationConfig.gaps): "model", not the library's default
#: "context", because every committed Kronos set was generated before the setting existed; the next full rerun
#: switches it (a gapless context — crypto, the S&P 500's early years — then gives gapless bars)
GAPS = "model"
# Defaults every protocol file may override; the files spell out what they change.
DEFAULTS: dict[str, Any] = {
    "test_fraction": 0.2,
    "seed": 0,
    "generators": [KRONOS, ROUNDTRIP, *BASELINES],
    "kronos": {"representation": "geometry", "init": "embedded", "tokenizer_steps": 150, "tokenizer_lr": 5e-5,
               "tokenizer_batch_size": 64, "predictor_steps": 300, "predictor_lr": 1e-4,
               "predictor_batch_size": 32, "eval_every": 100, "val_windows": 512, "patience": 4, "n": 6000,
               "temperature": GenerationConfig.default("temperature"), "top_p": GenerationConfig.default("top_p"),
               "temperature_spread": GenerationConfig.default("temperature_spread"),
               "volatility_spread": GenerationConfig.default("volatility_spread"),
               "batch_size": GenerationConfig.default("batch_size"),
               # training only: "" = train on `data`; else another glob / dataset (e.g. finer bars), and
               # phase_offsets resamples finer bars at every bin offset (kronos_synth.train.windows)
               "train_data": "", "phase_offsets": False,
               # init = "embedded": keep the fine-tune only where it beats the embedded default on validation
               # (the train period's tail; evaluation.stages.select_stage); "" keeps it always
               "select": "validation",
               "gaps": GAPS},
    # the select stage: continuations per candidate and classifier repeats
    "selection": {"n": 2000, "repeats": 10},
    # per baseline: options over its CPU-sized defaults (the fields of its `Options` dataclass, e.g.
    # kronos_synth.baselines.timegan.TimeGANOptions); `steps` is fit_baseline's training budget
    "baselines": {"n": 2000, **{name: {} for name in BASELINES}},
    "evaluation": {"n": 2000, "repeats": 3, "epochs": 20, "n_test_tstr": 3000, "max_plot": 1000, "tsne": True},
    "sweep": {"enabled": True, "temperatures": [0.7, 0.85, 1.0, 1.15], "top_ps": [0.9, 0.95, 1.0], "n": 500,
              "repeats": 1, "epochs": 20},
    # calibration of conditional paths (kronos, garch, bootstrap): test contexts × samples; temperatures are
    # compared on validation contexts (tail of the train period) only
    "forecast_calibration": {"enabled": True, "contexts": 200, "samples": 50, "val_contexts": 100,
                             "temperatures": [0.9, 1.0, 1.1, 1.25]},
    "run": {"threads": 1, "jobs": 2},
}

# --quick: the whole protocol end to end at toy size (checks the plumbing, not the models).
QUICK: dict[str, Any] = {
    "kronos": {"tokenizer_steps": 3, "predictor_steps": 3, "eval_every": 3, "val_windows": 64, "n": 96,
               "batch_size": 96},
    "baselines": {"n": 96, "timegan": {"steps": 3, "ae_steps": 3, "sup_steps": 3},
                  "timevae": {"steps": 2}, "diffusion-ts": {"steps": 5, "sampling_steps": 5}},
    "evaluation": {"n": 96, "repeats": 1, "epochs": 2, "n_test_tstr": 96, "max_plot": 96},
    "sweep": {"n": 32, "epochs": 2},
    "selection": {"n": 96, "repeats": 1},
    "forecast_calibration": {"contexts": 6, "samples": 6, "val_contexts": 4, "temperatures": [1.0, 1.25]},
}


class ProtocolError(InputError):
    """A protocol file or name that cannot be used."""


def merge(base: dict, over: dict) -> dict:
    """Deep merge: tables merge key by key, everything else is replaced."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ProtocolError(f"{path}: invalid TOML ({e})") from e


def protocol_names() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))


def protocol_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".toml" and p.is_file():
        return p
    if (PROTOCOL_DIR / f"{name_or_path}.toml").is_file():
        return PROTOCOL_DIR / f"{name_or_path}.toml"
    raise ProtocolError(f"unknown protocol '{name_or_path}' — choose from {', '.join(protocol_names())} "
                        "or pass a .toml file")


def load_protocol(name_or_path: str, *, quick: bool = False, overrides: dict | None = None) -> dict:
    """The merged settings of a protocol (defaults ← file ← quick ← overrides)."""
    path = protocol_path(name_or_path)
    raw = _toml(path)
    for key in ("name", "data", "freq", "window"):
        if key not in raw:
            raise ProtocolError(f"{path}: missing key '{key}'")
    file_quick = raw.pop("quick", {})
    proto = merge(DEFAULTS, raw)
    if quick:
        proto = merge(merge(proto, QUICK), file_quick)
    if overrides:
        proto = merge(proto, overrides)
    proto["quick"] = bool(quick)
    proto["file"] = str(path)
    unknown = [g for g in proto["generators"] if g not in (KRONOS, ROUNDTRIP, *BASELINES)]
    if unknown:
        raise ProtocolError(f"{path}: unknown generator(s) {unknown} — known: {KRONOS}, {ROUNDTRIP}, "
                            f"{', '.join(BASELINES)}")
    if float(proto["test_fraction"]) != 0.2:  # generate_dataset picks its contexts with the generator's 0.2 split
        raise ProtocolError(f"{path}: test_fraction must be 0.2 (Kronos generation splits its contexts at 0.2)")
    if proto["kronos"]["init"] not in ("embedded", "scratch", "zero-shot"):
        raise ProtocolError(f"{path}: kronos.init must be 'embedded', 'scratch' or 'zero-shot', "
                            f"got {proto['kronos']['init']!r}")
    check_baseline_options(proto, path)
    if proto["kronos"]["select"] not in ("validation", ""):
        raise ProtocolError(f"{path}: kronos.select must be 'validation' or '', got {proto['kronos']['select']!r}")
    for key in ("temperature_spread", "volatility_spread"):
        spread = proto["kronos"][key]
        if spread != "auto" and (isinstance(spread, bool | str) or not 0 <= spread <= 2):
            raise ProtocolError(f"{path}: kronos.{key} must be a number in [0, 2] or \"auto\", got {spread!r}")
    if proto["kronos"].get("center_returns") and proto["kronos"]["representation"] != "geometry":
        raise ProtocolError(f"{path}: kronos.center_returns needs representation = 'geometry'")
    if proto["kronos"]["init"] in ("embedded", "zero-shot"):
        embedded = embedded_representation()
        if proto["kronos"]["representation"] != embedded:
            raise ProtocolError(f"{path}: the embedded model uses the {embedded!r} representation — "
                                f"{proto['kronos']['representation']!r} needs kronos.init = 'scratch'")
    return proto


def check_baseline_options(proto: dict, path: Path) -> None:
    """Every `[baselines.NAME]` table names a baseline and only options of its `Options` dataclass, with values
    a fit can use: refused here, at load time, not hours later when the stage runs."""
    tables = proto["baselines"]
    unknown = [k for k in tables if k != "n" and k not in BASELINES]
    if unknown:
        raise ProtocolError(f"{path}: [baselines.{unknown[0]}] is not a baseline — known: {', '.join(BASELINES)}")
    for name in BASELINES:
        options = tables.get(name, {})
        if not isinstance(options, dict):
            raise ProtocolError(f"{path}: baselines.{name} must be a table of options, got {options!r}")
        try:
            baseline_class(name).Options.parse(options, baseline=name)
        except InputError as e:
            raise ProtocolError(f"{path}: [baselines.{name}] {e}") from None


def embedded_representation() -> str:
    from kronos_synth.model.pretrained import default_model_dir, read_sidecar

    return str(read_sidecar(default_model_dir() / "tokenizer").get("representation", "levels"))


def embedded_sha256() -> str:
    """Weights hash of the embedded tokenizer + predictor (a fine-tune from them depends on it)."""
    from kronos_synth.model.pretrained import default_model_dir

    return "+".join(sha256_file(default_model_dir() / part / "model.safetensors") for part in ("tokenizer", "model"))


def resolve_data(proto: dict, data_dir: str | None) -> tuple[str, list[str]] | None:
    """(source string for the data layer, input files) — None when a folder protocol's files are absent.

    `data` is an embedded dataset name, or with `data_dir = true` a glob inside `--data-dir`.
    """
    if not proto.get("data_dir"):
        from kronos_synth.data.datasets import dataset_path

        return proto["data"], [dataset_path(proto["data"])]
    if not data_dir:
        return None
    pattern = os.path.join(os.path.abspath(data_dir), proto["data"])
    files = sorted(glob.glob(pattern))
    return (pattern, files) if files else None


def resolve_train_data(proto: dict, data_dir: str | None) -> tuple[str, list[str]] | None:
    """(source, files) that Kronos trains on when `kronos.train_data` is set (a glob in `--data-dir` for folder
    protocols, else an embedded dataset name); None when it is not set. No matching file → ProtocolError."""
    name = proto["kronos"].get("train_data") or ""
    if not name:
        return None
    resolved = resolve_data({**proto, "data": name}, data_dir)
    if resolved is None:
        raise ProtocolError(f"{proto['name']}: kronos.train_data = {name!r} matches no file in {data_dir}")
    return resolved




def stage_seed(seed: int, name: str) -> int:
    """A seed per stage, derived from the protocol seed and the stage's name."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())]).generate_state(1)[0])


def settings_key(settings: Any) -> str:
    """Short hash of canonical JSON: a stage reruns when the key of its settings (or a dependency's) changes."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
