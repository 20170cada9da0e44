"""`keep_freed_memory`: freed activations are reused instead of mapped and zeroed afresh (glibc)."""

import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource, torch
from kronos_synth.generate.device import keep_freed_memory
def faults(n=20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(n):
        x = torch.empty(4 << 20)  # 16 MB: above glibc's default mmap threshold
        x.fill_(1.0)
        del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults(2)
plain = faults()
applied = keep_freed_memory()
faults(2)
print(applied, plain, faults())
"""


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_keep_freed_memory_stops_refaulting_freed_blocks():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout.split()
    applied, plain, kept = out[0] == "True", int(out[1]), int(out[2])
    assert applied
    assert plain > 10_000  # blocks faulted in afresh (4096 pages each when mapped, fewer once the heap grows)
    assert kept < plain / 20
