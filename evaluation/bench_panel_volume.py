"""Does coupling volume keep panels' return correlation, on panels outside the benchmark?

For each panel market, Kronos panels (embedded default, zero-shot, train-period contexts, 1 000 panels)
with and without `volume_coupling`, against the real test- and train-period panels: the mean pairwise
correlation of close log returns, the volume co-movement (mean pairwise correlation of log-volume
changes) and the panel discriminative error against the real test-period panels (`--repeats`, time-block
split), all from `kronos_synth.metrics.panel`; the real train-period panels get the same classifier.

    python recipes/pretrain.py heldout-data          # the held-out instruments' 15-minute files
    python -m evaluation.bench_panel_volume          # → evaluation/results/panel-volume/

Markets: four Binance pairs the pretraining corpus held out (AVA, LTO, RLC, YGG; 15 min, 2024) and the two
embedded US indices (S&P 500 and NASDAQ, daily; their train period is in the corpus, so only the test period
is out of sample). Markets whose files are missing are skipped with one line. Resumable: one row per
(market, setting) in results.json under the hash of its settings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.protocol import GAPS, RESULTS_DIR, settings_key

HELDOUT = ("AVAUSDT-15m", "LTOUSDT-15m", "RLCUSDT-15m", "YGGUSDT-15m")


def _markets(heldout_dir: Path) -> dict[str, tuple[str, pd.DataFrame | None, tuple[str, ...], int]]:
    from kronos_synth.data.datasets import load_dataset
    from kronos_synth.data.sources import load_klines

    files = [heldout_dir / f"{s}.feather" for s in HELDOUT]
    alts = load_klines(str(heldout_dir / "*USDT-15m.feather")) if all(f.exists() for f in files) else None
    indices = pd.concat([load_dataset("sp500-daily"), load_dataset("nasdaq-daily")], ignore_index=True)
    return {"heldout-alts-15m": ("15min", alts, HELDOUT, 96), "us-indices-daily": ("daily", indices, ("SPX", "IXIC"), 24)}


def _pairwise(c: np.ndarray) -> float:
    return float(c[~np.eye(len(c), dtype=bool)].mean())


def measure(freq: str, klines: pd.DataFrame, symbols: tuple[str, ...], horizon: int, *, volume_coupling: bool,
            n_panels: int, seed: int, repeats: int) -> dict:
    import torch

    from kronos_synth.data.panels import panel_windows
    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.generate.config import GenerationConfig
    from kronos_synth.generate.panel import PanelGenerator
    from kronos_synth.metrics.panel import mean_correlation, panel_discriminative_score, volume_comovement
    from kronos_synth.model.pretrained import load_model_pair

    torch.set_num_threads(1)
    cfg = GenerationConfig(freq=freq, lookback=120, horizon=horizon, top_p=1.0, seed=seed, split="train",
                           panel=symbols, samples_per_context=4, contexts_per_symbol=250, batch_size=256, dtype="fp32",
                           gaps=GAPS, volume_coupling=volume_coupling)
    out: dict = {}
    windows = {split: panel_windows(klines, symbols, cfg.preset.name, horizon, split=split) for split in ("test", "train")}
    test = windows["test"]
    real_time = test.timestamps[:, [0, -1]].astype("int64")

    def disc(bars: np.ndarray, synthetic_time: np.ndarray | None = None) -> dict:
        d = panel_discriminative_score(test.values, bars, repeats=repeats, epochs=20, seed=seed, threads=1, real_time=real_time,
                                       synthetic_time=synthetic_time)
        return {"mean": d.error.mean, "half_width": d.error.half_width}

    for split, w in windows.items():
        out[f"real {split}"] = {"panels": len(w), "correlation": _pairwise(mean_correlation(w.values)),
                                "volume_comovement": volume_comovement(w.values)}
    take = np.unique(np.linspace(0, len(windows["train"]) - 1, min(n_panels, len(windows["train"]))).round().astype(int))
    train = windows["train"]
    out["real train"]["discriminative"] = disc(train.values[take], train.timestamps[take][:, [0, -1]].astype("int64"))
    t0 = time.perf_counter()
    gen = PanelGenerator(load_model_pair(None), klines, cfg, source="bench")
    with tempfile.TemporaryDirectory() as tmp:
        gen.write_panels(tmp, n_panels, progress=False)
        bars = read_synthetic(tmp).to_panels()[0]
    out["kronos"] = {"panels": len(bars), "correlation": _pairwise(mean_correlation(bars)),
                     "volume_comovement": volume_comovement(bars), "seconds": round(time.perf_counter() - t0, 1),
                     "discriminative": disc(bars),
                     **{k: gen.metadata[k] for k in ("mean_copula_correlation", "mean_volume_copula_correlation")
                        if k in gen.metadata}}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heldout-dir", default="corpus-src/heldout-15m")
    ap.add_argument("--n-panels", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10, help="panel discriminative repeats")
    ap.add_argument("--out", default=str(RESULTS_DIR / "panel-volume"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    rows = json.loads(path.read_text()) if path.exists() else {}
    for market, (freq, klines, symbols, horizon) in _markets(Path(args.heldout_dir)).items():
        if klines is None:
            print(f"{market}: skipped — no {', '.join(symbols)} files in {args.heldout_dir}")
            continue
        for coupled in (True, False):
            name = f"{market} · volume coupling {'on' if coupled else 'off'}"
            key = settings_key({"n_panels": args.n_panels, "seed": args.seed, "symbols": symbols, "horizon": horizon,
                                "volume_coupling": coupled, "gaps": GAPS, "repeats": args.repeats})
            if rows.get(name, {}).get("key") != key:
                rows[name] = {"key": key, **measure(freq, klines, symbols, horizon, volume_coupling=coupled,
                                                    n_panels=args.n_panels, seed=args.seed, repeats=args.repeats)}
                path.write_text(json.dumps(rows, indent=1) + "\n")
            r = rows[name]
            print(f"{name}: correlation {r['kronos']['correlation']:.3f} (real test {r['real test']['correlation']:.3f}, "
                  f"train {r['real train']['correlation']:.3f}), volume co-movement "
                  f"{r['kronos']['volume_comovement']:.3f} (real test {r['real test']['volume_comovement']:.3f}, "
                  f"train {r['real train']['volume_comovement']:.3f}), discriminative "
                  f"{r['kronos']['discriminative']['mean']:.3f} ± {r['kronos']['discriminative']['half_width']:.3f} "
                  f"(real train {r['real train']['discriminative']['mean']:.3f})")


if __name__ == "__main__":
    main()
