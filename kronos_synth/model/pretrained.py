"""Finding the tokenizer + predictor pair a command should use.

- `model` not given: the embedded default shipped in the package (`kronos_synth/assets/default/`).
- `model` a released checkpoint ('NeoQuasar/Kronos-small' or 'Kronos-small'): its own tokenizer
  unless `tokenizer` says otherwise.
- `model` a folder written by `kronos-synth train`: the tokenizer folder recorded beside it
  (`<dir>/tokenizer`, or `tokenizer` in `<dir>/kronos_synth.json`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from kronos_synth.model.configs import HUB_ORG, NAMED_CONFIGS
from kronos_synth.model.errors import KronosCheckpointError
from kronos_synth.model.hub import check_compatible, resolve_checkpoint
from kronos_synth.model.kronos import Kronos
from kronos_synth.model.representation import Representation, get_representation
from kronos_synth.model.tokenizer import KronosTokenizer

SIDECAR = "kronos_synth.json"  # beside config.json; never inside it, so config.json stays reference-exact


def default_model_dir() -> Path:
    return Path(str(resources.files("kronos_synth"))) / "assets" / "default"


@dataclass
class ModelPair:
    model: Kronos
    tokenizer: KronosTokenizer
    model_id: str
    tokenizer_id: str
    max_context: int
    sidecar: dict


def weights_sha256(folder: Path) -> str:
    for name in ("model.safetensors", "pytorch_model.bin"):
        f = folder / name
        if f.is_file():
            return hashlib.sha256(f.read_bytes()).hexdigest()
    return ""


def read_sidecar(folder: Path) -> dict:
    f = folder / SIDECAR
    if not f.is_file():
        return {}
    try:
        sidecar = json.loads(f.read_text())
    except ValueError as e:
        raise KronosCheckpointError(f"{SIDECAR} is not valid JSON ({e})", source=str(f)) from e
    if not isinstance(sidecar, dict):
        raise KronosCheckpointError("not a JSON object of settings", source=str(f))
    return sidecar


def sidecar_max_context(folder: Path, sidecar: dict) -> int | None:
    """`max_context` of a checkpoint's kronos_synth.json: None when the key is absent, else a positive whole
    number of tokens — anything else (0, negative, fractional, text, null) raises `KronosCheckpointError`
    naming the file and key instead of falling back to a default silently."""
    if "max_context" not in sidecar:
        return None
    v = sidecar["max_context"]
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise KronosCheckpointError(f"key 'max_context' is {json.dumps(v)}, not a positive whole number of tokens",
                                    source=str(Path(folder) / SIDECAR),
                                    hint="set it to the context the model was trained for (lookback + horizon), "
                                         "or remove the key")
    return v


def _tokenizer_for(model_arg: str, folder: Path, sidecar: dict) -> str:
    name = model_arg.removeprefix(f"{HUB_ORG}/")
    if name in NAMED_CONFIGS and NAMED_CONFIGS[name].tokenizer and not Path(model_arg).is_dir():
        return f"{HUB_ORG}/{NAMED_CONFIGS[name].tokenizer}"
    if sidecar.get("tokenizer"):
        tok = Path(sidecar["tokenizer"])
        return str(tok if tok.is_absolute() else (folder / tok).resolve())
    if (folder / "tokenizer").is_dir():
        return str(folder / "tokenizer")
    if (folder.parent / "tokenizer").is_dir():
        return str(folder.parent / "tokenizer")
    raise KronosCheckpointError("no tokenizer is recorded with this model", source=str(folder),
                                hint="pass tokenizer=ID_OR_DIR", param="tokenizer")


def load_model_pair(model: str | None = None, tokenizer: str | None = None, *,
                    revision: str | None = None) -> ModelPair:
    """Load the predictor and its tokenizer (see module doc for how the pair is found)."""
    if model is None:
        root = default_model_dir()
        if not (root / "model" / "config.json").is_file():
            raise KronosCheckpointError("this installation has no embedded default model",
                                        source=str(root), hint="pass model=ID_OR_DIR",
                                        param="model")
        model, tokenizer = str(root / "model"), tokenizer or str(root / "tokenizer")
        model_label = "embedded default (kronos_synth/assets/default)"
    else:
        model_label = model
    folder = resolve_checkpoint(model, revision)
    sidecar = read_sidecar(folder)
    tok_arg = tokenizer or _tokenizer_for(model, folder, sidecar)
    tok_folder = resolve_checkpoint(tok_arg)
    predictor = Kronos.from_pretrained(folder)
    tok = KronosTokenizer.from_pretrained(tok_folder)
    check_compatible(tok, predictor)
    predictor.weights_sha256 = weights_sha256(folder)
    tok.weights_sha256 = weights_sha256(tok_folder)
    name = model.removeprefix(f"{HUB_ORG}/")
    context = (sidecar_max_context(folder, sidecar) or (NAMED_CONFIGS[name].context if name in NAMED_CONFIGS else None)
               or 512)
    return ModelPair(predictor, tok, model_label, tok_arg, int(context), sidecar)


@dataclass
class TokenizerBundle:
    """A tokenizer with the representation it was trained in and the window it was trained for."""

    tokenizer: KronosTokenizer
    representation: Representation
    tokenizer_id: str
    freq: str | None
    lookback: int | None
    horizon: int | None


def _is_tokenizer_folder(folder: Path, sidecar: dict) -> bool:
    if sidecar.get("kind"):
        return sidecar["kind"] == "tokenizer"
    try:
        return "d_in" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False


def load_tokenizer(model: str | None = None, *, revision: str | None = None) -> TokenizerBundle:
    """The tokenizer behind `model`: a tokenizer folder or hub id itself, a predictor's tokenizer (found as
    in `load_model_pair`), or the embedded default's; plus its representation and window (from the
    kronos_synth.json sidecars; released checkpoints: levels, window unknown)."""
    if model is None:
        root = default_model_dir()
        if not (root / "tokenizer" / "config.json").is_file():
            raise KronosCheckpointError("this installation has no embedded default model",
                                        source=str(root), hint="pass model=ID_OR_DIR",
                                        param="model")
        model = str(root / "model")
    folder = resolve_checkpoint(model, revision)
    sidecar = read_sidecar(folder)
    tok_arg = model if _is_tokenizer_folder(folder, sidecar) else _tokenizer_for(model, folder, sidecar)
    tok_folder = folder if tok_arg == model else resolve_checkpoint(tok_arg)
    tok = KronosTokenizer.from_pretrained(tok_folder)
    tok.weights_sha256 = weights_sha256(tok_folder)
    tok_sidecar = read_sidecar(tok_folder)
    rep = get_representation(sidecar or tok_sidecar or None)

    def window(key: str):
        return sidecar.get(key) or tok_sidecar.get(key)

    lookback, horizon = window("lookback"), window("horizon")
    return TokenizerBundle(tok, rep, tok_arg, window("freq"), int(lookback) if lookback else None,
                           int(horizon) if horizon else None)
