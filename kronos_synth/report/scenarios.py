"""Reports of `evaluate panel` and `evaluate scenario`: report.md and report.json."""

from __future__ import annotations

import json
import os
from typing import Any

from kronos_synth.report.writer import ReportFiles, json_safe


def _write(out: str, title: str, intro: list[str], lines: list[str], doc: dict[str, Any]) -> ReportFiles:
    os.makedirs(out, exist_ok=True)
    md, js = os.path.join(out, "report.md"), os.path.join(out, "report.json")
    with open(md, "w") as f:
        f.write("\n".join([f"# {title}", "", *intro, "", *(f"- {x}" for x in lines)]) + "\n")
    with open(js, "w") as f:
        json.dump(json_safe(doc), f, indent=1)
    return ReportFiles(md, js)


def write_panel_report(evaluation: Any, out: str, *, real_source: str, synthetic_source: str) -> ReportFiles:
    """`evaluation`: a `metrics.panel.PanelEvaluation`."""
    intro = [f"Panels of {', '.join(evaluation.symbols)} from `{synthetic_source}` against the "
             f"{evaluation.settings['n_real_panels']} real {evaluation.settings.get('period', 'test')}-period panels of "
             f"`{real_source}` (stride 1). "
             "Calibration rows: real first half vs second half (the noise floor) and shuffled assets "
             "(marginals kept, co-movement gone; the discriminative score must catch it)."]
    return _write(out, "Panel evaluation", intro, evaluation.lines(),
                  {"real": real_source, "synthetic": synthetic_source, **evaluation.to_dict()})


def write_scenario_report(report: Any, out: str, *, real_source: str, synthetic_source: str) -> ReportFiles:
    """`report`: a `metrics.scenario.ScenarioReport`."""
    intro = [f"The conditioned set `{synthetic_source}` against the real windows of `{real_source}` that meet "
             f"its condition ({report.condition['description']})."]
    return _write(out, "Scenario evaluation", intro, report.lines(),
                  {"real": real_source, "synthetic": synthetic_source, **report.to_dict()})
