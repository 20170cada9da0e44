"""Markdown/JSON/PNG reports assembled from metric results."""

from kronos_synth.report.plots import save_figure
from kronos_synth.report.writer import ReportFiles, json_safe, write_report

__all__ = ["ReportFiles", "json_safe", "save_figure", "write_report"]
