"""Choosing where and in which precision to run: device "auto", dtype "auto"."""

from __future__ import annotations

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
