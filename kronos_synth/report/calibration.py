"""The calibration report of conditional paths: report.md, report.json and calibration.png."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kronos_synth.report.markdown import _n, _table  # noqa: E402
from kronos_synth.report.plots import save_figure  # noqa: E402
from kronos_synth.report.provenance import package_versions  # noqa: E402
from kronos_synth.report.writer import ReportFiles, json_safe  # noqa: E402

TARGET_LABELS = {"return": "h-bar return", "realized_vol": "realised volatility"}


def calibration_plot(doc: dict, path: str, title: str) -> str:
    """PIT histograms (rows: forecasters; columns: return at each horizon, then realised volatility at H)
    with each cell's 90 % coverage; a calibrated forecaster's bars sit on the dashed line."""
    rows = doc["rows"]
    gens = list(doc["generators"])
    hs = doc["settings"]["horizons"]
    cols = [("return", h) for h in hs] + [("realized_vol", hs[-1])] * (hs[-1] >= 2)
    fig, axes = plt.subplots(len(gens), len(cols), figsize=(2.6 * len(cols), 1.9 * len(gens) + 0.6), squeeze=False,
                             sharey=True)
    for i, g in enumerate(gens):
        for j, (target, h) in enumerate(cols):
            ax = axes[i, j]
            r = next((r for r in rows if (r["generator"], r["target"], r["horizon"]) == (g, target, h)), None)
            if r is None:
                ax.set_axis_off()
                continue
            hist = np.asarray(r["pit_hist"])
            ax.bar((np.arange(len(hist)) + 0.5) / len(hist), hist, width=1 / len(hist), color="#1f77b4",
                   edgecolor="white")
            ax.axhline(1 / len(hist), color="#7f7f7f", ls="--", lw=1)
            ax.set_title(f"{g}: {TARGET_LABELS[target]}, h={h}\nKS {r['pit_ks']:.2f}, 90 % cov. {r['coverage_90']:.2f}",
                         fontsize=8)
            ax.set_xlim(0, 1)
            ax.tick_params(labelsize=7)
            if i == len(gens) - 1:
                ax.set_xlabel("PIT", fontsize=8)
            if j == 0:
                ax.set_ylabel("share of outcomes", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def render_calibration_markdown(doc: dict, title: str, plot: str) -> str:
    s, d = doc["settings"], doc["data"]
    lines = [f"# {title}", "",
             f"{d['n_contexts']} real {s.get('period', 'test')}-period contexts of {s['lookback']} bars ({', '.join(d['symbols'])}; "
             f"context ends from {d['first_context_end']}, outcomes until {d['last_outcome']}), {s['samples']} "
             f"sampled continuations of {s['horizon']} bars each per forecaster.", "",
             "CRPS: lower is better, in log-return units. PIT-KS: KS distance of the PIT values to uniform "
             "(0 = calibrated). Coverage: share of outcomes inside the central interval (ideal 0.50 / 0.90); "
             "coverage below the level means paths too narrow (over-confident). Width: mean 90 % interval width.", ""]
    if doc["notes"]:
        lines += ["**Notes**", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    for target in ("return", "realized_vol"):
        rows = [r for r in doc["rows"] if r["target"] == target]
        if not rows:
            continue
        lines += [f"## {TARGET_LABELS[target].capitalize()}", ""]
        lines += _table(["forecaster", "h", "CRPS", "PIT-KS", "coverage 50 %", "coverage 90 %", "width 90 %"],
                        [[r["generator"], r["horizon"], _n(r["crps"], 5), _n(r["pit_ks"]), _n(r["coverage_50"], 2),
                          _n(r["coverage_90"], 2), _n(r["width_90"], 4)] for r in rows])
    lines += [f"![PIT histograms]({plot})", "", "## Forecasters", ""]
    lines += [f"- **{g}**: `{json.dumps(v, default=str)}`" for g, v in doc["generators"].items()]
    lines += ["", f"Settings: `{json.dumps(s, default=str)}`", ""]
    return "\n".join(lines)


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_calibration_report(result, out_dir: str, *, source: str, label: str | None = None) -> ReportFiles:
    """Write a `CalibrationResult` (same result → same bytes)."""
    os.makedirs(out_dir, exist_ok=True)
    title = f"Calibration of conditional paths — {label or source}, {result.settings['freq']}"
    doc = {"title": title, "provenance": {"real_source": source, "versions": package_versions()},
           **json_safe(result.to_dict())}
    plot = calibration_plot(doc, os.path.join(out_dir, "calibration.png"), title)
    json_path, md_path = os.path.join(out_dir, "report.json"), os.path.join(out_dir, "report.md")
    _write_atomic(json_path, json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    _write_atomic(md_path, render_calibration_markdown(doc, title, os.path.basename(plot)) + "\n")
    return ReportFiles(md_path, json_path, [plot])
