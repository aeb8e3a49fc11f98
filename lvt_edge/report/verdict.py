"""Verdicts: change vs fp32, speed-up, the Pareto front, a recommendation per variant and
the release gate (a variant that drops more than `max_drop` points of top-1 fails it)."""

from __future__ import annotations

from typing import Any

from lvt_edge.report.metrics import pareto_front

BASELINE = "fp32"
#: Speed-ups under this count as noise, not as a reason to ship a lower precision.
MIN_SPEEDUP = 1.05


def judge(report: dict[str, Any], max_drop: float) -> dict[str, Any]:
    """Fill in each variant's comparison and recommendation, `gate` and `summary`."""
    variants = {v["precision"]: v for v in report["variants"]}
    base = variants[BASELINE]
    base_top1, base_ms = base["accuracy"]["top1"], base["latency_ms"]["p50"]
    front = pareto_front({p: (v["latency_ms"]["p50"], v["accuracy"]["top1"]) for p, v in variants.items()})
    failed = []
    for p, v in variants.items():
        change = v["accuracy"]["top1"] - base_top1
        speedup = base_ms / v["latency_ms"]["p50"]
        v["top1_change_pt"], v["speedup_vs_fp32"], v["pareto"] = change, speedup, p in front
        if p == BASELINE:
            ship, line = True, f"baseline fp32: top-1 {base_top1:.1f}%, {base_ms:.2f} ms per clip at batch 1"
        elif -change > max_drop:
            failed.append(p)
            ship, line = False, f"do not ship {p}: drops {-change:.1f} pt top-1 > {max_drop:.1f}"
        elif speedup >= MIN_SPEEDUP:
            ship, line = True, f"ship {p}: {change:+.1f} pt top-1, {speedup:.2f}x faster than fp32"
        else:
            ship, line = False, (f"no gain from {p}: {change:+.1f} pt top-1 but {speedup:.2f}x the speed of fp32 "
                                 f"on {v['backend']} here; keep fp32")
        v["recommendation"] = {"ship": ship, "line": line}
    shippable = [p for p, v in variants.items() if v["recommendation"]["ship"]]
    best = min(shippable, key=lambda p: variants[p]["latency_ms"]["p50"])
    report["gate"] = {"max_drop": max_drop, "passed": not failed, "failed": failed}
    report["summary"] = {"recommended": best, "pareto_front": front,
                         "line": f"recommended: {best} ({variants[best]['recommendation']['line']})"}
    return report
