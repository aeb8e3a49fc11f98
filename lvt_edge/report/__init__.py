"""Accuracy-vs-latency reports of a bundle's precisions (`lvt-edge report`).

    from lvt_edge.report import ReportSettings, make_report, write_report
    report = make_report("lvt-bundle", "clips/test", ReportSettings(precisions=("fp32", "int8")))
    write_report(report, "lvt-bundle/report")   # report.json, report.md, report.html

report.json follows lvt_edge/report/schema.json (`schema_errors(report)` lists breaches).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from lvt_edge.io import atomic_path, nonfinite_paths
from lvt_edge.report.evaluate import ReportSettings, make_report
from lvt_edge.report.schema import schema_errors

REPORT_FILES = ("report.json", "report.md", "report.html")


def write_report(report: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write report.json, report.md and report.html; returns their paths.

    All three are rendered first, then written to temporary files beside their places, and
    only when every one is on disk are they moved in: on any failure (a plot that cannot be
    drawn, a full disk) the previous report stays whole and nothing partial is left.
    """
    from lvt_edge.report.html import render_html
    from lvt_edge.report.markdown import render_markdown

    errors = schema_errors(report) + [f"{p}: NaN or infinity" for p in nonfinite_paths(report)]
    if errors:  # a bug in this package, not a user problem
        raise RuntimeError("report does not match schema.json: " + "; ".join(errors[:10]))
    texts = [json.dumps(report, indent=2, allow_nan=False) + "\n", render_markdown(report), render_html(report)]
    out = Path(out_dir)
    paths = [out / name for name in REPORT_FILES]
    with contextlib.ExitStack() as stack:  # every file is moved in when the stack closes without error
        for path, text in zip(paths, texts):
            data = text.encode("utf-8")
            stack.enter_context(atomic_path(path, size=len(data))).write_bytes(data)
    return paths


__all__ = ["REPORT_FILES", "ReportSettings", "make_report", "schema_errors", "write_report"]
