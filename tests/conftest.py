import os

import numpy as np
import pytest

# Tests never touch the network: hub ids must resolve from the local cache or fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "crypto-binance")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def crypto_dir() -> str:
    """The shared 15-minute crypto folder; tests that need it skip cleanly when it is absent."""
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip("../shared/data/crypto-binance is not present (benchmark data, not shipped)")
    return path
