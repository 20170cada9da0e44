"""Checkpoint folders and hub repos: `from_pretrained` / `save_pretrained` for both model classes.

Format (the reference's): `config.json` with exactly the constructor arguments, keys sorted, and
`model.safetensors` (float32 state dict incl. persistent buffers); `pytorch_model.bin` is read
as a fallback. Everything that can go wrong with a user's checkpoint is a one-line
`KronosCheckpointError` naming the file, config key or parameter at fault.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from .configs import HUB_ORG, NAMED_CONFIGS, named_config
from .errors import KronosCheckpointError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TORCH_WEIGHTS_FILE = "pytorch_model.bin"
# buffers the constructor recomputes exactly; old or foreign checkpoints may lack them
OPTIONAL_BUFFERS = re.compile(r"(^|\.)(rotary\.inv_freq|bsq\.basis|bsq\.group_basis)$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hub_cache_dir() -> str | None:
    """The cache huggingface_hub would use, read now (it reads the environment only at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _download(repo_id: str, revision: str | None, cache_dir: str | None, local_files_only: bool,
              token: str | bool | None) -> Path:
    """Fetch config + weights of a hub repo into the normal HF cache; return the snapshot folder."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    offline = local_files_only or constants.HF_HUB_OFFLINE or _truthy(os.environ.get("HF_HUB_OFFLINE"))
    kw = dict(revision=revision, cache_dir=cache_dir or _hub_cache_dir(), local_files_only=offline,
              token=token, library_name="kronos-synth")
    where = f"{repo_id}@{revision}" if revision else repo_id

    def fetch(filename: str) -> Path:
        try:
            return Path(hf_hub_download(repo_id, filename, **kw))
        except (LocalEntryNotFoundError, OfflineModeIsEnabled) as e:
            if offline:
                raise KronosCheckpointError(
                    f"'{filename}' is not in the local Hugging Face cache and offline mode is on",
                    source=where,
                    hint="connect to the internet once to download it (unset HF_HUB_OFFLINE), "
                         "or pass a local checkpoint folder") from e
            raise KronosCheckpointError(
                f"could not download '{filename}' and it is not cached ({type(e).__name__})", source=where,
                hint="check the network connection once, or pass a local checkpoint folder") from e
        except (RepositoryNotFoundError, GatedRepoError) as e:
            raise KronosCheckpointError("no such (public) model repository on the Hugging Face hub",
                                        source=where, hint="check the id, or pass a local folder") from e
        except RevisionNotFoundError as e:
            raise KronosCheckpointError(f"revision '{revision}' does not exist", source=repo_id) from e
        except RemoteEntryNotFoundError:
            raise
        except (HfHubHTTPError, OSError) as e:
            raise KronosCheckpointError(
                f"could not download '{filename}': {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                source=where, hint="check the network connection, or pass a local checkpoint folder") from e

    config = fetch(CONFIG_FILE)
    try:
        fetch(WEIGHTS_FILE)
    except RemoteEntryNotFoundError:
        try:
            fetch(TORCH_WEIGHTS_FILE)
        except RemoteEntryNotFoundError as e:
            raise KronosCheckpointError(f"the repository has neither {WEIGHTS_FILE} nor {TORCH_WEIGHTS_FILE}",
                                        source=where) from e
    return config.parent


def resolve_checkpoint(id_or_dir: str | os.PathLike, revision: str | None = None, *,
                       cache_dir: str | None = None, local_files_only: bool = False,
                       token: str | bool | None = None) -> Path:
    """A local folder as is; a hub id ('NeoQuasar/Kronos-small', or a short name 'Kronos-small')
    downloaded into / read from the Hugging Face cache. Returns the folder holding config.json."""
    path = Path(id_or_dir).expanduser()
    if path.is_dir():
        return path
    text = str(id_or_dir)
    if text in NAMED_CONFIGS:
        text = named_config(text).hub_id
    if not _REPO_ID.match(text) or text.startswith((".", "/", "~")):
        raise KronosCheckpointError("no such checkpoint folder, and not a hub id like 'NeoQuasar/Kronos-small'",
                                    source=str(id_or_dir))
    return _download(text, revision, cache_dir, local_files_only, token)


def read_config(folder: Path, keys: dict[str, type], optional: dict[str, type] | None = None) -> dict[str, Any]:
    """config.json checked against the constructor keys: unknown, missing and mistyped keys are errors."""
    file = folder / CONFIG_FILE
    if not file.is_file():
        raise KronosCheckpointError(f"no {CONFIG_FILE}", source=str(folder),
                                    hint="a checkpoint folder holds config.json and model.safetensors")
    try:
        config = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise KronosCheckpointError(f"not valid JSON ({e})", source=str(file)) from e
    if not isinstance(config, dict):
        raise KronosCheckpointError("expected a JSON object of constructor arguments", source=str(file))
    return check_config(config, keys, source=str(file), optional=optional)


def check_config(config: dict[str, Any], keys: dict[str, type], source: str | None = None,
                 optional: dict[str, type] | None = None) -> dict[str, Any]:
    """Validate and normalise (floats as floats) a constructor config; `optional` keys may be absent."""
    optional = optional or {}
    unknown = sorted(set(config) - set(keys) - set(optional))
    if unknown:
        raise KronosCheckpointError(f"unknown config key '{unknown[0]}'"
                                    + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""),
                                    source=source, hint=f"expected exactly: {', '.join(keys)}")
    missing = [k for k in keys if k not in config]
    if missing:
        raise KronosCheckpointError(f"missing config key '{missing[0]}'"
                                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                    source=source)
    out: dict[str, Any] = {}
    for key, typ in {**keys, **{k: t for k, t in optional.items() if k in config}}.items():
        value = config[key]
        ok = (isinstance(value, bool) if typ is bool
              else isinstance(value, int) and not isinstance(value, bool) if typ is int
              else isinstance(value, int | float) and not isinstance(value, bool))
        if not ok:
            raise KronosCheckpointError(f"config key '{key}' must be {typ.__name__}, got {value!r}", source=source)
        if typ is int and value < 1:  # sizes, bit counts, layer counts: 0 builds an empty model that "trains"
            raise KronosCheckpointError(f"config key '{key}' must be at least 1, got {value}", source=source)
        out[key] = float(value) if typ is float else value
    return out


def load_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict in model.safetensors, else pytorch_model.bin (tensors only, never pickled code)."""
    file = folder / WEIGHTS_FILE
    if file.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(file)), file
        except (SafetensorError, OSError) as e:
            raise KronosCheckpointError(f"unreadable safetensors file ({e})", source=str(file)) from e
    file = folder / TORCH_WEIGHTS_FILE
    if file.is_file():
        try:
            return torch.load(file, map_location="cpu", weights_only=True), file
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
            raise KronosCheckpointError(f"unreadable weights file ({e})", source=str(file)) from e
    raise KronosCheckpointError(f"neither {WEIGHTS_FILE} nor {TORCH_WEIGHTS_FILE}", source=str(folder))


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load `state` into `module`, naming any missing/unexpected parameter or wrong shape.

    Only the recomputable buffers (OPTIONAL_BUFFERS) may be absent. Values are cast to the
    module's dtypes.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not OPTIONAL_BUFFERS.search(k)]
    if missing:
        raise KronosCheckpointError(f"missing parameter '{missing[0]}'"
                                    + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
                                    source=source, hint="is this a checkpoint of the right model class/config?")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise KronosCheckpointError(f"unexpected parameter '{unexpected[0]}'"
                                    + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else ""),
                                    source=source, hint="is this a checkpoint of the right model class/config?")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise KronosCheckpointError(
                f"parameter '{k}' has shape {tuple(v.shape)}, the config needs {tuple(own[k].shape)}",
                source=source, hint="config.json and the weights do not belong together")
    module.load_state_dict(state, strict=False)


