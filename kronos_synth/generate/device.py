"""Choosing where and in which precision to run: device "auto", dtype "auto"."""

from __future__ import annotations

import ctypes
import ctypes.util

import torch

from kronos_synth.data.errors import InputError


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` → CUDA if present, else Apple MPS, else CPU; anything else is passed to torch."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise InputError(f"device {device!r} is unknown to torch (use auto, cpu, cuda, cuda:1, mps)",
                         param="device") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but torch sees no CUDA GPU — use device auto or cpu",
                         param="device")
    return dev


def fast_bf16(device: torch.device) -> bool:
    """True where bf16 matmuls are fast: CUDA with bf16 support, or a CPU with AVX-512-BF16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        cpu = torch.cpu
        for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
            fn = getattr(cpu, probe, None)
            if fn is not None and fn():
                return True
    return False


def resolve_dtype(dtype: str, device: torch.device) -> tuple[torch.dtype, str]:
    """`auto` → bf16 where it is fast, else fp32. Returns the dtype and a one-line note for the user."""
    if dtype == "auto":
        if fast_bf16(device):
            return torch.bfloat16, f"dtype auto: bf16 on {device.type} (fast bf16 matmuls found; dtype fp32 for full precision)"
        return torch.float32, f"dtype auto: fp32 on {device.type} (no fast bf16 found)"
    table = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise InputError(f"dtype {dtype!r} is unknown — use auto, fp32 or bf16", param="dtype")
    chosen = table[dtype]
    if chosen == torch.bfloat16 and not fast_bf16(device):
        return chosen, f"dtype bf16 on {device.type}: no fast bf16 found, this will be slow"
    return chosen, f"dtype {dtype} on {device.type}"


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
KEEP_BELOW = 32 << 20  # glibc's largest mmap threshold


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse: blocks up to 32 MB come from the heap and the heap is
    never trimmed. PyTorch's CPU tensors are malloc'ed, so by default every prefill chunk and decode step maps
    its activations afresh and the kernel zeroes them page by page — 1.5 M page faults per batch of 512
    Kronos-small sequences, 12 % of sampling time here. Process-wide (the resident size stays at its peak
    instead of shrinking between batches), so it is the application's choice: the CLI makes it for every
    command, the benchmarks too; library users can call this. → whether it applied (glibc only)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BELOW)) and bool(mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1))
