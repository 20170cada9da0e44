"""Markdown/JSON/PNG reports assembled from metric results."""

from kronos_synth.report.writer import ReportFiles, write_report

__all__ = ["ReportFiles", "write_report"]
