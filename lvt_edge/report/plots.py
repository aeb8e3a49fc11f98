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


def _label_offsets(pts: dict[str, tuple[float, float]], xspan: float, yspan: float) -> dict[str, tuple[int, int]]:
    """Text offsets (points) that keep labels of nearby markers apart: each label goes right of
    its marker, on the first line free of the labels of markers nearby."""
    offsets, placed = {}, []
    for name, (x, y) in sorted(pts.items(), key=lambda kv: (-kv[1][1], kv[1][0])):
        taken = {slot for (x2, y2, slot) in placed if abs(x - x2) < 0.12 * xspan and abs(y - y2) < 0.08 * yspan}
        slot = min(set(range(len(pts))) - taken)
        offsets[name] = (10, 6 - 15 * slot)
        placed.append((x, y, slot))
    return offsets


def accuracy_vs_latency(report: dict[str, Any]) -> bytes:
    """Median latency vs top-1; thin whiskers: latency p25..p75 and the Wilson 95 % top-1 interval.
    The x axis starts at 0 so distances read as ratios."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.4))
    ax = fig.add_subplot()
    variants = report["variants"]
    pts = {v["precision"]: (v["latency_ms"]["p50"], v["accuracy"]["top1"]) for v in variants}
    front = report["summary"]["pareto_front"]
    if len(front) > 1:
        ax.plot(*zip(*[pts[p] for p in front]), "--", color="0.6", lw=1, zorder=1, label="Pareto front")
    for v in variants:
        p, (x, y) = v["precision"], pts[v["precision"]]
        q25, q75 = np.percentile(v["latency_ms"]["samples"], [25, 75])
        low, high = v["accuracy"]["top1_ci95"]
        ax.errorbar(x, y, xerr=[[max(0.0, x - q25)], [max(0.0, q75 - x)]],
                    yerr=[[max(0.0, y - low)], [max(0.0, high - y)]],
                    fmt="none", ecolor=COLORS.get(p, "0.5"), elinewidth=0.8, alpha=0.45, zorder=2)
        ax.plot(x, y, "o", ms=10, color=COLORS.get(p, "0.5"), mec="white", zorder=3,
                label=f"{p} ({v['backend']}): {y:.1f}%, {x:.2f} ms")
    xmax = max(x for x, _ in pts.values())
    ylo = min(v["accuracy"]["top1_ci95"][0] for v in variants)  # the whole interval stays on the axes
    yhi = max(v["accuracy"]["top1_ci95"][1] for v in variants)
    pad = max(1.0, 0.15 * (yhi - ylo))
    ax.set_xlim(0, xmax * 1.3)
    ax.set_ylim(max(0.0, ylo - pad), min(100.0, yhi + pad) + (0.5 if yhi + pad >= 100 else 0))
    offsets = _label_offsets(pts, xmax * 1.3, 2 * pad + yhi - ylo)
    for p, (x, y) in pts.items():
        ax.annotate(p, (x, y), textcoords="offset points", xytext=offsets[p], fontsize=10, weight="bold",
                    color=COLORS.get(p, "0.3"), va="center")
    ax.set_xlabel("latency, batch 1 (ms, median; whiskers p25-p75)")
    ax.set_ylabel("top-1 accuracy (%; whiskers Wilson 95 %)")
    ax.set_title(f"accuracy vs latency ({report['eval']['clips']} clips)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
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
    """One row-normalised matrix per variant, two per row, counts in the cells."""
    from matplotlib.figure import Figure

    labels = report["eval"]["labels"]
    variants = report["variants"]
    n, k = len(variants), len(labels)
    cols = min(2, n)
    rows_n = -(-n // cols)
    side = 2.5 + 0.38 * k
    fig = Figure(figsize=(side * cols, side * rows_n), layout="constrained")
    axes = fig.subplots(rows_n, cols, squeeze=False).ravel()
    font = 9 if k <= 12 else 7 if k <= 25 else 5
    image = None
    for ax, v in zip(axes, variants):
        cm = np.asarray(v["accuracy"]["confusion"], float)
        rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ticks = range(k)
        ax.set_xticks(ticks, labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=font)
        ax.set_yticks(ticks, labels, fontsize=font)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{v['precision']}: top-1 {v['accuracy']['top1']:.1f}%", fontsize=11)
        if k <= 25:
            for (i, j), c in np.ndenumerate(cm):
                if c:
                    ax.text(j, i, int(c), ha="center", va="center", fontsize=font - 1,
                            color="white" if rows[i, j] > 0.5 else "black")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes[:n].tolist(), shrink=0.6, label="fraction of the true class")
    return _png(fig)


PLOTS = {
    "accuracy_vs_latency": ("Accuracy vs latency", accuracy_vs_latency),
    "latency_distribution": ("Latency distribution", latency_distribution),
    "confusion": ("Confusion matrices (rows: true class, normalised per row)", confusion_matrices),
}
