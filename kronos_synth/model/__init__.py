"""The Kronos model: tokenizer, predictor, KV cache, checkpoints and input normalisation.

Checkpoint-compatible with the reference release (same config keys, parameter names, numbers).
"""

from .bsq import BSQLoss, BSQuantizer, bits_to_ids, ids_to_codes
from .cache import KronosCache, SharedPrefixCache
from .configs import NAMED_CONFIGS, NamedConfig, named_config
from .errors import KronosCheckpointError
from .hub import check_compatible, check_config, resolve_checkpoint
from .kronos import Kronos
from .normalize import InstanceNorm, Normalizer, NormStats, time_features
from .tokenizer import KronosTokenizer, TokenizerOutput

__all__ = [
    "BSQLoss", "BSQuantizer", "InstanceNorm", "Kronos", "KronosCache", "KronosCheckpointError",
    "KronosTokenizer", "NAMED_CONFIGS", "NamedConfig", "NormStats", "Normalizer", "SharedPrefixCache", "TokenizerOutput",
    "bits_to_ids", "check_compatible", "check_config", "ids_to_codes", "named_config",
    "resolve_checkpoint", "time_features",
]
