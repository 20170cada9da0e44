"""Named configurations of the released Kronos checkpoints (Hugging Face org NeoQuasar)."""

from __future__ import annotations

from dataclasses import dataclass, field

HUB_ORG = "NeoQuasar"

# constructor keys and their types; config.json holds exactly these (keys sorted, floats as floats)
TOKENIZER_KEYS: dict[str, type] = {
    "d_in": int, "d_model": int, "n_heads": int, "ff_dim": int, "n_enc_layers": int, "n_dec_layers": int,
    "ffn_dropout_p": float, "attn_dropout_p": float, "resid_dropout_p": float,
    "s1_bits": int, "s2_bits": int, "beta": float, "gamma0": float, "gamma": float, "zeta": float,
    "group_size": int,
}
PREDICTOR_KEYS: dict[str, type] = {
    "s1_bits": int, "s2_bits": int, "n_layers": int, "d_model": int, "n_heads": int, "ff_dim": int,
    "ffn_dropout_p": float, "attn_dropout_p": float, "resid_dropout_p": float, "token_dropout_p": float,
    "learn_te": bool,
}
#: keys a config.json may hold beyond those (absent = off); the released checkpoints have none of them
PREDICTOR_OPTIONAL_KEYS: dict[str, type] = {"regime_buckets": int}


@dataclass(frozen=True)
class NamedConfig:
    """A released checkpoint: its constructor config, hub id and self-check parameter count."""

    name: str
    kind: str  # "tokenizer" | "predictor"
    config: dict = field(hash=False)
    params: int
    context: int | None = None  # predictors: maximum context in tokens
    tokenizer: str | None = None  # predictors: the tokenizer they were trained with

    @property
    def hub_id(self) -> str:
        return f"{HUB_ORG}/{self.name}"


def _tokenizer(group_size: int) -> dict:
    return dict(d_in=6, d_model=256, n_heads=4, ff_dim=512, n_enc_layers=4, n_dec_layers=4,
                ffn_dropout_p=0.0, attn_dropout_p=0.0, resid_dropout_p=0.0, s1_bits=10, s2_bits=10,
                beta=0.05, gamma0=1.0, gamma=1.1, zeta=0.05, group_size=group_size)


def _predictor(n_layers: int, d_model: int, n_heads: int, ff_dim: int, ffn: float, attn: float,
               resid: float, token: float) -> dict:
    return dict(s1_bits=10, s2_bits=10, n_layers=n_layers, d_model=d_model, n_heads=n_heads, ff_dim=ff_dim,
                ffn_dropout_p=ffn, attn_dropout_p=attn, resid_dropout_p=resid, token_dropout_p=token,
                learn_te=True)


NAMED_CONFIGS: dict[str, NamedConfig] = {c.name: c for c in [
    NamedConfig("Kronos-Tokenizer-2k", "tokenizer", _tokenizer(5), 3_958_042),
    NamedConfig("Kronos-Tokenizer-base", "tokenizer", _tokenizer(4), 3_958_042),
    NamedConfig("Kronos-mini", "predictor", _predictor(4, 256, 4, 512, 0.2, 0.0, 0.2, 0.0), 4_108_032,
                context=2048, tokenizer="Kronos-Tokenizer-2k"),
    NamedConfig("Kronos-small", "predictor", _predictor(8, 512, 8, 1024, 0.25, 0.1, 0.25, 0.1), 24_741_376,
                context=512, tokenizer="Kronos-Tokenizer-base"),
    NamedConfig("Kronos-base", "predictor", _predictor(12, 832, 16, 2048, 0.2, 0.0, 0.2, 0.0), 102_310_592,
                context=512, tokenizer="Kronos-Tokenizer-base"),
]}


def named_config(name: str) -> NamedConfig:
    """Look up 'Kronos-small' or 'NeoQuasar/Kronos-small'; KeyError listing the names otherwise."""
    key = name.removeprefix(f"{HUB_ORG}/")
    if key not in NAMED_CONFIGS:
        raise KeyError(f"unknown Kronos config {name!r}; known: {', '.join(NAMED_CONFIGS)}")
    return NAMED_CONFIGS[key]
