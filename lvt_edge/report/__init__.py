"""Accuracy-vs-latency reports of a bundle's precisions (`lvt-edge report`).

    from lvt_edge.report import ReportSettings, make_report, write_report
    report = make_report("lvt-bundle", "clips/test", ReportSettings(precisions=("fp32", "int8")))
    write_report(report, "lvt-bundle/report")   # report.json, report.md, report.html

report.json follows lvt_edge/report/schema.json (`schema_errors(report)` lists breaches).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lvt_edge.io import write_json_atomic, write_text_atomic
from lvt_edge.report.evaluate import ReportSettings, make_report
from lvt_edge.report.schema import schema_errors

REPORT_FILES = ("report.json", "report.md", "report.html")


def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write report.json, report.md and report.html (each atomically); returns their paths."""
    from lvt_edge.report.html import render_html
    from lvt_edge.report.markdown import render_markdown

    errors = schema_errors(report)
    if errors:  # a bug in this package, not a user problem
        raise RuntimeError("report does not match schema.json: " + "; ".join(errors[:10]))
    out = Path(out_dir)
    paths = [out / name for name in REPORT_FILES]
    write_json_atomic(paths[0], report)
    write_text_atomic(paths[1], render_markdown(report))
    write_text_atomic(paths[2], render_html(report))
    return paths


__all__ = ["REPORT_FILES", "ReportSettings", "make_report", "schema_errors", "write_report"]
