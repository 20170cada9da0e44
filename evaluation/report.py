"""The protocol report: report.json (every number, setting and stage time), report.md and the combined plots.

Built from what the stages left on disk (stages.json, calibration.json, generators/<name>/report.json
and embeddings.npz), so it can be rebuilt at any time without rerunning anything.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.protocol import BASELINES, KRONOS, ROUNDTRIP

CALIBRATION_ROWS = ("real (train period)", "real (test, disjoint halves)", "shuffled bars")
ROW_LABELS = {KRONOS: "Kronos", ROUNDTRIP: "tokenizer round trip",
              "timegan": "TimeGAN", "timevae": "TimeVAE", "diffusion-ts": "Diffusion-TS", "garch": "GARCH(1,1)-t",
              "bootstrap": "block bootstrap", "real (train period)": "real (train period) / TRTR",
              "real (test, disjoint halves)": "real (test, disjoint halves)", "shuffled bars": "shuffled bars"}
GENERATOR_ORDER = (KRONOS, ROUNDTRIP, *BASELINES)
SWEEP_CRITERION = ("mean rank over (discriminative error ↑, TSTR price RankIC ↑, k-NN recall ↑); "
                   "ties go to the higher discriminative error")


def fmt(est: dict | None, digits: int = 3) -> str:
    """'mean ± half width' of an Estimate dict ('n/a' when missing)."""
    if not est or est.get("mean") is None or not math.isfinite(est["mean"]):
        return "n/a"
    hw = est.get("half_width")
    if hw is None or not math.isfinite(hw):
        return f"{est['mean']:.{digits}f}"
    return f"{est['mean']:.{digits}f} ± {hw:.{digits}f}"


def num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{float(x):.{digits}f}"


def table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows] + [""]


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def collect(proto: dict, folder: Path, log: dict, names: list[str] | None = None) -> dict:
    """Everything the report shows, as one JSON-able dict (`names`: the planned stages; others are stale)."""
    stages = {n: e for n, e in log.get("stages", {}).items() if names is None or n in names}

    def result(name):
        e = stages.get(name, {})
        return e.get("result") if e.get("status") == "finished" else None

    generators: dict[str, Any] = {}
    peers = (_read(folder / "peers.json") if result("peers") else None) or {}
    for g in proto["generators"]:
        rep = _read(folder / "generators" / g / "report.json") if result(f"evaluate:{g}") else None
        if rep is None:
            continue
        generators[g] = {
            "discriminative": rep["discriminative"]["synthetic"], "tstr": rep["tstr"]["synthetic"],
            "diversity": rep["diversity"], "memorization": rep["memorization"], "validity": rep["validity"],
            "seam": rep["seam"], "drift": rep["drift"], "peers": (peers.get("generators") or {}).get(g),
            "stylized": {"max_lag": rep["stylized"]["max_lag"], "rows": rep["stylized"]["rows"]} if rep["stylized"] else None,
            "data": {k: v for k, v in rep["data"].items() if k not in ("cleaning", "synthetic_metadata")},
            "synthetic_metadata": rep["data"].get("synthetic_metadata"), "notes": rep["notes"],
            "evaluation_settings": rep["settings"], "plots": [f"generators/{g}/{p}" for p in rep["plots"]],
        }
    calibration = _read(folder / "calibration.json") if result("calibration") else None
    sweep = [result(n) for n in sorted(stages) if n.startswith("sweep:") and result(n)]
    best = best_setting(sweep)
    wall = {n: e.get("wall_time_s") for n, e in stages.items() if e.get("status") in ("finished", "skipped")}
    skipped = {n: e["result"]["skipped"] for n, e in stages.items()
               if e.get("status") == "skipped" and e.get("result", {}).get("skipped")}
    headline: dict[str, dict] = {"discriminative_error": {}, "tstr_price_ic": {}, "tstr_price_rank_ic": {},
                                 "context_fid": {}}
    for g, r in generators.items():
        headline["discriminative_error"][g] = r["discriminative"]["error"]
        headline["tstr_price_ic"][g] = r["tstr"]["price_ic"]
        headline["tstr_price_rank_ic"][g] = r["tstr"]["price_rank_ic"]
        if (r["peers"] or {}).get("context_fid"):
            headline["context_fid"][g] = r["peers"]["context_fid"]["score"]
    if calibration:
        for row in CALIBRATION_ROWS:
            if row in calibration["discriminative"]:
                headline["discriminative_error"][row] = calibration["discriminative"][row]["error"]
            if row in calibration["tstr"]:
                headline["tstr_price_ic"][row] = calibration["tstr"][row]["price_ic"]
                headline["tstr_price_rank_ic"][row] = calibration["tstr"][row]["price_rank_ic"]
            if ((peers.get("calibration") or {}).get(row) or {}).get("context_fid"):
                headline["context_fid"][row] = peers["calibration"][row]["context_fid"]["score"]
    return {
        "protocol": {k: v for k, v in proto.items() if k != "file"}, "protocol_file": Path(proto["file"]).name,
        "data": result("data"), "headline": headline, "generators": generators,
        "calibration": {**(calibration or {}), "peers": peers.get("calibration") or {}} if calibration or peers else None,
        "training": {n: result(n) for n in ("tokenizer", "predictor", "select", "spread", "generate", "roundtrip")
                     if result(n)},
        "baselines": {b: result(f"baseline:{b}") for b in BASELINES if result(f"baseline:{b}")},
        "sweep": {"settings": sweep, "best": best, "criterion": SWEEP_CRITERION} if sweep else None,
        "forecast_calibration": result("forecast-calibration"),
        "peers_missing": peers.get("missing") or [],
        "wall_times_s": wall, "total_stage_time_s": round(sum(v or 0.0 for v in wall.values()), 3),
        "runs": log.get("runs", []), "skipped": skipped,
        # a resumed protocol took the sum of its runs (a rerun that only skips adds ~0)
        "elapsed_s": round(sum(r.get("elapsed_s", 0.0) for r in log.get("runs", [])), 3),
    }


def best_setting(sweep: list[dict]) -> dict | None:
    """The sweep setting with the best mean rank over fidelity, usefulness and coverage."""
    ok = [s for s in sweep if all(s.get(k) is not None and math.isfinite(s[k])
                                  for k in ("discriminative_error", "price_rank_ic", "knn_recall"))]
    if not ok:
        return None

    def ranks(key):
        order = sorted(range(len(ok)), key=lambda i: -ok[i][key])
        r = [0] * len(ok)
        for pos, i in enumerate(order):
            r[i] = pos + 1
        return r

    rk = [ranks(k) for k in ("discriminative_error", "price_rank_ic", "knn_recall")]
    mean_rank = [sum(r[i] for r in rk) / 3 for i in range(len(ok))]
    i = min(range(len(ok)), key=lambda j: (mean_rank[j], -ok[j]["discriminative_error"]))
    return {**ok[i], "mean_rank": mean_rank[i]}


# ---------------------------------------------------------------------------------------------
# plots


def _embeddings(folder: Path, g: str) -> dict | None:
    p = folder / "generators" / g / "embeddings.npz"
    if not p.is_file():
        return None
    with np.load(p) as z:
        return {k: z[k] for k in z.files}


def diversity_figures(folder: Path, gens: list[str], title: str) -> list[str]:
    """One joint-t-SNE (or PCA) panel and one return-KDE panel per generator, real red, synthetic blue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kronos_synth.report.plots import REAL, SYN, save_figure

    emb = {g: e for g in gens if (e := _embeddings(folder, g)) is not None}
    if not emb:
        return []
    cols = min(4, len(emb))
    rows = math.ceil(len(emb) / cols)
    paths = []
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.2 * rows), squeeze=False)
    for ax, (g, e) in zip(axes.ravel(), emb.items(), strict=False):
        kind = "tsne" if "tsne_real" in e else "pca"
        r, s = e[f"{kind}_real"], e[f"{kind}_synthetic"]
        ax.scatter(r[:, 0], r[:, 1], s=3, alpha=0.4, c=REAL, linewidths=0, label=f"real ({len(r)})")
        ax.scatter(s[:, 0], s[:, 1], s=3, alpha=0.4, c=SYN, linewidths=0, label=f"synthetic ({len(s)})")
        ax.set_title(f"{ROW_LABELS.get(g, g)} ({'t-SNE' if kind == 'tsne' else 'PCA'})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=3, loc="best")
    for ax in axes.ravel()[len(emb):]:
        ax.axis("off")
    fig.suptitle(f"{title}: joint embedding of real test windows and each generator's sequences", fontsize=10)
    paths.append(save_figure(fig, str(folder / "diversity_tsne.png")))

    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, (g, e) in zip(axes.ravel(), emb.items(), strict=False):
        if "kde_grid" not in e:
            ax.axis("off")
            continue
        ax.plot(e["kde_grid"], e["kde_real"], color=REAL, label="real")
        ax.plot(e["kde_grid"], e["kde_synthetic"], color=SYN, label="synthetic")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, None)
        ax.set_title(ROW_LABELS.get(g, g), fontsize=9)
        ax.set_xlabel("standardized close log return", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(emb):]:
        ax.axis("off")
    fig.suptitle(f"{title}: density of close log returns (log scale), standardized with the real mean/std",
                 fontsize=10)
    paths.append(save_figure(fig, str(folder / "returns_kde.png")))
    return [Path(p).name for p in paths]


