"""Write an evaluation to a folder: report.md, report.json and PNG plots."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kronos_synth.report.markdown import render_markdown
from kronos_synth.report.plots import write_plots
from kronos_synth.report.provenance import input_hashes, package_versions


@dataclass
class ReportFiles:
    markdown: str
    json: str
    plots: list[str] = field(default_factory=list)


def json_safe(x: Any) -> Any:
    """`x` made JSON-safe, as every report.json is written: NaN/inf → None, numpy scalars and arrays →
    Python numbers and lists, tuples → lists, dict keys → str. Other values are returned as they are."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_report(result, out_dir: str, *, real_source: str, synthetic_source: str = "",
                 real_label: str | None = None) -> ReportFiles:
    """Write the report of an `EvaluationResult`. Same result → same bytes (no wall-clock times)."""
    os.makedirs(out_dir, exist_ok=True)
    meta = result.data.get("synthetic_metadata", {})
    generator = meta.get("generator", "unknown generator")
    label = f"{real_label or os.path.basename(real_source.rstrip('/')) or real_source}, " \
            f"{result.settings['freq']}, {generator}"
    plot_paths = write_plots(result, out_dir, label)
    plots = [os.path.basename(p) for p in plot_paths]
    provenance = {
        "real_source": real_source,
        "real_sha256": input_hashes(real_source) if os.path.exists(real_source) else
        _embedded_hash(real_source),
        "synthetic_source": synthetic_source,
        "synthetic_sha256": input_hashes(synthetic_source) if synthetic_source else {},
        "versions": package_versions(),
    }
    doc = {"title": f"Evaluation — {label}", "provenance": provenance, "plots": plots, **result.to_dict()}
    json_path = os.path.join(out_dir, "report.json")
    with open(json_path, "w") as f:
        json.dump(json_safe(doc), f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    md_path = os.path.join(out_dir, "report.md")
    with open(md_path, "w") as f:
        f.write(render_markdown(result, title=doc["title"], plots=plots, provenance=provenance) + "\n")
    return ReportFiles(md_path, json_path, plot_paths)


def _embedded_hash(name: str) -> dict[str, str]:
    """sha256 of an embedded dataset's file (the data layer knows where it lives)."""
    from kronos_synth.data.datasets import dataset_names, dataset_path

    if name in dataset_names():
        return input_hashes(dataset_path(name))
    return {}
