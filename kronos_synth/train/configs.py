"""Model sizes for training from scratch: named presets, released configs, JSON, per-key overrides.

`config` takes a preset name below, a released checkpoint name ('Kronos-small',
'Kronos-Tokenizer-base'), a JSON object, or a path to a .json file; `overrides` (the CLI's size
flags) then replace single keys. Partial JSON objects are merged over the `small` preset.
"""

from __future__ import annotations

import json
import os
from typing import Any

from kronos_synth.data.errors import InputError
from kronos_synth.model.configs import NAMED_CONFIGS, PREDICTOR_KEYS, PREDICTOR_OPTIONAL_KEYS, TOKENIZER_KEYS
from kronos_synth.model.errors import KronosCheckpointError
from kronos_synth.model.hub import check_config

_TOK_BASE = dict(d_in=6, ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0,
                 beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05)
_PRED_BASE = dict(attn_dropout_p=0.0, token_dropout_p=0.0, learn_te=True)

TOKENIZER_PRESETS: dict[str, dict[str, Any]] = {
    # tests and smoke runs
    "tiny": dict(_TOK_BASE, d_model=32, n_heads=2, ff_dim=64, n_enc_layers=2, n_dec_layers=2,
                 s1_bits=4, s2_bits=4, group_size=4),
    # the embedded default model's tokenizer
    "small": dict(_TOK_BASE, d_model=64, n_heads=4, ff_dim=128, n_enc_layers=2, n_dec_layers=2,
                  s1_bits=8, s2_bits=8, group_size=4),
}
PREDICTOR_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(_PRED_BASE, s1_bits=4, s2_bits=4, n_layers=2, d_model=32, n_heads=2, ff_dim=64,
                 ffn_dropout_p=0.0, resid_dropout_p=0.0),
    "small": dict(_PRED_BASE, s1_bits=8, s2_bits=8, n_layers=4, d_model=128, n_heads=4, ff_dim=256,
                  ffn_dropout_p=0.1, resid_dropout_p=0.1),
}


def _load_json(text: str) -> dict[str, Any]:
    src = text
    if not text.lstrip().startswith("{"):
        if not os.path.isfile(text):
            raise InputError(f"config {text!r}: not a preset, released config, JSON object or .json file",
                             param="config")
        src = open(text, encoding="utf-8").read()
    try:
        obj = json.loads(src)
    except ValueError as e:
        raise InputError(f"config {text!r}: invalid JSON ({e})", param="config") from e
    if not isinstance(obj, dict):
        raise InputError(f"config {text!r}: expected a JSON object of constructor arguments", param="config")
    return obj


def resolve_config(kind: str, config: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Constructor arguments of a tokenizer (`kind='tokenizer'`) or predictor (`'predictor'`)."""
    presets, keys = (TOKENIZER_PRESETS, TOKENIZER_KEYS) if kind == "tokenizer" else (PREDICTOR_PRESETS,
                                                                                   PREDICTOR_KEYS)
    name = (config or "small").removeprefix("NeoQuasar/")
    if name in presets:
        out = dict(presets[name])
    elif name in NAMED_CONFIGS:
        if NAMED_CONFIGS[name].kind != kind:
            raise InputError(f"config {config!r}: is a {NAMED_CONFIGS[name].kind} model, not a {kind}",
                             param="config")
        out = dict(NAMED_CONFIGS[name].config)
    else:
        obj = _load_json(config)
        out = dict(presets["small"], **obj)
    out.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for k, typ in keys.items():  # CLI values arrive as int; config.json wants floats as floats
        if typ is float and isinstance(out.get(k), int) and not isinstance(out.get(k), bool):
            out[k] = float(out[k])
    try:
        return check_config(out, keys, source="config",
                            optional=PREDICTOR_OPTIONAL_KEYS if kind == "predictor" else None)
    except KronosCheckpointError as e:
        raise InputError(str(e)) from e
