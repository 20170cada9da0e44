"""Generation speed: our KV-cached sampler vs the reference `auto_regressive_inference`.

Same seeded random Kronos-small-shaped weights (tokenizer: Kronos-Tokenizer-base shape), same real
contexts (15-minute BTC bars when the crypto benchmark folder `evaluation.protocol.CRYPTO_DATA_DIR` is
present, else an embedded dataset), lookback 120, horizon 96, measured side by side in one process:

  1. reference, batch B (sample_count=1, T=1, top-p 0.95)        → sequences/s
  2. ours, fp32, the same batch B                                → sequences/s and the ratio
  3. ours, bf16 where fast, large batch, one context per sequence → sequences/s (on --n-distinct sequences)
  4. ours, best setting: as 3 with --samples-per-context S (S samples share a context's prefill, as
     `kronos-synth generate --samples-per-context` does), n sequences → wall time for n

  python -m evaluation.bench_generate --ref-batch 32 --n 6000 --batch 512 --samples-per-context 10 --out docs/performance.md

Writes a Markdown section to --out (replacing an earlier one) and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from evaluation.markdown import replace_section
from evaluation.protocol import CRYPTO_DATA_DIR
from kronos_synth.generate.device import resolve_dtype
from kronos_synth.generate.sampler import SamplingConfig, decode_horizon, encode_contexts, sample_tokens
from kronos_synth.model import InstanceNorm, Kronos, KronosTokenizer, time_features

HEADING = "## Generation speed vs the reference"
CRYPTO = CRYPTO_DATA_DIR / "BTCUSDT_15m.csv"


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


def ours(tok, model, x, ts, horizon, cfg, batch, dtype) -> float:
    """Seconds to generate (and decode) len(x) sequences (rows with equal contexts share their prefill)."""
    m = model if dtype == torch.float32 else _cast(model, dtype)
    norm = InstanceNorm()
    t0 = time.perf_counter()
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            xb = x[lo:lo + batch]
            stats = norm.fit(xb)
            s1, s2 = encode_contexts(tok, torch.from_numpy(norm.transform(xb, stats)))
            stamps = torch.from_numpy(time_features(ts[lo:lo + batch]))
            g1, g2 = sample_tokens(m, s1, s2, stamps, horizon, cfg, seed=0, sequence_ids=np.arange(lo, lo + len(xb)))
            z = decode_horizon(tok, torch.cat([s1, g1], 1), torch.cat([s2, g2], 1), horizon)
            norm.inverse(z.numpy(), stats)
    return time.perf_counter() - t0


_CASTS: dict = {}


def _cast(model, dtype):
    import copy

    key = (id(model), dtype)
    if key not in _CASTS:
        _CASTS[key] = copy.deepcopy(model).to(dtype).eval()
    return _CASTS[key]


def reference(ref_tok, ref_model, x, ts, horizon, cfg) -> float:
    from model.kronos import auto_regressive_inference

    norm = InstanceNorm()
    stats = norm.fit(x)
    xn = torch.from_numpy(norm.transform(x, stats))
    stamps = torch.from_numpy(time_features(ts))
    lookback = x.shape[1]
    t0 = time.perf_counter()
    auto_regressive_inference(ref_tok, ref_model, xn, stamps[:, :lookback], stamps[:, lookback:], 512, horizon,
                              T=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p, sample_count=1)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref-batch", type=int, default=32)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--samples-per-context", type=int, default=10)
    ap.add_argument("--n-distinct", type=int, default=1024, help="sequences for the one-context-each row")
    ap.add_argument("--lookback", type=int, default=120)
    ap.add_argument("--horizon", type=int, default=96)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    tok = KronosTokenizer.from_config("Kronos-Tokenizer-base").eval()
    model = Kronos.from_config("Kronos-small").eval()
    _perturb(tok, 1), _perturb(model, 2)
    cfg = SamplingConfig(temperature=1.0, top_k=0, top_p=0.95)
    x, ts, source = contexts(max(args.n, args.ref_batch), args.lookback, args.horizon)
    rows = []
    ref_rate = None
    if not args.skip_reference:
        import model as ref_pkg  # PyPI kronos-model-arch

        ref_tok = ref_pkg.KronosTokenizer(**tok.config).eval()
        ref_model = ref_pkg.Kronos(**model.config).eval()
        ref_tok.load_state_dict(tok.state_dict()), ref_model.load_state_dict(model.state_dict())
        t = reference(ref_tok, ref_model, x[:args.ref_batch], ts[:args.ref_batch], args.horizon, cfg)
        ref_rate = args.ref_batch / t
        rows.append(("reference auto_regressive_inference", "fp32", args.ref_batch, args.ref_batch, t, ref_rate))
        print(rows[-1], flush=True)
    t = ours(tok, model, x[:args.ref_batch], ts[:args.ref_batch], args.horizon, cfg, args.ref_batch, torch.float32)
    rows.append(("kronos-synth sampler", "fp32", args.ref_batch, args.ref_batch, t, args.ref_batch / t))
    print(rows[-1], flush=True)
    fp32_ratio = rows[-1][5] / ref_rate if ref_rate else None
    best_dtype, note = resolve_dtype("auto", torch.device("cpu"))
    dname = str(best_dtype).replace("torch.", "")
    if args.n_distinct:
        t = ours(tok, model, x[:args.n_distinct], ts[:args.n_distinct], args.horizon, cfg, args.batch, best_dtype)
        rows.append(("kronos-synth sampler, 1 sample per context", dname, args.batch, args.n_distinct, t,
                     args.n_distinct / t))
        print(rows[-1], flush=True)
    spc = args.samples_per_context
    share = np.arange(args.n) // spc  # S consecutive sequences per context, as the generator orders them
    t = ours(tok, model, x[share], ts[share], args.horizon, cfg, args.batch, best_dtype)
    rows.append((f"kronos-synth sampler, {spc} samples per context", dname, args.batch, args.n, t, args.n / t))
    print(rows[-1], flush=True)
    best_ratio = rows[-1][5] / ref_rate if ref_rate else None

    cmd = ("python -m evaluation.bench_generate " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "skip_reference")))
    lines = [HEADING, "",
             f"Kronos-small shape (24.7 M parameters, seeded random weights), Kronos-Tokenizer-base shape; "
             f"lookback {args.lookback} → horizon {args.horizon}; T = 1.0, top-p 0.95; contexts: {source}. "
             f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads. Measured side by side in one run "
             f"on {time.strftime('%Y-%m-%d')}:", "",
             f"    {cmd}", "",
             "| sampler | dtype | batch | sequences | wall time (s) | sequences/s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.1f} | {r[5]:.2f} |" for r in rows]
    lines.append("")
    if ref_rate:
        lines.append(f"- fp32 at equal batch size ({args.ref_batch}): **{fp32_ratio:.0f}×** the reference.")
        lines.append(f"- best setting ({rows[-1][1]}, batch {args.batch}, {spc} samples per context): "
                     f"**{best_ratio:.0f}×** the reference; "
                     f"{args.n} sequences in **{rows[-1][4] / 60:.1f} minutes** (reference at its measured rate: "
                     f"{args.n / ref_rate / 3600:.1f} hours).")
    lines.append(f"- {note}.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        replace_section(args.out, HEADING, text)



if __name__ == "__main__":
    main()
