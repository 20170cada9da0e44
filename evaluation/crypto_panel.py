"""The crypto-panel protocol: coupled multi-asset panels of BTC, ETH, BNB and ADA (15-minute bars).

    python -m evaluation.run crypto-panel [--data-dir DIR] [--quick]   → evaluation/results/crypto-panel/

Every generator produces `n_panels` panels of the four assets on shared timestamps, horizon `window`
bars, from the train period; every set is scored against the real test-period panels (all windows of
`window` shared bars, stride 1) with the panel metrics (`kronos_synth.metrics.panel`): correlation
error, eigenvalue spectrum, lower-tail dependence and the cross-sectional discriminative score.

Rows: Kronos with the Gaussian copula (return-ordered tokens, volume coupled too, copulas calibrated by
the pilot's coupling gains), the same with returns coupled only (the draw before volume was), with a
Student-t copula (4 degrees of freedom), and without the calibration (the copula correlations are the
context's), Kronos per asset without coupling (same sampler, identity correlation: shows what the coupling
adds), Kronos coupled with the default probability-ordered draw (shows why tokens are ordered by return),
a constant-correlation GARCH, and the synchronised block bootstrap — plus the real-vs-real rows (train vs
test period; the train period with each asset from another day at the same time of day; first vs second
half of the test period; shuffled assets).

Resumable: each generated set is a schema-v1 folder under work/ (Kronos sets resume part by part) and
each scored row is kept in rows.json under the hash of its settings, so a rerun skips what is done.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.protocol import GAPS, settings_key, stage_seed

ASSETS_ORDER = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT")
#: bumped when a panel metric is added: every row is scored again (generated sets are reused from work/)
METRICS_VERSION = 4  # 2: volume co-movement; 4: the panel classifier reads running pairwise co-movement channels


def _symbols(klines) -> tuple[str, ...]:
    have = sorted(klines["symbol"].astype(str).unique())
    ordered = [s for a in ASSETS_ORDER for s in have if s.startswith(a)]
    return tuple(ordered + [s for s in have if s not in ordered])


def _kronos_panels(klines, symbols, proto: dict, work: Path, *, coupling: str, order_by_return: bool,
                   echo, calibrate: bool = True, temperature_spread: float = 0.0,
                   volatility_spread: float = 0.0, volume_coupling: bool = True) -> np.ndarray:
    import torch

    from kronos_synth.data.synthetic import read_synthetic
    from kronos_synth.generate.config import GenerationConfig
    from kronos_synth.generate.panel import PanelGenerator
    from kronos_synth.model.pretrained import load_model_pair

    p = proto["panel"]
    cfg = GenerationConfig(freq=proto["freq"], lookback=int(p["lookback"]), horizon=int(proto["window"]),
                           top_p=float(p["top_p"]), seed=int(proto["seed"]), split="train", panel=symbols,
                           coupling=coupling, samples_per_context=int(p["samples_per_context"]),
                           contexts_per_symbol=int(p["contexts"]), batch_size=256, dtype=p["dtype"],
                           temperature_spread=temperature_spread, volatility_spread=volatility_spread, gaps=GAPS,
                           volume_coupling=volume_coupling)
    torch.set_num_threads(int(proto["run"]["threads"]))
    gen = PanelGenerator(load_model_pair(p.get("model") or None), klines, cfg, source="crypto-panel",
                         order_by_return=order_by_return, calibrate=calibrate)
    t0 = time.perf_counter()
    summary = gen.write_panels(str(work), int(p["n_panels"]), progress=False)
    echo(f"  {work.name}: {summary.line()} ({time.perf_counter() - t0:.0f} s)")
    return read_synthetic(work).to_panels()[0]


def _auto_spread(klines, proto: dict, folder: Path, model_sha: str, key: str, echo) -> float:
    """The panel model's per-path spread `key` (temperature_spread or volatility_spread) chosen on validation
    contexts of the train period, each symbol alone (`choose_spread`); cached in spread.json per model."""
    from kronos_synth.generate.conditional import KronosForecaster
    from kronos_synth.metrics.forecast_calibration import choose_spread
    from kronos_synth.model.pretrained import load_model_pair

    p, path = proto["panel"], folder / "spread.json"
    cached = json.loads(path.read_text()) if path.exists() else {}
    cached = cached.get(key, cached if key == "temperature_spread" else {})  # (spread.json of temperature only)
    settings = {"model_sha256": model_sha, "contexts": p.get("spread_contexts", 100)}
    if {k: cached.get(k) for k in settings} == settings:
        return float(cached["spread"])
    pair = load_model_pair(p.get("model") or None)
    choice = choose_spread(
        klines, lambda s: KronosForecaster(pair, freq=proto["freq"], top_p=float(p["top_p"]), batch_size=256,
                                           dtype=p["dtype"], device="cpu", progress=False, **{key: s}),
        freq=proto["freq"], lookback=int(p["lookback"]), horizon=int(proto["window"]),
        n_contexts=int(p.get("spread_contexts", 100)), samples=int(p.get("spread_samples", 50)),
        seed=stage_seed(int(proto["seed"]), "spread"), label=key.replace("_", " "))
    echo(f"  {choice.line()}")
    everything = json.loads(path.read_text()) if path.exists() else {}
    everything = everything if "spread" not in everything else {"temperature_spread": everything}
    everything[key] = {**settings, "spread": choice.spread, "validation": choice.rows, "n_contexts": choice.n_contexts}
    path.write_text(json.dumps(everything, indent=1))
    return choice.spread


def run(proto: dict, folder: Path, files: list[str], echo=print) -> dict[str, Any]:
    from kronos_synth.baselines.panel import ConstantCorrelationGarch, SynchronizedBlockBootstrap
    from kronos_synth.data.panels import aligned_panel, panel_windows
    from kronos_synth.data.sources import load_klines
    from kronos_synth.metrics.panel import compare_panels, other_days, panel_calibration_rows

    p, horizon, freq = proto["panel"], int(proto["window"]), proto["freq"]
    klines = load_klines(str(Path(files[0]).parent / proto["data"]))
    symbols = _symbols(klines)
    test = panel_windows(klines, symbols, freq, horizon, split="test", gap=int(p["lookback"]) + horizon,
                         source="crypto-panel")
    train = panel_windows(klines, symbols, freq, horizon, split="train", gap=int(p["lookback"]) + horizon,
                          source="crypto-panel")
    runs = aligned_panel(klines, symbols, freq, split="train", gap=int(p["lookback"]) + horizon,
                         min_length=horizon + 1).runs(horizon + 1)
    rows_file = folder / "rows.json"
    done = json.loads(rows_file.read_text()) if rows_file.exists() else {}
    work = folder / "work"
    n_panels = int(p["n_panels"])
    metric = {"repeats": int(p["repeats"]), "epochs": int(p["epochs"]), "n": p.get("n_eval")}
    real_time = test.timestamps[:, [0, -1]].astype("int64")

    def row(name: str, settings: dict, make) -> None:
        key = settings_key({**settings, "metric": metric, "test": test.values.shape, "symbols": symbols,
                            "metrics": METRICS_VERSION})
        if done.get(name, {}).get("key") == key:
            echo(f"  {name}: done (key {key})")
            return
        t0 = time.perf_counter()
        bars = make()
        res = compare_panels(test.values, bars, seed=stage_seed(int(proto["seed"]), name), real_time=real_time,
                             threads=int(proto["run"]["threads"]), **metric)
        done[name] = {"key": key, "result": res.to_dict(), "settings": settings,
                      "seconds": round(time.perf_counter() - t0, 1)}
        rows_file.write_text(json.dumps(done, indent=1, default=float))
        c, e = res.correlation, res.discriminative
        echo(f"  {name}: mean pairwise corr {c.mean_pairwise_synthetic:.3f} (real {c.mean_pairwise_real:.3f}), "
             f"disc {e.error.mean:.3f} ± {e.error.half_width:.3f}")

    base = {"n_panels": n_panels, "horizon": horizon, "seed": int(proto["seed"])}
    from kronos_synth.model.hub import resolve_checkpoint
    from kronos_synth.model.pretrained import default_model_dir, weights_sha256

    # the weights are part of a row's key and of its folder: rows of another model (the default changes) rerun
    msha = weights_sha256(resolve_checkpoint(p["model"]) if p.get("model") else default_model_dir() / "model")
    kronos = {**base, "model": p.get("model") or "embedded", "model_sha256": msha, "lookback": int(p["lookback"]),
              "top_p": p["top_p"], "samples_per_context": p["samples_per_context"], "contexts": p["contexts"],
              "dtype": p["dtype"]}
    # Coupled rows couple volume too (the default, `volume_coupling`), except the "returns only" row: the draw
    # before volume was coupled. Rows where the setting does not act keep the keys they had.
    vol = {"volume_coupling": True}
    row("kronos (coupled)", {**kronos, "coupling": "gaussian", "calibrated": True, **vol},
        lambda: _kronos_panels(klines, symbols, proto, work / f"kronos-coupled-volume-{msha[:8]}", coupling="gaussian",
                               order_by_return=True, echo=echo))
    row("kronos (coupled, returns only)", {**kronos, "coupling": "gaussian", "calibrated": True},
        lambda: _kronos_panels(klines, symbols, proto, work / f"kronos-coupled-calibrated-{msha[:8]}", coupling="gaussian",
                               order_by_return=True, echo=echo, volume_coupling=False))
    for key, label in (("temperature_spread", "temperature spread"), ("volatility_spread", "volatility spread")):
        spread = p.get(key, 0.0)
        if spread == "auto":
            spread = _auto_spread(klines, proto, folder, msha, key, echo)
        if spread:
            tag = f"{key.split('_')[0]}{spread:g}"
            row(f"kronos (coupled, {label} {spread:g})",
                {**kronos, "coupling": "gaussian", "calibrated": True, key: float(spread), **vol},
                lambda tag=tag, key=key, spread=spread: _kronos_panels(
                    klines, symbols, proto, work / f"kronos-coupled-volume-{tag}-{msha[:8]}", coupling="gaussian",
                    order_by_return=True, echo=echo, **{key: float(spread)}))
    row("kronos (coupled, t copula)", {**kronos, "coupling": "t", "calibrated": True, **vol},
        lambda: _kronos_panels(klines, symbols, proto, work / f"kronos-coupled-volume-t-{msha[:8]}", coupling="t",
                               order_by_return=True, echo=echo))
    row("kronos (coupled, copula not calibrated)", {**kronos, "coupling": "gaussian", **vol},
        lambda: _kronos_panels(klines, symbols, proto, work / f"kronos-coupled-volume-{msha[:8]}-raw",
                               coupling="gaussian", order_by_return=True, calibrate=False, echo=echo))
    row("kronos (per asset, uncoupled)", {**kronos, "coupling": "none"},
        lambda: _kronos_panels(klines, symbols, proto, work / f"kronos-uncoupled-{msha[:8]}", coupling="none",
                               order_by_return=True, echo=echo))
    row("kronos (coupled, probability-ordered draw)", {**kronos, "coupling": "gaussian", "order": "probability"},
        lambda: _kronos_panels(klines, symbols, proto, work / f"kronos-coupled-probability-order-{msha[:8]}",
                               coupling="gaussian", order_by_return=False, echo=echo))
    seed = int(proto["seed"])
    row("constant-correlation GARCH", {**base, "model": "ccc-garch"},
        lambda: ConstantCorrelationGarch().fit(runs).sample(n_panels, horizon, seed=seed))
    row("synchronised block bootstrap", {**base, "model": "sync-bootstrap"},
        lambda: SynchronizedBlockBootstrap().fit(runs).sample(n_panels, horizon, seed=seed))
    take = np.unique(np.linspace(0, len(train) - 1, min(n_panels, len(train))).round().astype(int))
    row("real train period", {**base, "model": "real-train"}, lambda: train.values[take])
    # Can the classifier see co-movement at all? The same panels with each asset taken from another day's panel
    # that starts at the same time of day: intraday patterns stay aligned, day-to-day co-movement is gone.
    row("real train period, assets from other days", {**base, "model": "real-train-other-days"},
        lambda: other_days(train.values, train.timestamps[:, 0].astype("int64"), np.random.default_rng(seed))[take])

    key = settings_key({"metric": metric, "test": test.values.shape, "symbols": symbols, "calibration": 1,
                        "metrics": METRICS_VERSION})
    if done.get("_calibration", {}).get("key") != key:
        cal = panel_calibration_rows(test.values, seed=seed, threads=int(proto["run"]["threads"]), real_time=real_time,
                                     **metric)
        done["_calibration"] = {"key": key, "rows": {k: v.to_dict() for k, v in cal.items()}}
        rows_file.write_text(json.dumps(done, indent=1, default=float))
    report = write_report(proto, folder, done, symbols, len(test), len(train))
    return report


def write_report(proto: dict, folder: Path, done: dict, symbols: tuple[str, ...], n_test: int,
                 n_train: int) -> dict[str, Any]:
    """report.md + report.json of the finished rows."""
    lines = [f"# {proto['name']}", "",
             f"Panels of {', '.join(symbols)} ({proto['freq']}, {proto['window']} bars), scored against the "
             f"{n_test} real test-period panels (stride 1; the train period has {n_train}). Produced by "
             "`python -m evaluation.run crypto-panel`.", "",
             "| set | mean pairwise corr (real) | Frobenius corr error | largest eigenvalue (real) | "
             "λ_L 5 % (real) | volume co-movement (real) | panel discriminative error |", "|---|---|---|---|---|---|---|"]

    def fmt(name: str, r: dict) -> str:
        c, s, t = r["correlation"], r["spectrum"], r["tail_dependence"]
        v = r.get("volume_comovement") or {"synthetic": float("nan"), "real": float("nan")}
        d = r.get("discriminative")
        disc = f"{d['error']['mean']:.3f} ± {d['error']['half_width']:.3f}" if d else "—"
        return (f"| {name} | {c['mean_pairwise_synthetic']:.3f} ({c['mean_pairwise_real']:.3f}) | "
                f"{c['frobenius']:.3f} | {s['largest_synthetic']:.3f} ({s['largest_real']:.3f}) | "
                f"{t['synthetic']:.3f} ({t['real']:.3f}) | {v['synthetic']:.3f} ({v['real']:.3f}) | {disc} |")

    for name, v in done.items():
        if not name.startswith("_"):
            lines.append(fmt(name, v["result"]))
    for name, r in done.get("_calibration", {}).get("rows", {}).items():
        lines.append(fmt(f"calibration: {name}", r))
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    out = {"protocol": proto["name"], "symbols": list(symbols), "n_test_panels": n_test, "rows": done}
    (folder / "report.json").write_text(json.dumps(out, indent=1, default=float))
    return out
