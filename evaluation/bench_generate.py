"""Generation speed: our KV-cached sampler vs the reference `auto_regressive_inference`.

Same seeded random Kronos-small-shaped weights (tokenizer: Kronos-Tokenizer-base shape), same real
contexts (15-minute BTC bars when the crypto benchmark folder `evaluation.protocol.CRYPTO_DATA_DIR` is
present, else an embedded dataset), lookback 120, horizon 96, T = 1, top-p 0.95, measured side by side in
one process:

  (c) reference, batch B (sample_count=1)                     vs ours, fp32, the same batch B
  (b) ours, --dtype (auto: bf16 where fast), --batch, one context per sequence, --n-distinct sequences
  (a) ours, the same with --samples-per-context S (S samples share a context's prefill and one copy of its
      K/V in attention, as `kronos-synth generate --samples-per-context` runs), --n sequences
  --compare-per-row adds (a) with per-row attention (every sample its own copy of the context's K/V, the
  sampler before shared-prefix attention) for the old/new ratio in the same run.

  python -m evaluation.bench_generate --ref-batch 32 --n 6000 --n-distinct 6000 --batch 512 \\
      --samples-per-context 10 --compare-per-row --out docs/performance.md

Writes a Markdown section to --out (replacing an earlier one) and prints it. Three micro-benchmarks print a
table instead (nothing written): --attention (one layer's single-query attention over the KV cache: time
and GB/s read, per-row vs shared prefix, fp32 vs bf16 prefix, beside a plain read of memory) and
--decode-step (one decode step at a steady state: per-row vs shared prefix, fp32 vs bf16), both on PyTorch's
path (KRONOS_SYNTH_NATIVE=0); --kernel (the compiled attention kernel against PyTorch's path: one layer's
attention in GB/s, and sampling --batch sequences with and without it).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import platform
import time

import numpy as np
import torch

from evaluation.markdown import replace_section
from evaluation.protocol import CRYPTO_DATA_DIR
from kronos_synth.generate.device import keep_freed_memory, resolve_dtype
from kronos_synth.generate.rng import counter_uniform
from kronos_synth.generate.sampler import (
    SamplingConfig,
    decode_horizon,
    encode_contexts,
    sample_from_logits,
    sample_tokens,
    shared_groups,
)
from kronos_synth.model import InstanceNorm, Kronos, KronosTokenizer, SharedPrefixCache, native, time_features
from kronos_synth.model.cache import SUFFIX_BLOCK, SharedKV
from kronos_synth.model.layers import shared_prefix_attention, single_query_attention

HEADING = "## Generation speed vs the reference"
CRYPTO = CRYPTO_DATA_DIR / "BTCUSDT_15m.csv"
CFG = SamplingConfig(temperature=1.0, top_k=0, top_p=0.95)


def _perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)


def contexts(n: int, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray, str]:
    """n real windows (raw bars) and the timestamps of context + future."""
    from kronos_synth.data.calendar import SessionCalendar
    from kronos_synth.data.sources import load_klines
    from kronos_synth.data.splits import extract_windows

    source = str(CRYPTO) if CRYPTO.exists() else "eurusd-1h"
    df = load_klines(source)
    w = extract_windows(df, lookback, stride=1)
    idx = np.linspace(0, len(w) - 1, n).round().astype(int)
    cal = SessionCalendar.fit(df["timestamps"])
    ts = np.concatenate([w.timestamps[idx], cal.next_many(w.timestamps[idx, -1], horizon)], axis=1)
    return w.values[idx], ts, os.path.basename(source)


def ours(tok, model, x, ts, horizon, batch, dtype, samples_per_context=1, shared_prefix=True) -> dict:
    """Generate (and decode) len(x) sequences: sequence i continues x[i] (rows i of one context must be
    consecutive, i // samples_per_context, as the generator orders them). → total and per-phase seconds."""
    m = model if dtype == torch.float32 else _cast(model, dtype)
    norm = InstanceNorm()
    phases = dict(tokenize=0.0, sample=0.0, detokenize=0.0)
    buffers: dict = {}  # the caches' storage, reused batch after batch as the generator does
    t0 = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            t = time.perf_counter()
            xb = x[lo:lo + batch]
            stats = norm.fit(xb)
            s1, s2 = encode_contexts(tok, torch.from_numpy(norm.transform(xb, stats)))
            stamps = torch.from_numpy(time_features(ts[lo:lo + batch]))
            phases["tokenize"] += time.perf_counter() - t
            t = time.perf_counter()
            g1, g2 = sample_tokens(m, s1, s2, stamps, horizon, CFG, seed=0, sequence_ids=np.arange(lo, lo + len(xb)),
                                   samples_per_context=samples_per_context, shared_prefix=shared_prefix,
                                   buffers=buffers)
            phases["sample"] += time.perf_counter() - t
            t = time.perf_counter()
            z = decode_horizon(tok, torch.cat([s1, g1], 1), torch.cat([s2, g2], 1), horizon,
                               share_context=samples_per_context > 1)
            norm.inverse(z.numpy(), stats)
            phases["detokenize"] += time.perf_counter() - t
    return {"total": time.perf_counter() - t0, **phases}


_CASTS: dict = {}


def _cast(model, dtype):
    key = (id(model), dtype)
    if key not in _CASTS:
        _CASTS[key] = copy.deepcopy(model).to(dtype).eval()
    return _CASTS[key]


def reference(ref_tok, ref_model, x, ts, horizon) -> float:
    from model.kronos import auto_regressive_inference

    norm = InstanceNorm()
    stats = norm.fit(x)
    xn = torch.from_numpy(norm.transform(x, stats))
    stamps = torch.from_numpy(time_features(ts))
    lookback = x.shape[1]
    t0 = time.perf_counter()
    auto_regressive_inference(ref_tok, ref_model, xn, stamps[:, :lookback], stamps[:, lookback:], 512, horizon,
                              T=CFG.temperature, top_k=CFG.top_k, top_p=CFG.top_p, sample_count=1)
    return time.perf_counter() - t0


def _best(fns: dict, rounds: int) -> dict:
    """Fastest of `rounds` runs of each callable, run in turn (a loaded machine slows them alike)."""
    best = {k: float("inf") for k in fns}
    for f in fns.values():
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            best[k] = min(best[k], time.perf_counter() - t)
    return best


def _machine() -> str:
    return (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s), 1-min load average {os.getloadavg()[0]:.1f}")


@torch.no_grad()
def attention_bench(batch: int, samples_per_context: int, lookback: int, suffixes: list[int], rounds: int) -> str:
    """One Kronos-small attention layer (8 heads of 64) at decode time: the query of each of `batch` rows over
    its context (lookback positions) and its own generated positions (suffix). Bytes = the K/V read."""
    H, K, G = 8, 64, samples_per_context
    ids = np.arange(batch)
    group, place = torch.as_tensor(ids // G), torch.as_tensor(ids % G)
    g = torch.Generator().manual_seed(0)
    full_k = torch.randn(batch, H, lookback + max(suffixes), K, generator=g)
    full_v = torch.randn(batch, H, lookback + max(suffixes), K, generator=g)
    prefix_k, prefix_v = full_k[::G, :, :lookback].contiguous(), full_v[::G, :, :lookback].contiguous()
    full_k[:, :, :lookback], full_v[:, :, :lookback] = prefix_k[group], prefix_v[group]  # the per-row copies
    suffix_k, suffix_v = full_k[:, :, lookback:].clone(), full_v[:, :, lookback:].clone()
    q = torch.randn(batch, H, 1, K, generator=g)
    stream = torch.randn(64 * 2 ** 20, generator=g)  # 256 MB, to read as fast as memory allows
    lines = [f"One attention layer (8 heads × 64) at decode time, {batch} rows, {G} samples per context, context "
             f"{lookback} positions; {_machine()}; fastest of {rounds}. GB/s = K/V bytes the attention reads ÷ time "
             f"(shared prefix: the suffix's whole dense capacity, a multiple of {SUFFIX_BLOCK} positions).",
             "", "| generated positions | per-row fp32 (before) | shared prefix, fp32 | shared prefix, bf16 prefix "
             "| shared/per-row (fp32, bf16) | plain read of memory |", "|---|---|---|---|---|---|"]
    for s in suffixes:
        c = -(-s // SUFFIX_BLOCK) * SUFFIX_BLOCK  # the shared cache keeps its suffix dense, grown in blocks
        kv = SharedKV(prefix_k, prefix_v, suffix_k[:, :, :c].contiguous(), suffix_v[:, :, :c].contiguous(), s,
                      group, place, G)
        lines.append(_attention_row(q, full_k[:, :, :lookback + s], full_v[:, :, :lookback + s], kv, stream, rounds))
    return "\n".join(lines) + "\n"


def _attention_row(q, full_k, full_v, kv32: SharedKV, stream, rounds) -> str:
    kv16 = kv32._replace(prefix_k=kv32.prefix_k.bfloat16(), prefix_v=kv32.prefix_v.bfloat16())
    t = _best({"row": lambda: single_query_attention(q, full_k, full_v),
               "f32": lambda: shared_prefix_attention(q, kv32), "b16": lambda: shared_prefix_attention(q, kv16),
               "read": lambda: stream.sum()}, rounds)
    (B, H, C, K), (N, _, P, _), s = kv32.k.shape, kv32.prefix_k.shape, kv32.length
    suffix = 2 * B * H * C * K * 4  # all C positions are read
    read = {"row": full_k.numel() * 8, "f32": 2 * N * H * P * K * 4 + suffix, "b16": 2 * N * H * P * K * 2 + suffix}

    def cell(k):
        return f"{t[k] * 1e3:.2f} ms, {read[k] / t[k] / 1e9:.1f} GB/s"

    return (f"| {s} | {cell('row')} | {cell('f32')} | {cell('b16')} | {t['row'] / t['f32']:.2f}×, "
            f"{t['row'] / t['b16']:.2f}× | {stream.numel() * 4 / t['read'] / 1e9:.1f} GB/s |")


@torch.no_grad()
def decode_step_bench(model: Kronos, batch: int, samples_per_context: int, lookback: int, generated: int,
                      rounds: int) -> str:
    """One decode step (s1 logits, both draws, s2 logits) of `batch` rows that have generated `generated` bars
    after a `lookback`-bar context (48 = the mean over a 96-bar horizon), caches filled with random values."""
    S, horizon = samples_per_context, 2 * generated
    if S < 2:
        raise SystemExit("--decode-step compares shared-prefix with per-row attention: use --samples-per-context ≥ 2")
    ids = np.arange(batch)
    context = torch.as_tensor(ids // S)
    steps, models = {}, {"fp32": model, "bf16": _cast(model, torch.bfloat16)}
    for dname, m in models.items():
        for kind in ("per-row", "shared"):
            if kind == "per-row":
                cache = m.init_cache(batch, lookback + horizon)
                tensors = [*cache.k, *cache.v, cache.dep_k, cache.dep_v]
            else:
                per_context = m.init_cache(int(context.max()) + 1, lookback)
                for t in [*per_context.k, *per_context.v, per_context.dep_k, per_context.dep_v]:
                    t.normal_()
                per_context.length = lookback
                cache = SharedPrefixCache.from_prefix(per_context, *shared_groups(context, ids, S), S, horizon,
                                                      prefix_dtype=next(m.parameters()).dtype)
                cache.reserve(generated + 1)
                tensors = [*cache.k, *cache.v, cache.dep_k, cache.dep_v]
            for t in tensors:
                t.normal_()
            steps[f"{dname} {kind}"] = _step(m, cache, lookback + generated, ids)
    t = _best(steps, rounds)
    per = {k: v / batch * 1e3 for k, v in t.items()}
    lines = [f"One decode step (s1 logits, two draws, s2 logits), Kronos-small shape, {batch} rows, {S} samples per "
             f"context, {lookback} context + {generated} generated positions; {_machine()}; fastest of {rounds}.", "",
             "| dtype | per-row attention (before) | shared prefix | ratio |", "|---|---|---|---|"]
    lines += [f"| {d} | {per[f'{d} per-row']:.3f} ms/sequence-step | {per[f'{d} shared']:.3f} ms/sequence-step | "
              f"{per[f'{d} per-row'] / per[f'{d} shared']:.2f}× |" for d in models]
    lines.append(f"\nbf16 vs fp32, shared prefix: {per['fp32 shared'] / per['bf16 shared']:.2f}×; new bf16 vs old fp32: "
                 f"{per['fp32 per-row'] / per['bf16 shared']:.2f}×.")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _kernel(on: bool):
    """Run with (on) or without the compiled attention kernel (KRONOS_SYNTH_NATIVE)."""
    before = os.environ.get("KRONOS_SYNTH_NATIVE")
    os.environ["KRONOS_SYNTH_NATIVE"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["KRONOS_SYNTH_NATIVE"]
        else:
            os.environ["KRONOS_SYNTH_NATIVE"] = before


@torch.no_grad()
def kernel_bench(tok, model, batch: int, samples_per_context: int, lookback: int, horizon: int, rounds: int) -> str:
    """The compiled attention kernel against PyTorch's path: one layer's single-query attention over a per-row
    cache (GB/s of K/V read), and `sample_tokens` + decode of `batch` sequences with and without it."""
    if not native.available():
        raise SystemExit("--kernel needs the compiled kernel (a C compiler)")
    H, K, C = 8, 64, lookback + horizon
    g = torch.Generator().manual_seed(0)
    k32, v32 = (torch.randn(batch, H, C, K, generator=g) for _ in range(2))
    pm = {dt: [native.position_major(batch, H, C, K, dtype=dt) for _ in range(2)] for dt in (torch.float32, torch.bfloat16)}
    for pk, pv in pm.values():
        pk.copy_(k32), pv.copy_(v32)
    q = torch.randn(batch, H, 1, K, generator=g)
    stream = torch.randn(64 * 2 ** 20, generator=g)
    lines = [f"One attention layer (8 heads × 64) at decode time over a per-row cache, {batch} rows, {lookback} context "
             f"positions; {_machine()}; fastest of {rounds}. GB/s = K/V bytes read ÷ time.", "",
             "| positions | PyTorch, fp32 row-major (no kernel) | kernel, fp32 position-major | kernel, bf16 position-major "
             "| plain read of memory |", "|---|---|---|---|---|"]
    for n in (lookback + 1, lookback + horizon // 2, C - 1):
        with _kernel(False):
            t = _best({"torch": lambda n=n: single_query_attention(q, k32[:, :, :n], v32[:, :, :n])}, rounds)
        t |= _best({str(dt): lambda dt=dt, n=n: native.partial_attention(q[:, :, 0], *pm[dt], n) for dt in pm}
                   | {"read": lambda: stream.sum()}, rounds)
        cells = [f"{t[key] * 1e3:.2f} ms, {2 * batch * H * n * K * size / t[key] / 1e9:.1f} GB/s"
                 for key, size in (("torch", 4), ("torch.float32", 4), ("torch.bfloat16", 2))]
        lines.append(f"| {n} | {' | '.join(cells)} | {stream.numel() * 4 / t['read'] / 1e9:.1f} GB/s |")
    x, ts, _ = contexts(batch, lookback, horizon)
    lines += ["", f"`sample_tokens` + tokenizer, {batch} sequences, bf16, without and with the kernel (each run once, "
              "in turn):", "", "| samples per context | PyTorch path: tokenize / sample / detokenize (s) | kernel (s) "
              "| sampling ratio |", "|---|---|---|---|"]
    for spc in (1, samples_per_context):
        share = np.arange(batch) // spc
        runs = {}
        for on in (False, True):
            with _kernel(on):
                runs[on] = ours(tok, model, x[share], ts[share], horizon, batch, torch.bfloat16, spc)
        split = {on: " / ".join(f"{r[k]:.1f}" for k in ("tokenize", "sample", "detokenize")) for on, r in runs.items()}
        lines.append(f"| {spc} | {split[False]} | {split[True]} | {runs[False]['sample'] / runs[True]['sample']:.2f}× |")
    return "\n".join(lines) + "\n"


def _step(model, cache, length, ids):
    g = torch.Generator().manual_seed(0)
    s1 = torch.randint(0, 1024, (len(ids), 1), generator=g)
    s2 = torch.randint(0, 1024, (len(ids), 1), generator=g)
    stamp = torch.zeros(len(ids), 1, 5)

    def step():
        cache.length = length
        logits, ctx = model.decode_s1_cached(s1, s2, stamp, cache, last_only=True)
        first = sample_from_logits(logits[:, -1], counter_uniform(0, ids, 0, 0), CFG)
        s2_logits = model.decode_s2_cached(ctx, first.unsqueeze(1), cache)
        sample_from_logits(s2_logits.reshape(len(ids), -1), counter_uniform(0, ids, 0, 1), CFG)
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-batch", type=int, default=32, help="(c): batch of the reference and of our fp32 row")
    ap.add_argument("--n", type=int, default=6000, help="(a): sequences, --samples-per-context per context")
    ap.add_argument("--batch", type=int, default=512, help="(a), (b): batch size")
    ap.add_argument("--samples-per-context", type=int, default=10)
    ap.add_argument("--n-distinct", type=int, default=1024, help="(b): sequences, one context each (0: skip)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"], help="(a), (b): weights dtype")
    ap.add_argument("--compare-per-row", action="store_true",
                    help="add (a) with per-row attention (before shared-prefix attention)")
    ap.add_argument("--lookback", type=int, default=120)
    ap.add_argument("--horizon", type=int, default=96)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--attention", action="store_true", help="print the attention micro-benchmark and stop")
    ap.add_argument("--decode-step", action="store_true", help="print the decode-step micro-benchmark and stop")
    ap.add_argument("--kernel", action="store_true",
                    help="print the compiled attention kernel vs PyTorch's path (attention and sampling) and stop")
    ap.add_argument("--rounds", type=int, default=7, help="micro-benchmarks: runs of each variant")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    keep_freed_memory()  # as the CLI does
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Kronos.from_config("Kronos-small").eval()
    _perturb(model, 2)
    if args.attention:
        with _kernel(False):
            print(attention_bench(args.batch, args.samples_per_context, args.lookback, [1, args.horizon // 2,
                                                                                        args.horizon - 1], args.rounds))
        return
    if args.decode_step:
        with _kernel(False):
            print(decode_step_bench(model, args.batch, args.samples_per_context, args.lookback, args.horizon // 2,
                                    args.rounds))
        return
    tok = KronosTokenizer.from_config("Kronos-Tokenizer-base").eval()
    _perturb(tok, 1)
    if args.kernel:
        print(kernel_bench(tok, model, args.batch, args.samples_per_context, args.lookback, args.horizon, args.rounds))
        return
    x, ts, source = contexts(max(args.n, args.ref_batch, args.n_distinct), args.lookback, args.horizon)
    rows, ref_rate = [], None

    def add(name, dname, batch, n, times):
        rows.append((name, dname, batch, n, times))
        print(rows[-1], flush=True)

    if not args.skip_reference:
        import model as ref_pkg  # PyPI kronos-model-arch

        ref_tok = ref_pkg.KronosTokenizer(**tok.config).eval()
        ref_model = ref_pkg.Kronos(**model.config).eval()
        ref_tok.load_state_dict(tok.state_dict()), ref_model.load_state_dict(model.state_dict())
        t = reference(ref_tok, ref_model, x[:args.ref_batch], ts[:args.ref_batch], args.horizon)
        ref_rate = args.ref_batch / t
        add("reference auto_regressive_inference", "fp32", args.ref_batch, args.ref_batch, {"total": t})
    add("kronos-synth sampler", "fp32", args.ref_batch, args.ref_batch,
        ours(tok, model, x[:args.ref_batch], ts[:args.ref_batch], args.horizon, args.ref_batch, torch.float32))
    fp32_ratio = args.ref_batch / rows[-1][4]["total"] / ref_rate if ref_rate else None
    dtype, note = resolve_dtype(args.dtype, torch.device("cpu"))
    dname = str(dtype).replace("torch.", "")
    if args.n_distinct:
        n = args.n_distinct
        add("kronos-synth sampler, 1 sample per context", dname, args.batch, n,
            ours(tok, model, x[:n], ts[:n], args.horizon, args.batch, dtype))
    spc = args.samples_per_context
    share = np.arange(args.n) // spc  # S consecutive sequences per context, as the generator orders them
    variants = [(True, f"kronos-synth sampler, {spc} samples per context")]
    if args.compare_per_row:
        variants.append((False, f"kronos-synth sampler, {spc} samples per context, per-row attention (before)"))
    for shared, name in variants:
        add(name, dname, args.batch, args.n,
            ours(tok, model, x[share], ts[share], args.horizon, args.batch, dtype, spc, shared_prefix=shared))
    best = rows[-len(variants)]

    cmd = "python -m evaluation.bench_generate " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()
        if k not in ("out", "attention", "decode_step", "kernel", "rounds") and v not in (None, False))
    lines = [HEADING, "",
             f"Kronos-small shape (24.7 M parameters, seeded random weights), Kronos-Tokenizer-base shape; "
             f"lookback {args.lookback} → horizon {args.horizon}; T = 1.0, top-p 0.95; contexts: {source}. "
             f"Machine: {_machine()}. Measured side by side in one run on {time.strftime('%Y-%m-%d %H:%M')}:", "",
             f"    {cmd}", "",
             "| sampler | dtype | batch | sequences | wall time (s) | sequences/s | tokenize / sample / detokenize (s) |",
             "|---|---|---|---|---|---|---|"]
    for name, d, batch, n, tm in rows:
        split = " / ".join(f"{tm[k]:.1f}" for k in ("tokenize", "sample", "detokenize")) if "sample" in tm else "—"
        lines.append(f"| {name} | {d} | {batch} | {n} | {tm['total']:.1f} | {n / tm['total']:.2f} | {split} |")
    lines.append("")
    if ref_rate:
        lines.append(f"- fp32 at equal batch size ({args.ref_batch}): **{fp32_ratio:.0f}×** the reference.")
        lines.append(f"- best setting ({best[1]}, batch {args.batch}, {spc} samples per context): "
                     f"**{args.n / best[4]['total'] / ref_rate:.0f}×** the reference; "
                     f"{args.n} sequences in **{best[4]['total'] / 60:.1f} minutes** (reference at its measured rate: "
                     f"{args.n / ref_rate / 3600:.1f} hours).")
    if args.compare_per_row:
        lines.append(f"- shared-prefix vs per-row attention, {spc} samples per context: "
                     f"**{rows[-1][4]['total'] / best[4]['total']:.2f}×** end to end, "
                     f"{rows[-1][4]['sample'] / best[4]['sample']:.2f}× in sampling.")
    lines.append(f"- {note}.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        replace_section(args.out, HEADING, text)


if __name__ == "__main__":
    main()