class CheckpointMixin:
    """from_pretrained / save_pretrained / config for a module built from CONFIG_KEYS arguments."""

    CONFIG_KEYS: dict[str, type] = {}
    OPTIONAL_CONFIG_KEYS: dict[str, type] = {}
    KIND: str = ""

    _config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """Exactly the constructor arguments (a copy)."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: str | dict[str, Any]):
        """Freshly initialised model from a named config ('Kronos-small') or a dict of arguments."""
        if isinstance(config, str):
            try:
                named = named_config(config)
            except KeyError as e:
                raise KronosCheckpointError(str(e.args[0])) from e
            if named.kind != cls.KIND:
                raise KronosCheckpointError(f"'{config}' is a {named.kind} config, not a {cls.KIND}")
            config = named.config
        return cls(**check_config(dict(config), cls.CONFIG_KEYS, optional=cls.OPTIONAL_CONFIG_KEYS))

    @classmethod
    def from_pretrained(cls, id_or_dir: str | os.PathLike, revision: str | None = None, *,
                        cache_dir: str | None = None, local_files_only: bool = False,
                        token: str | bool | None = None, map_location: str | torch.device = "cpu"):
        """Load a local checkpoint folder or a hub id (optionally at `revision`), in eval mode."""
        name = str(id_or_dir).removeprefix(f"{HUB_ORG}/")
        if name in NAMED_CONFIGS and NAMED_CONFIGS[name].kind != cls.KIND and not Path(id_or_dir).is_dir():
            raise KronosCheckpointError(f"is a {NAMED_CONFIGS[name].kind} checkpoint, not a {cls.KIND}",
                                        source=str(id_or_dir))
        folder = resolve_checkpoint(id_or_dir, revision, cache_dir=cache_dir,
                                    local_files_only=local_files_only, token=token)
        config = read_config(folder, cls.CONFIG_KEYS, cls.OPTIONAL_CONFIG_KEYS)
        try:
            model = cls(**config)
        except ValueError as e:  # constructor consistency checks (e.g. heads vs d_model)
            raise KronosCheckpointError(str(e), source=str(folder / CONFIG_FILE)) from e
        state, file = load_weights(folder)
        load_state_strict(model, state, str(file))
        return model.to(map_location).eval()

    def save_pretrained(self, save_directory: str | os.PathLike) -> Path:
        """Write config.json (sorted keys) and model.safetensors (float32, persistent buffers)."""
        from safetensors.torch import save_file

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_FILE).write_text(json.dumps(self._config, sort_keys=True, indent=2) + "\n")
        state = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
                 for k, v in self.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
        return folder


def check_compatible(tokenizer: torch.nn.Module, model: torch.nn.Module) -> None:
    """Raise KronosCheckpointError unless the predictor's token vocabulary is the tokenizer's."""
    for key in ("s1_bits", "s2_bits"):
        t, m = getattr(tokenizer, key), getattr(model, key)
        if t != m:
            raise KronosCheckpointError(
                f"tokenizer and predictor disagree on config key '{key}' (tokenizer {t}, predictor {m})",
                hint="use the tokenizer the predictor was trained with")

