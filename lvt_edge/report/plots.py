"""Matplotlib figures of a report, as PNG bytes (no pyplot: no global state, no display)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

COLORS = {"fp32": "#1f77b4", "fp16": "#2ca02c", "int8": "#d62728"}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def accuracy_vs_latency(report: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    pts = {v["precision"]: (v["latency_ms"]["p50"], v["accuracy"]["top1"]) for v in report["variants"]}
    for i, v in enumerate(report["variants"]):
        p = v["precision"]
        lat = v["latency_ms"]
        ax.errorbar(*pts[p], xerr=[[lat["p50"] - lat["min"]], [lat["p90"] - lat["p50"]]], fmt="o", ms=9,
                    color=COLORS.get(p), capsize=4, label=f"{p} ({v['backend']})")
        ax.annotate(p, pts[p], textcoords="offset points", xytext=(8, 4 - 11 * i))  # stacked: points may coincide
    front = report["summary"]["pareto_front"]
    if len(front) > 1:
        ax.plot(*zip(*[pts[p] for p in front]), "--", color="0.4", lw=1.2, label="Pareto front")
    ax.margins(y=0.12)
    ax.set_xlabel("latency, batch 1 (ms, p50; bars min..p90)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title("accuracy vs latency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def latency_distribution(report: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    variants = report["variants"]
    data = [v["latency_ms"]["samples"] for v in variants]
    parts = ax.violinplot(data, showmedians=True)
    for body, v in zip(parts["bodies"], variants):
        body.set_facecolor(COLORS.get(v["precision"], "0.5"))
    ax.set_xticks(range(1, len(variants) + 1), [v["precision"] for v in variants])
    ax.set_ylabel("ms per clip (batch 1)")
    ax.set_title(f"latency distribution ({variants[0]['latency_ms']['runs']} interleaved runs each)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def confusion_matrices(report: dict[str, Any]) -> bytes:
    from matplotlib.figure import Figure

    labels = report["eval"]["labels"]
    variants = report["variants"]
    n = len(variants)
    side = 2.2 + 0.3 * len(labels)
    fig = Figure(figsize=(side * n, side + 0.6))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, v in zip(axes, variants):
        cm = np.asarray(v["accuracy"]["confusion"], float)
        rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ticks = range(len(labels))
        ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
        ax.set_yticks(ticks, labels, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{v['precision']}: top-1 {v['accuracy']['top1']:.1f}%", fontsize=9)
        for (i, j), c in np.ndenumerate(cm):
            if c:
                ax.text(j, i, int(c), ha="center", va="center", fontsize=6,
                        color="white" if rows[i, j] > 0.5 else "black")
    fig.tight_layout()
    return _png(fig)


PLOTS = {
    "accuracy_vs_latency": ("Accuracy vs latency", accuracy_vs_latency),
    "latency_distribution": ("Latency distribution", latency_distribution),
    "confusion": ("Confusion matrices (rows: true class, normalised per row)", confusion_matrices),
}
