"""report.json data -> report.md (tables a reviewer reads in a pull request)."""

from __future__ import annotations

from typing import Any


def _f(x: Any, fmt: str, none: str = "-") -> str:
    return none if x is None else format(x, fmt)


def summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The main table (shared by the markdown, the HTML and the CLI printout)."""
    head = ["precision", "backend", "top-1 % (95% CI)", "top-5 %", "vs fp32 (pt)", "agree %", "KL", "p50 ms", "p90 ms",
            "p99 ms", "mean ms", "e2e ms", f"clips/s @{report['settings']['batch']}",
            "speed-up (95% CI)" + (f" @{report['settings']['batch']}" if report["settings"].get("metric") == "throughput" else ""), "size MB", "build s"]
    rows = []
    for v in report["variants"]:
        a, lat = v["accuracy"], v["latency_ms"]
        rows.append([
            v["precision"] + (" *" if v["pareto"] else ""), v["backend"], top1_text(a), f"{a['top5']:.1f}",
            f"{v['top1_change_pt']:+.1f}", _f(a["agreement_top1"], ".1f"), _f(a["kl_vs_fp32"], ".2e"),
            f"{lat['p50']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}", f"{lat['mean']:.2f}",
            f"{v['end_to_end_ms']['mean']:.1f}", _f(v["throughput"]["clips_per_s"], ".1f"),
            speedup_text(v), f"{v['size_bytes'] / 1e6:.2f}", _f(v["build_time_s"], ".1f"),
        ])
    return head, rows


def top1_text(accuracy: dict[str, Any]) -> str:
    low, high = accuracy["top1_ci95"]
    return f"{accuracy['top1']:.1f} ({low:.1f}-{high:.1f})"


def speedup_text(v: dict[str, Any]) -> str:
    low, high = v["speedup_ci95"]
    return f"{v['speedup_vs_fp32']:.2f}x ({low:.2f}-{high:.2f})"


def machine_line(report: dict[str, Any]) -> str:
    m = report["machine"]
    providers = sorted({p for v in report["variants"] for p in v["providers"]})
    threads = "default threads" if m.get("threads") is None else f"{m['threads']} threads"
    return (f"{m.get('cpu_model') or m['processor']}, {m['cpu_count']} CPUs, {threads}, "
            f"onnxruntime {m['onnxruntime']} ({', '.join(providers)}), Python {m['python']}, {m['platform']}")


def per_class_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Per class: its clip count and each variant's top-1 (percent), "-" where it has no clips."""
    head = ["class", "clips"] + [f"{v['precision']} top-1 %" for v in report["variants"]]
    rows = []
    for i, label in enumerate(report["eval"]["labels"]):
        support = report["variants"][0]["accuracy"]["per_class"][i]["support"]
        rows.append([label, str(support)] + [_f(v["accuracy"]["per_class"][i]["accuracy"], ".1f")
                                            for v in report["variants"]])
    return head, rows


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def render_markdown(report: dict[str, Any]) -> str:
    ev, st, gate = report["eval"], report["settings"], report["gate"]
    out = [
        "# lvt_edge report",
        "",
        f"Bundle `{report['bundle']['workdir']}` ({report['bundle']['model']}), evaluated on `{ev['clipset']}`: "
        f"{ev['clips']} clips, {len(ev['labels'])} classes"
        + (f", {len(ev['skipped'])} skipped" if ev["skipped"] else "") + ".",
        f"Latency: the model alone at batch 1, {st['warmup']} warm-up then {st['runs']} timed runs per variant, "
        "interleaved, each right after an untimed call of its own; e2e = decode + preprocess + predict of one clip; * = on the Pareto front.",
        f"Speed-up: fp32's median time over the variant's, {report['summary'].get('ci_method', '')}.",
        f"Machine: {machine_line(report)}.",
        "",
        *([f"> **{report['untrained'].upper()}**", ""] if report.get("untrained") else []),
        *[f"> **Warning:** {w}" + "  " for w in report.get("warnings", [])],
        *([""] if report.get("warnings") else []),
        table(*summary_rows(report)),
        "",
        "## Recommendations",
        "",
        *[f"- {v['recommendation']['line']}" for v in report["variants"]],
        "",
        f"**{report['summary']['line']}**",
        "",
        f"Gate (max drop {gate['max_drop']:g} pt top-1): " + ("PASSED" if gate["passed"] else f"FAILED by {', '.join(gate['failed'])}"),
        "",
        "## Per-class top-1 (%)",
        "",
    ]
    out += [table(*per_class_rows(report)), ""]
    return "\n".join(out)
