"""`keep_freed_memory` (glibc's malloc keeps freed blocks for reuse; its speed-up is a benchmark claim, recorded in
docs/performance.md): it applies on glibc, twice is harmless, and generation's output does not change."""

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import numpy as np, torch
from kronos_synth.generate.device import keep_freed_memory
from kronos_synth.generate.sampler import SamplingConfig, sample_tokens
from kronos_synth.model import Kronos

def run():
    torch.manual_seed(0)
    model = Kronos(s1_bits=6, s2_bits=6, n_layers=2, d_model=64, n_heads=2, ff_dim=128, ffn_dropout_p=0,
                   attn_dropout_p=0, resid_dropout_p=0, token_dropout_p=0, learn_te=True).eval()
    g = torch.Generator().manual_seed(1)
    s1, s2 = (torch.randint(0, 64, (4, 16), generator=g) for _ in range(2))
    stamps = torch.zeros(4, 24, 5)
    return sample_tokens(model, s1, s2, stamps, 8, SamplingConfig(1.0, 0, 0.95), seed=2, sequence_ids=np.arange(4))

before = run()
applied = keep_freed_memory() and keep_freed_memory()
after = run()
print(applied, all(torch.equal(a, b) for a, b in zip(before, after)))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_applies_and_changes_no_output():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True"]
