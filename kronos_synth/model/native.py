"""Small compiled kernels for the decode loop, built on first use with the system C compiler.

Single-query attention over a K/V cache is memory-bound, and PyTorch's CPU kernels read a cache at
7-20 GB/s in float32 and at 1-9 GB/s in bf16 (batched matrix-vector products). `kernels/attention.c`
streams each row's keys and values once, from position-major caches, in bf16 or float32 with float32
sums. `kernels/sampling.c` draws the tokens (temperature, top-k, top-p, inverse CDF) in one pass per row,
where PyTorch's path sorts on one core and runs five more passes. Both are plain C (no PyTorch headers).
Compiling takes about a second. With `-fopenmp` they run on the OpenMP team that PyTorch already has. The
library is cached per source, compiler flags and CPU under `~/.cache/kronos-synth/kernels`
(KRONOS_SYNTH_CACHE moves it).

Without a C compiler, on a CPU without AVX-512 (where it was never measured against PyTorch), or with
KRONOS_SYNTH_NATIVE=0, `available()` is False and the model uses its PyTorch path. The two paths agree to
float32 rounding for float32 caches, and to bf16 rounding for bf16 caches; a draw differs only when its
uniform falls within rounding of a boundary. A seed gives the same bytes only on the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import torch

FLAGS = ["-O3", "-march=native", "-ffast-math", "-fno-finite-math-only", "-fPIC", "-shared", "-pthread"]
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False


def _cpu_key() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        flags = platform.processor()
    return platform.machine() + flags


def _cache_dir() -> Path:
    root = os.environ.get("KRONOS_SYNTH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kronos-synth")
    return Path(root) / "kernels"


SOURCES = ("attention.c", "decode.c", "sampling.c")
HEADERS = ("bf16.h",)


def _build() -> ctypes.CDLL | None:
    kernels = resources.files("kronos_synth.model").joinpath("kernels")
    sources = {name: kernels.joinpath(name).read_bytes() for name in (*SOURCES, *HEADERS)}
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    key = hashlib.sha256(b"".join(sources.values()) + " ".join([cc, *FLAGS, _cpu_key()]).encode()).hexdigest()[:16]
    path = _cache_dir() / f"kernels-{key}.so"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            for name, text in sources.items():
                (Path(tmp) / name).write_bytes(text)
            out = Path(tmp) / "kernels.so"
            for openmp in (["-fopenmp"], []):  # OpenMP when the compiler has it (see attention.c), else pthreads
                done = subprocess.run([cc, *FLAGS, *openmp, *(str(Path(tmp) / n) for n in SOURCES), "-o", str(out),
                                       "-lm"], capture_output=True)
                if done.returncode == 0:
                    break
            else:
                return None
            os.replace(out, path)  # atomic: concurrent processes (Ray workers) never see half a file
    lib = ctypes.CDLL(str(path))
    if not lib.ks_vectorized():  # no AVX-512: measured only against PyTorch there, so PyTorch runs
        return None
    lib.ks_partial_attention.restype = ctypes.c_int
    lib.ks_partial_attention.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 5 + [ctypes.c_int] * 2 \
        + [ctypes.c_void_p] * 3
    lib.ks_prefix_attention.restype = ctypes.c_int
    lib.ks_prefix_attention.argtypes = [ctypes.c_void_p] * 4 + [ctypes.c_int64] * 5 + [ctypes.c_int] \
        + [ctypes.c_void_p] * 3
    lib.ks_rope_write.restype = None
    lib.ks_rope_write.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] + [ctypes.c_int64] * 4 \
        + [ctypes.c_void_p] * 2 + [ctypes.c_float] + [ctypes.c_void_p] * 3 + [ctypes.c_int64, ctypes.c_int, ctypes.c_int]
    lib.ks_rope_prefill.restype = None
    lib.ks_rope_prefill.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int] + [ctypes.c_int64] * 4 \
        + [ctypes.c_void_p] * 7 + [ctypes.c_int64] * 3 + [ctypes.c_int] * 2
    lib.ks_rms_norm_bf16.restype = None
    lib.ks_rms_norm_bf16.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p, ctypes.c_float,
                                     ctypes.c_void_p, ctypes.c_int]
    lib.ks_combine.restype = None
    lib.ks_combine.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 2 + [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    lib.ks_sample.restype = ctypes.c_int
    lib.ks_sample.argtypes = [ctypes.c_void_p, ctypes.c_int] + [ctypes.c_int64] * 3 + [ctypes.c_float, ctypes.c_int64,
                                                                                       ctypes.c_float, ctypes.c_void_p,
                                                                                       ctypes.c_int, ctypes.c_void_p]
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (no compiler, a failed build, or KRONOS_SYNTH_NATIVE=0)."""
    global _lib, _tried
    if os.environ.get("KRONOS_SYNTH_NATIVE", "1") == "0":
        return None
    with _lock:
        if not _tried:
            _tried = True
            try:
                _lib = _build()
            except OSError:
                _lib = None
    return _lib


