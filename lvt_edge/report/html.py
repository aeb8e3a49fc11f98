"""report.json data -> one self-contained report.html (plots inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from lvt_edge.report.markdown import summary_rows
from lvt_edge.report.plots import PLOTS

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.pass { color: #17702a; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
li.no { color: #b00020; } li.yes { color: #17702a; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def render_html(report: dict[str, Any]) -> str:
    ev, gate = report["eval"], report["gate"]
    e = html.escape
    recs = "".join(
        f"<li class='{'yes' if v['recommendation']['ship'] else 'no'}'>{e(v['recommendation']['line'])}</li>"
        for v in report["variants"])
    gate_line = (f"<p class='pass'>Gate passed: no variant drops more than {gate['max_drop']:g} pt top-1.</p>"
                 if gate["passed"] else
                 f"<p class='fail'>Gate FAILED (max drop {gate['max_drop']:g} pt): {e(', '.join(gate['failed']))}</p>")
    plots = "".join(
        f"<h2>{e(title)}</h2><img alt='{e(key)}' src='data:image/png;base64,{base64.b64encode(make(report)).decode()}'>"
        for key, (title, make) in PLOTS.items())
    settings = json.dumps({k: report[k] for k in ("settings", "machine")}, indent=2)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lvt_edge report</title><style>{STYLE}</style></head>
<body>
<h1>lvt_edge report</h1>
<p>Bundle <code>{e(report['bundle']['workdir'])}</code> ({e(str(report['bundle']['model']))}) on
<code>{e(ev['clipset'])}</code>: {ev['clips']} clips, {len(ev['labels'])} classes, {len(ev['skipped'])} skipped.
Created {e(report['created'])} with lvt_edge {e(report['lvt_edge_version'])}.</p>
{_table(*summary_rows(report))}
<p>Latency is the model alone at batch 1 (p50/p90/p99 of interleaved timed runs); e2e is decode + preprocess +
predict of one clip from its file; * marks the Pareto front of top-1 vs p50 latency.</p>
<h2>Recommendations</h2><ul>{recs}</ul>
<p><b>{e(report['summary']['line'])}</b></p>
{gate_line}
{plots}
<h2>Settings and machine</h2><pre>{e(settings)}</pre>
</body></html>
"""