def sweep_plot(folder: Path, sweep: list[dict], best: dict | None, title: str) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kronos_synth.report.plots import save_figure

    pts = [s for s in sweep if s.get("discriminative_error") is not None and s.get("price_rank_ic") is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 5))
    x = [s["discriminative_error"] for s in pts]
    y = [s["price_rank_ic"] for s in pts]
    c = [s["knn_recall"] if s.get("knn_recall") is not None else np.nan for s in pts]
    sc = ax.scatter(x, y, c=c, cmap="viridis", s=60, edgecolors="black", linewidths=0.5)
    for s, xi, yi in zip(pts, x, y, strict=True):
        ax.annotate(f"T={s['temperature']:g}, p={s['top_p']:g}", (xi, yi), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    if best is not None:
        ax.scatter([best["discriminative_error"]], [best["price_rank_ic"]], s=220, facecolors="none",
                   edgecolors="red", linewidths=1.5, label="best (mean rank)")
        ax.legend(fontsize=8, loc="best")
    fig.colorbar(sc, ax=ax, label="k-NN recall (coverage of the real windows)")
    ax.set_xlabel("discriminative error (higher = harder to tell from real, 0.5 best)")
    ax.set_ylabel("TSTR price RankIC (higher = more useful)")
    n = pts[0].get("n")
    ax.set_title(f"{title}: sampling sweep, n = {n} per setting, {pts[0].get('repeats', 1)} repeat", fontsize=10)
    return Path(save_figure(fig, str(folder / "sweep_tradeoff.png"))).name


# ---------------------------------------------------------------------------------------------
# markdown


def spread_note(k: dict) -> str:
    """The per-path spreads of the Settings line ("" when off)."""
    out = ""
    for key, label in (("temperature_spread", "temperature"), ("volatility_spread", "volatility scale")):
        value = k.get(key)
        if value == "auto":
            out += f", per-path {label} spread chosen on validation contexts (see Training and sampling)"
        elif value:
            out += f", per-path {label} spread {float(value):g}"
    return out


def _settings_lines(proto: dict) -> list[str]:
    k, ev, sw, b = proto["kronos"], proto["evaluation"], proto["sweep"], proto["baselines"]
    opts = "; ".join(f"{n}: {json.dumps(b.get(n, {}))}" for n in BASELINES if n in proto["generators"])
    return [
        f"- Data: `{proto['data']}` at {proto['freq']}, window {proto['window']} bars, test fraction "
        f"{proto['test_fraction']} (gap of one window), seed {proto['seed']}"
        + (" — **quick mode: toy sizes, the numbers mean nothing**" if proto.get("quick") else ""),
        f"- Kronos: {k['representation']} representation, "
        + ({"embedded": "fine-tuned from the embedded default model", "scratch": "trained from scratch",
            "zero-shot": "the embedded default model as it is (zero-shot: no fine-tuning)"}[k["init"]])
        + (f"; tokenizer {k['tokenizer_steps']} steps (lr {k['tokenizer_lr']:g}), predictor {k['predictor_steps']} "
           f"steps (lr {k['predictor_lr']:g})" if k["init"] != "zero-shot" else "")
        + f"; {k['n']} sequences, contexts from the train period, "
          f"T = {k['temperature']:g}, top-p = {k['top_p']:g}"
        + spread_note(k)
        + (f"; trained on `{k.get('train_data') or proto['data']}`" if k.get("train_data") or k.get("phase_offsets")
           else "")
        + (" with phase offsets (finer bars resampled at every bin offset)" if k.get("phase_offsets") else ""),
        f"- Baselines: {b['n']} sequences each; options (over the CPU defaults): {opts}",
        f"- Evaluation: n = {ev['n']} sequences per set (discriminative: halves → ≤ {ev['n'] // 2} per class for "
        f"training and as many for testing), {ev['repeats']} repeats, {ev['epochs']} epochs, TSTR on up to "
        f"{ev['n']} sequences, ≤ {ev['n_test_tstr']} real test windows; embeddings of ≤ {ev['max_plot']} per set",
        "- Sweep: " + (f"T ∈ {sw['temperatures']} × top-p ∈ {sw['top_ps']}, n = {sw['n']} per setting, "
                        f"{sw['repeats']} repeat, {sw['epochs']} epochs" if sw.get("enabled") else "off"),
    ]


def render(rep: dict, plots: dict) -> str:
    proto = rep["protocol"]
    gens = [g for g in GENERATOR_ORDER if g in rep["generators"]]
    cal = rep["calibration"] or {"discriminative": {}, "tstr": {}}
    title = proto["name"] + (" (quick)" if proto.get("quick") else "")
    lines = [f"# Benchmark — {title}", ""]
    d = rep["data"]
    if d:
        lines += [f"Source `{Path(str(d['source'])).name}` ({', '.join(d['symbols'])}): {d['train_windows']} train "
                  f"windows ({d['train_period'][0][:10]} … {d['train_period'][1][:10]}), {d['test_windows']} test "
                  f"windows ({d['test_period'][0][:10]} … {d['test_period'][1][:10]}). Intervals: 95 % t-intervals "
                  f"over {proto['evaluation']['repeats']} repeat(s) (mean ± half width; one repeat has no interval).", ""]
    lines += ["## Settings", "", *_settings_lines(proto), ""]
    if rep["skipped"]:
        lines += ["**Skipped**", ""] + [f"- {n}: {m}" for n, m in sorted(rep["skipped"].items())] + [""]

    lines += ["## Fidelity: discriminative score (paper protocol)", "",
              "Test error of an LSTM classifier (0.5 = indistinguishable, 0 = trivially detected). Calibration: "
              "`disjoint halves` must be ≈ 0.5, `shuffled bars` ≈ 0.", ""]
    rows = []
    for name, r in [*((g, rep["generators"][g]["discriminative"]) for g in gens),
                    *((c, cal["discriminative"][c]) for c in CALIBRATION_ROWS if c in cal["discriminative"])]:
        rows.append([ROW_LABELS.get(name, name), fmt(r["error"]), fmt(r["accuracy_real"]), fmt(r["accuracy_synthetic"]),
                     fmt(r["timegan_score"]), r["runs"][0]["n_train"] if r["runs"] else "n/a"])
    lines += table(["row", "test error", "acc. real", "acc. synthetic", "|0.5 − acc| (TimeGAN conv.)",
                    "n train (real + syn.)"], rows)

    lines += ["## Usefulness: TSTR", "", "Forecaster trained on each set, tested on real test windows; "
              "`real (train period) / TRTR` trains on the same number of real train windows; the `tokenizer round trip` "
              "row trains on decoded train-period windows (TRTR through the tokenizer).", ""]
    rows = []
    for name, r in [*((g, rep["generators"][g]["tstr"]) for g in gens),
                    *((c, cal["tstr"][c]) for c in CALIBRATION_ROWS if c in cal["tstr"])]:
        rows.append([ROW_LABELS.get(name, name), fmt(r["price_ic"]), fmt(r["price_rank_ic"]), fmt(r["return_ic"]),
                     fmt(r["return_rank_ic"]), r["runs"][0]["n_train"] if r["runs"] else "n/a"])
    lines += table(["row", "price IC", "price RankIC", "return IC", "return RankIC", "n train"], rows)

    lines += ["## Diversity and memorization", ""]
    rows = [[ROW_LABELS.get(g, g), num(rep["generators"][g]["diversity"]["precision"]),
             num(rep["generators"][g]["diversity"]["recall"]),
             num((rep["generators"][g]["memorization"] or {}).get("share_below_real_p1"))] for g in gens
            if rep["generators"][g]["diversity"]]
    lines += table(["generator", "k-NN precision", "k-NN recall", "share closer to train than real p1"], rows)
    lines += [f"![{p}]({p})" for p in plots.get("diversity", [])] + [""]

    lines += ["## Market realism: validity, seam, drift", "", "Share of raw (unrepaired) bars breaking each rule; "
              "`any` counts a bar once. Seam and drift need contexts, so only Kronos has them.", ""]
    rows = []
    for g in gens:
        r = rep["generators"][g]
        v = next((x for x in r["validity"] if not x["label"].startswith("real")), None)
        rows.append([ROW_LABELS.get(g, g), pct(v, None), *[pct(v, c) for c in VALIDITY_COLUMNS],
                     num((r["seam"] or {}).get("ks_statistic")), num((r["drift"] or {}).get("slope"), 4)])
    lines += table(["generator", "any", *VALIDITY_COLUMNS, "seam KS", "drift slope (negative = mean reversion)"], rows)

    lines += ["## Stylized facts", "", "Cell: |real − synthetic|; **bold** when within the real-vs-real baseline "
              "(|real test − real train|).", ""]
    facts = []
    for g in gens:
        s = rep["generators"][g]["stylized"]
        if s:
            facts = [(r["name"], r["description"], r["baseline"]) for r in s["rows"]]
            break
    if facts:
        rows = []
        for name, desc, base in facts:
            cells = []
            for g in gens:
                s = rep["generators"][g]["stylized"]
                r = next((x for x in (s or {}).get("rows", []) if x["name"] == name), None)
                cell = num(r["abs_diff"]) if r else "n/a"
                within = r and r["abs_diff"] is not None and base is not None and r["abs_diff"] <= base
                cells.append(f"**{cell}**" if within else cell)
            rows.append([desc, num(base), *cells])
        lines += table(["fact", "real-vs-real", *[ROW_LABELS.get(g, g) for g in gens]], rows)
        lines += table(["generator", "facts within real-vs-real"],
                       [[ROW_LABELS.get(g, g), stylized_score(rep["generators"][g]["stylized"])] for g in gens])

    lines += peer_lines(rep, gens)

    sw = rep["sweep"]
    if sw:
        lines += ["## Sampling sweep", "", f"Best setting: {SWEEP_CRITERION}.", ""]
        rows = [[f"{s['temperature']:g}", f"{s['top_p']:g}", num(s["discriminative_error"]), num(s["price_ic"]),
                 num(s["price_rank_ic"]), num(s["knn_precision"]), num(s["knn_recall"]),
                 f"{s['raw_invalid_bar_rate']:.2%}",
                 "**best**" if sw["best"] and (s["temperature"], s["top_p"]) ==
                 (sw["best"]["temperature"], sw["best"]["top_p"]) else ""] for s in sw["settings"]]
        lines += table(["T", "top-p", "disc. error", "price IC", "price RankIC", "k-NN precision", "k-NN recall",
                        "invalid bars", ""], rows)
        if plots.get("sweep"):
            lines += [f"![{plots['sweep']}]({plots['sweep']})", ""]

    lines += forecast_calibration_lines(rep.get("forecast_calibration"))
    lines += ["## Training and sampling", ""]
    tr = rep["training"]
    rows = []
    for n in ("tokenizer", "predictor"):
        if n in tr:
            t = tr[n]
            rows.append([n, t["init"], f"{t['steps_done']} / {t['total_steps']}", num(t.get("first_val_loss")),
                         num(t["best_val_loss"]), t["best_step"]])
    if rows:
        lines += table(["model", "init", "steps", "first val loss", "best val loss", "best step"], rows)
    if "select" in tr:
        v = tr["select"]["validation"]
        lines += [f"Model kept: **{tr['select']['model']}** (the fine-tune against its starting point on the validation "
                  "period, the tail of the train period; discriminative error of continuations of contexts before it):", ""]
        lines += table(["model", "validation disc. error", "validation windows"],
                       [[name, f"{num(r['discriminative_error'])} ± {num(r['half_width'])}", r["n_validation_windows"]]
                        for name, r in v.items()])
    if "spread" in tr:
        sp = tr["spread"]
        for label, c in (("temperature", sp), ("volatility scale", sp.get("volatility"))):
            if not c or "validation" not in c:
                continue
            lines += [f"Per-path {label} spread (chosen on {c['n_contexts']} validation contexts of the train period, "
                      "lowest CRPS of the horizon's realised volatility):", ""]
            lines += table(["spread", "realised-vol. CRPS", "coverage 50 %", "coverage 90 %", "return CRPS",
                            "return coverage 90 %"],
                           [[f"**{r['spread']:g}**" if r["spread"] == c["spread"] else f"{r['spread']:g}",
                             num(r["vol_crps"], 5), num(r["vol_coverage_50"], 2), num(r["vol_coverage_90"], 2),
                             num(r["return_crps"], 5), num(r["return_coverage_90"], 2)] for r in c["validation"]])
    if "generate" in tr:
        g = tr["generate"]
        lines += [f"Kronos generation: {g['sequences']} sequences in {g['wall_time_s']:.1f} s; raw invalid bars "
                  f"{g['raw_invalid_bar_rate']:.2%}.", ""]
    if rep["baselines"]:
        rows = [[ROW_LABELS.get(b, b), num(r["fit_wall_time_s"], 1), num(r["sample_wall_time_s"], 1),
                 json.dumps(r["options"]), json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in r["fit"]["final_losses"].items()}),
                 "; ".join(r["warnings"]) or "–"] for b, r in rep["baselines"].items()]
        lines += table(["baseline", "fit s", "sample s", "options", "final losses", "warnings"], rows)

    lines += ["## Wall time per stage", "", "Stage wall times (worker stages ran in parallel, so the run's elapsed "
              "time is less than their sum).", ""]
    lines += table(["stage", "seconds"], [[n, num(s, 1)] for n, s in sorted(rep["wall_times_s"].items())])
    if rep["runs"]:
        lines += [f"Elapsed: {rep['elapsed_s']:.1f} s over {len(rep['runs'])} run(s):", ""]
        lines += table(["started (UTC)", "elapsed s", "workers", "torch threads", "stages run", "stages skipped"],
                       [[r["started"], num(r["elapsed_s"], 1), r["jobs"], r["threads"], len(r["ran"]),
                         len(r["skipped"])] for r in rep["runs"]])
    lines += ["## Per-generator reports", ""] + [f"- [{ROW_LABELS.get(g, g)}](generators/{g}/report.md)"
                                                 for g in gens] + [""]
    return "\n".join(lines)


