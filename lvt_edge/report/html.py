"""report.json data -> one self-contained report.html (plots inlined as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
from typing import Any

from lvt_edge.report.markdown import machine_line, per_class_rows, summary_rows
from lvt_edge.report.plots import PLOTS

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 6px; text-align: right; } td { white-space: nowrap; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.pass { color: #17702a; font-weight: bold; } .fail { color: #b00020; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
li.no { color: #b00020; } li.yes { color: #17702a; }
.rec { font-size: 18px; font-weight: bold; padding: 0.6em 0.9em; background: #eef6ee; border-left: 5px solid #17702a; }
.untrained { font-size: 17px; font-weight: bold; color: #fff; background: #b00020; padding: 0.6em 0.9em; }
.warn { background: #fff4e0; border-left: 5px solid #e69500; padding: 0.4em 0.9em; margin: 0.3em 0; }
.machine { color: #555; font-size: 13px; }
td.few { color: #b00020; font-weight: bold; } td.low { background: #fde8e8; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{trs}</table>"


def _per_class_table(report: dict[str, Any]) -> str:
    """Per-class top-1 with few-clip counts in red and accuracies under 80 % shaded."""
    from lvt_edge.report.checks import MIN_CLIPS_PER_CLASS

    head, rows = per_class_rows(report)
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = []
    for r in rows:
        few = int(r[1]) < MIN_CLIPS_PER_CLASS
        cells = [f"<td>{html.escape(r[0])}</td>", f"<td class='{'few' if few else ''}'>{r[1]}</td>"]
        cells += [f"<td class='{'low' if c != '-' and float(c) < 80 else ''}'>{c}</td>" for c in r[2:]]
        trs.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table class='per-class'><tr>{th}</tr>{''.join(trs)}</table>"


def _img(key: str, png: bytes) -> str:
    return f"<img alt='{html.escape(key)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def render_html(report: dict[str, Any]) -> str:
    ev, gate = report["eval"], report["gate"]
    e = html.escape
    verdicts = "".join(
        f"<li class='{'yes' if v['recommendation']['ship'] else 'no'}'>{e(v['recommendation']['line'])}</li>"
        for v in report["variants"])
    gate_line = (f"<p class='pass'>Gate passed: no variant drops more than {gate['max_drop']:g} pt top-1.</p>"
                 if gate["passed"] else
                 f"<p class='fail'>Gate FAILED (max drop {gate['max_drop']:g} pt): {e(', '.join(gate['failed']))}</p>")
    untrained = f"<p class='untrained'>{e(report['untrained'].upper())}</p>" if report.get("untrained") else ""
    warnings = "".join(f"<p class='warn'><b>Warning:</b> {e(w)}</p>" for w in report.get("warnings", []))
    plots = {key: (title, make(report)) for key, (title, make) in PLOTS.items()}
    settings = json.dumps({k: report[k] for k in ("settings", "machine")}, indent=2)
    st = report["settings"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lvt_edge report</title><style>{STYLE}</style></head>
<body>
<h1>lvt_edge report</h1>
{untrained}
<p class='rec'>{e(report['summary']['line'])}</p>
{gate_line}
{warnings}
<p>Bundle <code>{e(report['bundle']['workdir'])}</code> ({e(str(report['bundle']['model']))}) on
<code>{e(ev['clipset'])}</code>: {ev['clips']} clips, {len(ev['labels'])} classes, {len(ev['skipped'])} skipped.
Created {e(report['created'])} with lvt_edge {e(report['lvt_edge_version'])}.</p>
<p class='machine'>Machine: {e(machine_line(report))}</p>
{_table(*summary_rows(report))}
<p>Latency is the model alone at batch 1 (p50/p90/p99 of {st['runs']} interleaved timed runs); e2e is decode +
preprocess + predict of one clip from its file; * marks the Pareto front of top-1 vs p50 latency. Top-1 intervals
are Wilson 95 %; speed-up is fp32's median time over the variant's ({e(st.get('metric', 'latency'))}), with a
{e(report['summary'].get('ci_method', ''))} interval.</p>
<details><summary>Per-variant verdicts</summary><ul>{verdicts}</ul></details>
<h2>{e(plots['accuracy_vs_latency'][0])}</h2>{_img('accuracy_vs_latency', plots['accuracy_vs_latency'][1])}
<h2>Per-class top-1</h2>
{_per_class_table(report)}
<h2>{e(plots['confusion'][0])}</h2>{_img('confusion', plots['confusion'][1])}
<h2>{e(plots['latency_distribution'][0])}</h2>{_img('latency_distribution', plots['latency_distribution'][1])}
<h2>Settings and machine</h2><pre>{e(settings)}</pre>
</body></html>
"""