def available() -> bool:
    return library() is not None


def fits(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Whether `partial_attention` takes this query and cache (CPU, float32/bf16, (b, h) rows at one
    stride), and the kernel is built."""
    if q.device.type != "cpu" or k.device.type != "cpu" or k.dtype not in (torch.float32, torch.bfloat16):
        return False
    if v.dtype != k.dtype or v.shape != k.shape or k.dim() != 4 or k.stride() != v.stride():
        return False
    return k.stride(3) == 1 and k.stride(0) == k.shape[1] * k.stride(1) and available()


def partial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n: int, threads: int | None = None, *,
                      rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q (B, H, K) float32 (scaled), k/v (B', H, C, K) float32 or bf16 with C ≥ n → the unnormalised
    softmax of every (b, h) row over positions 0..n-1: max m (B, H), l = Σ exp(s − m) (B, H) and
    o = Σ exp(s − m)·v (B, H, K), float32.

    rows (B,) int64: query row b attends to cache row rows[b] (several samples over one shared prefix);
    default b, with B' = B. Any layout whose (b, h) rows sit at one stride works; the fast one is
    position-major (a (C, B', H, K) buffer seen as (B', H, C, K), `position_major`): one position of all
    rows is then one run of memory."""
    lib = library()
    if lib is None:
        raise RuntimeError("the native attention kernel is not available")
    B, H, K = q.shape
    Bk, Hk, C, Kk = k.shape
    if not fits(q.unsqueeze(2), k, v) or (Hk, Kk) != (H, K) or not 0 < n <= C:
        raise ValueError(f"q {tuple(q.shape)}, n = {n} and k/v {tuple(k.shape)} {k.stride()} do not fit the kernel")
    index = None
    if rows is None:
        if Bk != B:
            raise ValueError(f"{B} query rows for a cache of {Bk}: pass rows")
    else:
        if rows.shape != (B,) or (len(rows) and not 0 <= int(rows.min()) <= int(rows.max()) < Bk):
            raise ValueError(f"rows must be (B,) = ({B},) indices below {Bk}")
        # storage row of each (b, h): rows[b]·H + h, in units of the (b, h) row stride
        index = (rows.long()[:, None] * H + torch.arange(H)).reshape(-1).contiguous()
    q = q.float().contiguous()
    peak, total = q.new_empty(B, H), q.new_empty(B, H)
    o = q.new_empty(B, H, K)
    if lib.ks_partial_attention(q.data_ptr(), k.data_ptr(), v.data_ptr(), None if index is None else index.data_ptr(),
                                k.stride(1), k.stride(2), n, K, B * H, int(k.dtype == torch.bfloat16),
                                threads or torch.get_num_threads(), peak.data_ptr(), total.data_ptr(), o.data_ptr()):
        raise MemoryError("the attention kernel could not allocate its score buffer")
    return peak, total, o


def row_view(t: torch.Tensor) -> bool:
    """Whether t (B, H, K), e.g. one position of a cache, has its (b, h) rows at one stride, each contiguous."""
    return (t.dim() == 3 and t.device.type == "cpu" and t.dtype in (torch.float32, torch.bfloat16)
            and t.stride(2) == 1 and t.stride(0) == t.shape[1] * t.stride(1))


def rope_write(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, scale: float,
               kc: torch.Tensor, vc: torch.Tensor) -> torch.Tensor:
    """One decode position, fused (`kernels/decode.c`): q, k, v (B, D) projections (float32 or bf16, one dtype,
    rows contiguous); cos, sin (K,) float32, this position's RoPE table → RoPE(q)·scale (B, H, K) float32, and
    RoPE(k), v written into kc, vc: the cache at this position, (B, H, K) views (`row_view`)."""
    lib = library()
    B, H, K = kc.shape
    if lib is None or not (row_view(kc) and row_view(vc) and kc.stride() == vc.stride() and kc.dtype == vc.dtype):
        raise ValueError("rope_write needs the kernels and (B, H, K) cache views with rows at one stride")
    q, k, v = (t.reshape(B, H * K) for t in (q, k, v))
    if not (q.dtype == k.dtype == v.dtype and q.dtype in (torch.float32, torch.bfloat16)
            and q.stride() == k.stride() == v.stride() and q.stride(1) == 1):
        raise ValueError("q, k, v must be (B, D) float32 or bf16 projections with one row stride")
    cos, sin = (t.reshape(K).float().contiguous() for t in (cos, sin))
    out = torch.empty(B, H, K)
    lib.ks_rope_write(q.data_ptr(), k.data_ptr(), v.data_ptr(), int(q.dtype == torch.bfloat16), q.stride(0), B, H, K,
                      cos.data_ptr(), sin.data_ptr(), scale, out.data_ptr(), kc.data_ptr(), vc.data_ptr(),
                      kc.stride(1), int(kc.dtype == torch.bfloat16), torch.get_num_threads())
    return out


def position_major_layout(t: torch.Tensor) -> bool:
    """Whether a cache tensor (B, H, C, K) is stored position-major (`position_major`, or rows of one)."""
    B, H, C, K = t.shape
    return t.device.type == "cpu" and t.stride()[:2] == (H * K, K) and t.stride(3) == 1 and t.stride(2) >= B * H * K


def rope_prefill(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                 kc: torch.Tensor, vc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A prefill's RoPE in one pass (`kernels/decode.c`): q, k, v (B, T, D) projections (float32 or bf16, one
    dtype); cos, sin (T, K) float32 → RoPE(q), RoPE(k), v as (B, H, T, K) float32 (what the prefill attends
    with), and RoPE(k), v written into kc, vc: the cache's positions 0..T-1, (B, H, T, K) views."""
    lib = library()
    B, H, T, K = kc.shape
    if lib is None or kc.stride() != vc.stride() or kc.dtype != vc.dtype or kc.stride(3) != 1 \
            or kc.dtype not in (torch.float32, torch.bfloat16):
        raise ValueError("rope_prefill needs the kernels and (B, H, T, K) float32/bf16 cache views")
    q, k, v = (t.contiguous() for t in (q, k, v))
    if not (q.shape == k.shape == v.shape == (B, T, H * K) and q.dtype == k.dtype == v.dtype
            and q.dtype in (torch.float32, torch.bfloat16)):
        raise ValueError(f"q, k, v must be (B, T, D) = {(B, T, H * K)} projections of one dtype")
    cos, sin = (t.reshape(T, K).float().contiguous() for t in (cos, sin))
    out = [torch.empty(B, H, T, K) for _ in range(3)]
    lib.ks_rope_prefill(q.data_ptr(), k.data_ptr(), v.data_ptr(), int(q.dtype == torch.bfloat16), B, T, H, K,
                        cos.data_ptr(), sin.data_ptr(), *(o.data_ptr() for o in out), kc.data_ptr(), vc.data_ptr(),
                        kc.stride(0), kc.stride(1), kc.stride(2), int(kc.dtype == torch.bfloat16),
                        torch.get_num_threads())
    return out[0], out[1], out[2]


def rms_norm_bf16(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm of bf16 x (..., D) with a bf16 weight (D,) in one pass (`kernels/decode.c`), the float32
    arithmetic of `layers.RMSNorm` (the mean summed in another order)."""
    lib = library()
    if lib is None or x.dtype != torch.bfloat16 or weight.dtype != torch.bfloat16 or x.device.type != "cpu":
        raise ValueError("rms_norm_bf16 needs the kernels and bf16 CPU tensors")
    x = x.contiguous()
    w = weight.detach().contiguous()
    D = x.shape[-1]
    if w.shape != (D,):
        raise ValueError(f"weight {tuple(w.shape)} for rows of {D}")
    out = torch.empty_like(x)
    lib.ks_rms_norm_bf16(x.data_ptr(), x.numel() // max(D, 1), D, w.data_ptr(), eps, out.data_ptr(),
                         torch.get_num_threads())
    return out


def combine(m1: torch.Tensor, l1: torch.Tensor, o1: torch.Tensor, m2: torch.Tensor | None = None,
            l2: torch.Tensor | None = None, o2: torch.Tensor | None = None, *,
            dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Attention from partial softmaxes (`partial_attention`'s m, l (B, H), o (B, H, K)): o1 / l1, or with a
    second part their log-sum-exp merge → (B, H, K) in dtype (float32 or bf16)."""
    lib = library()
    if lib is None:
        raise RuntimeError("the native kernels are not available")
    parts = [t.float().contiguous() for t in (m1, l1, o1)]
    if m2 is not None:
        parts += [t.float().contiguous() for t in (m2, l2, o2)]
    out = torch.empty(o1.shape, dtype=dtype)
    ptrs = [t.data_ptr() for t in parts] + [None] * (6 - len(parts))
    lib.ks_combine(*ptrs, m1.numel(), o1.shape[-1], out.data_ptr(), int(dtype == torch.bfloat16),
                   torch.get_num_threads())
    return out


PACKED_HEAD_DIMS = (64, 128)


def packs(k: torch.Tensor) -> bool:
    """Whether a prefix like k (N, H, P, K) can be packed for `prefix_attention` (bf16, K 64 or 128, on the
    CPU, with the kernel built with AVX512-BF16)."""
    lib = library()
    return (lib is not None and bool(lib.ks_packed_prefix()) and k.device.type == "cpu"
            and k.dtype == torch.bfloat16 and k.dim() == 4 and k.shape[3] in PACKED_HEAD_DIMS)


def pack_prefix(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A shared prefix's keys and values (N, H, P, K) bf16 → the layouts `prefix_attention` reads:
    kt (N, H, K/2, P16, 2) with kt[..., d2, p, e] = k[..., p, 2·d2 + e], and vt (N, H, P16/2, K, 2) with
    vt[..., p2, d, e] = v[..., 2·p2 + e, d]; P16 = P rounded up to 16, the padding zero."""
    N, H, P, K = k.shape
    pad = -P % 16
    k, v = (torch.nn.functional.pad(t.to(torch.bfloat16), (0, 0, 0, pad)) for t in (k, v))
    kt = k.view(N, H, P + pad, K // 2, 2).permute(0, 1, 3, 2, 4).contiguous()
    vt = v.view(N, H, (P + pad) // 2, 2, K).permute(0, 1, 2, 4, 3).contiguous()
    return kt, vt


def prefix_attention(q: torch.Tensor, kt: torch.Tensor, vt: torch.Tensor, n: int, rows: torch.Tensor,
                     threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`partial_attention` over a packed shared prefix (`pack_prefix`): q (B, H, K) float32 (scaled), query row
    b over storage row rows[b], positions 0..n-1 → m, l (B, H), o (B, H, K) float32. The rows of one storage
    row should be consecutive (the samples of a context are): they share every load."""
    lib = library()
    N, H, half, p16, two = kt.shape
    B, Hq, K = q.shape
    if lib is None or not lib.ks_packed_prefix() or (Hq, K) != (H, 2 * half) or two != 2 or K not in PACKED_HEAD_DIMS:
        raise ValueError(f"q {tuple(q.shape)} and packed prefix {tuple(kt.shape)} do not fit the kernel")
    if vt.shape != (N, H, p16 // 2, K, 2) or not kt.is_contiguous() or not vt.is_contiguous() or not 0 < n <= p16:
        raise ValueError(f"packed prefix {tuple(kt.shape)} / {tuple(vt.shape)}, n = {n}: not a pack_prefix pair")
    if rows.shape != (B,) or (B and not 0 <= int(rows.min()) <= int(rows.max()) < N):
        raise ValueError(f"rows must be (B,) = ({B},) indices below {N}")
    q = q.float().contiguous()
    rows = rows.long().contiguous()
    peak, total, o = q.new_empty(B, H), q.new_empty(B, H), q.new_empty(B, H, K)
    if lib.ks_prefix_attention(q.data_ptr(), kt.data_ptr(), vt.data_ptr(), rows.data_ptr(), B, H, K, p16, n,
                               threads or torch.get_num_threads(), peak.data_ptr(), total.data_ptr(), o.data_ptr()):
        raise RuntimeError("the packed prefix kernel refused its arguments")
    return peak, total, o


def sample(logits: torch.Tensor, uniforms: np.ndarray, temperature: float, top_k: int, top_p: float,
           threads: int | None = None) -> torch.Tensor:
    """Token draws (`kernels/sampling.c`): logits (B, V) float32 or bf16 on the CPU, uniforms (B,) in [0, 1) →
    ids (B,) int64, by `sample_from_logits`' rule (temperature, top-k, top-p, inverse-CDF draw in descending
    probability order, ties by token id). Agrees with it up to float32 rounding of the softmax."""
    lib = library()
    if lib is None:
        raise RuntimeError("the native kernels are not available")
    if logits.dim() != 2 or logits.device.type != "cpu" or logits.dtype not in (torch.float32, torch.bfloat16):
        raise ValueError(f"logits must be (B, V) float32 or bf16 on the CPU, got {tuple(logits.shape)} {logits.dtype}")
    if logits.stride(1) != 1:
        logits = logits.contiguous()
    B, V = logits.shape
    u = np.ascontiguousarray(uniforms, dtype=np.float64)
    if u.shape != (B,):
        raise ValueError(f"uniforms must be ({B},), got {u.shape}")
    out = torch.empty(B, dtype=torch.int64)
    if lib.ks_sample(logits.data_ptr(), int(logits.dtype == torch.bfloat16), B, V, logits.stride(0), temperature,
                     top_k, top_p, u.ctypes.data, threads or torch.get_num_threads(), out.data_ptr()):
        raise MemoryError("the sampling kernel could not allocate its scratch")
    return out


def position_major(batch: int, heads: int, length: int, head_dim: int, *, dtype: torch.dtype,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """An uninitialised (batch, heads, length, head_dim) cache tensor stored position-major: position j
    of every row is one contiguous block, which is how `partial_attention` streams it fastest. Inside
    `reusing(buffers)` its storage comes from there."""
    return _storage(length * batch * heads * head_dim, dtype, device).view(length, batch, heads, head_dim) \
        .permute(1, 2, 0, 3)


_active = threading.local()


@contextlib.contextmanager
def reusing(buffers: dict | None) -> Iterator[None]:
    """Inside the block, `position_major` takes its storage from `buffers` ((numel, dtype) → tensors), a dict the
    caller keeps between blocks — sampling batch after batch then reuses the last batch's caches (about 1 GB
    for 512 Kronos-small rows) instead of faulting fresh pages in, which this VM does at ~3 GB/s: ~2 % of a
    batch. Nothing made inside may outlive the block; buffers the block did not use are dropped after it.
    `buffers=None`: plain allocations."""
    if buffers is None:
        yield
        return
    before = getattr(_active, "pool", None)
    pool = {"free": {key: list(found) for key, found in buffers.items()}, "used": {}}
    _active.pool = pool
    try:
        yield
    finally:
        _active.pool = before
        buffers.clear()
        buffers.update(pool["used"])


def _storage(numel: int, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    pool = getattr(_active, "pool", None)
    if pool is None or torch.device(device or "cpu").type != "cpu":
        return torch.empty(numel, dtype=dtype, device=device)
    key = (numel, dtype)
    free = pool["free"].get(key)
    buf = free.pop() if free else torch.empty(numel, dtype=dtype)
    pool["used"].setdefault(key, []).append(buf)
    return buf