VALIDITY_COLUMNS = ("high < max(open, close)", "low > min(open, close)", "high < low",
                    "amount/volume outside [low, high]")


def forecast_calibration_lines(fc: dict | None) -> list[str]:
    """The calibration-of-conditional-paths section (h-bar return and realised volatility per forecaster)."""
    if not fc:
        return []
    lines = ["## Calibration of conditional paths", "",
             f"{fc['n_contexts']} real test-period contexts, {fc['samples']} sampled continuations each. Coverage: "
             "share of outcomes inside the central interval (ideal 0.50 / 0.90; below = paths too narrow). "
             "PIT-KS: 0 = calibrated. Temperatures were compared on validation contexts (tail of the train "
             f"period): calibrated temperature {fc['calibrated_temperature']:g} (protocol: {fc['temperature']:g}).",
             ""]
    lines += table(["T", "validation 90 % coverage", "CRPS", "PIT-KS"],
                   [[f"{v['temperature']:g}", num(v["coverage_90"], 2), num(v["crps"], 5), num(v["pit_ks"])]
                    for v in fc["validation"]])
    def label(g: str) -> str:  # "kronos T=1.1": Kronos at the calibrated temperature
        return ROW_LABELS.get(g) or g.replace("kronos", "Kronos", 1)

    rows = [[label(r["generator"]), r["target"].replace("_", " "), r["horizon"],
             num(r["crps"], 5), num(r["pit_ks"]), num(r["coverage_50"], 2), num(r["coverage_90"], 2)]
            for r in fc["rows"]]
    lines += table(["forecaster", "target", "h", "CRPS", "PIT-KS", "coverage 50 %", "coverage 90 %"], rows)
    return lines + ["PIT histograms: [forecast-calibration/report.md](forecast-calibration/report.md).", ""]


