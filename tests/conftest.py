import os

import numpy as np
import pytest

# Tests never touch the network: hub ids must resolve from the local cache or fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def crypto_dir() -> str:
    """The crypto benchmark data folder (`CRYPTO_DATA_DIR` of evaluation/protocol.py, not shipped);
    tests that need it skip cleanly when it is absent."""
    try:
        from evaluation.protocol import CRYPTO_DATA_DIR
    except ImportError:  # plain `pytest` without the repository root on sys.path (use python -m pytest)
        pytest.skip("evaluation/ is not importable: run python -m pytest from the repository root")
    path = str(CRYPTO_DATA_DIR)
    if not os.path.isdir(path):
        pytest.skip(f"{path} is not present (crypto benchmark data, not shipped)")
    return path