def pct(v: dict | None, check: str | None) -> str:
    """Share of bars failing `check` (None: any check) of a validity dict."""
    if not v:
        return "n/a"
    x = v["invalid_share"] if check is None else v.get("shares", {}).get(check)
    return "n/a" if x is None else f"{x:.2%}"


PEER_LAGS = (1, 5, 20)


def peer_lines(rep: dict, gens: list[str]) -> list[str]:
    """The peer-metrics table: one row per generator, then the real-vs-real and shuffled calibration rows
    (computed once per protocol, with the same Context-FID encoders). Empty when no row has them."""
    cal = (rep.get("calibration") or {}).get("peers") or {}
    entries = [(g, rep["generators"][g].get("peers")) for g in gens] + [(c, cal.get(c)) for c in CALIBRATION_ROWS]
    entries = [(name, p) for name, p in entries if p]
    if not entries:
        return []
    lines = ["## Peer metrics", "", "The numbers other papers publish, each a distance to the real test windows "
             "(ideal 0; signature p-value: large is good): Context-FID (TS2Vec embedding trained on the real train "
             "windows), correlational score, Wasserstein-1 of k-bar returns in units of the real k-return std, "
             "mean |ΔACF| of r and |r|, leverage and gain/loss distances, signature MMD² with its permutation "
             "p-value. `real (train period)` and `real (test, disjoint halves)` are real vs real: a generator "
             "near them is as close as the market is to itself; definitions in docs/protocol.md §7.", ""]
    rows = []
    for name, p in entries:
        w1 = {w["k"]: w["w1_scaled"] for w in p["w1"]}
        rows.append([name if name in CALIBRATION_ROWS else ROW_LABELS.get(name, name),
                     fmt((p.get("context_fid") or {}).get("score")),
                     num(p["correlational"], 4), *[num(w1.get(k)) for k in PEER_LAGS], num(p["acf_returns"]),
                     num(p["acf_abs_returns"]), num(p["leverage"]), num(p["gain_loss_ratio"]),
                     num(p["signature"]["mmd2"], 4), num(p["signature"]["p_value"])])
    lines += table(["row", "Context-FID", "correlational", *[f"W1/std k={k}" for k in PEER_LAGS], "ACF r",
                    "ACF \\|r\\|", "leverage", "gain/loss", "sig. MMD²", "sig. p"], rows)
    if rep.get("peers_missing"):
        lines += [f"Not scored (their generated sets were not on the machine that ran this stage): "
                  f"{', '.join(ROW_LABELS.get(g, g) for g in rep['peers_missing'])}.", ""]
    return lines


def stylized_score(s: dict | None) -> str:
    if not s:
        return "n/a"
    rows = [r for r in s["rows"] if r["abs_diff"] is not None and r["baseline"] is not None]
    return f"{sum(r['abs_diff'] <= r['baseline'] for r in rows)} / {len(rows)}"


def write_benchmark_report(proto: dict, folder: Path, log: dict, names: list[str] | None = None) -> dict:
    """Write report.json, report.md and the combined plots of one protocol folder."""
    from kronos_synth.report.writer import json_safe

    rep = collect(proto, folder, log, names)
    title = proto["name"] + (" (quick)" if proto.get("quick") else "")
    plots: dict[str, Any] = {"diversity": diversity_figures(folder, list(rep["generators"]), title)}
    if rep["sweep"]:
        plots["sweep"] = sweep_plot(folder, rep["sweep"]["settings"], rep["sweep"]["best"], title)
    rep["plots"] = plots
    (folder / "report.json").write_text(json.dumps(json_safe(rep), indent=2, sort_keys=True, default=str) + "\n")
    (folder / "report.md").write_text(render(rep, plots) + "\n")
    return rep
