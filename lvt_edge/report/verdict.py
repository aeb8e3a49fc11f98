"""Verdicts: change vs fp32, speed-up with its confidence interval, the Pareto front, a
recommendation per variant, one overall recommendation and the release gate (a variant that
drops more than `max_drop` points of top-1 fails it).

Speed is decided on the timed samples, not on one median: the speed-up vs fp32 is the ratio of
median times, and its 95 % interval comes from a paired bootstrap over the interleaved rounds
(round i of every variant is resampled together, so a burst of load that slowed one round
slows both sides of the ratio). A lower precision is recommended for speed only when the whole
interval lies above 1 and the point estimate reaches MIN_SPEEDUP; otherwise the difference is
called noise and the most accurate variant (ties: the simplest, fp32 first) is recommended.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lvt_edge.report.metrics import pareto_front, relative_spread

BASELINE = "fp32"
SIMPLEST_FIRST = ("fp32", "fp16", "int8")
METRICS = ("latency", "throughput")
#: Speed-ups under this are not worth shipping a lower precision for, even when real.
MIN_SPEEDUP = 1.05
#: Interquartile range over median (percent) above which timings are called unstable.
UNSTABLE_SPREAD_PCT = 20.0
BOOTSTRAP_RESAMPLES = 2000
CI_METHOD = "paired bootstrap over interleaved rounds, ratio of medians, 95 %"


def speedup_interval(base_ms: Sequence[float], variant_ms: Sequence[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> tuple[float, float, float]:
    """(speed-up, low, high): median(base) / median(variant) and its 95 % paired-bootstrap
    interval. Samples are paired by round (the first min(len) of each); seeded, so a report is
    reproducible from its samples."""
    n = min(len(base_ms), len(variant_ms))
    if n == 0:
        raise ValueError("no timed runs")
    b, v = np.asarray(base_ms[:n], np.float64), np.asarray(variant_ms[:n], np.float64)
    point = float(np.median(b) / np.median(v))
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ratios = np.median(b[idx], axis=1) / np.median(v[idx], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return point, float(low), float(high)


def metric_samples(variant: dict[str, Any], metric: str) -> list[float]:
    """Milliseconds per call that decide speed: batch-1 latency, or the throughput batch."""
    return variant["latency_ms"]["samples"] if metric == "latency" else variant["throughput"]["samples_ms"]


def judge(report: dict[str, Any], max_drop: float, metric: str = "latency") -> dict[str, Any]:
    """Fill in each variant's comparison and recommendation, `gate`, `summary`, and add
    timing warnings to `report["warnings"]`."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS} (got {metric!r})")
    variants = {v["precision"]: v for v in report["variants"]}
    base = variants[BASELINE]
    base_top1, base_samples = base["accuracy"]["top1"], metric_samples(base, metric)
    front = pareto_front({p: (v["latency_ms"]["p50"], v["accuracy"]["top1"]) for p, v in variants.items()})
    what = "batch-1 latency" if metric == "latency" else f"throughput at batch {base['throughput']['batch']}"
    warnings = report.setdefault("warnings", [])
    failed, faster, unstable = [], [], []
    for p, v in variants.items():
        change = v["accuracy"]["top1"] - base_top1
        speedup, low, high = speedup_interval(base_samples, metric_samples(v, metric))
        spread = relative_spread(metric_samples(v, metric))
        v["top1_change_pt"], v["pareto"] = change, p in front
        v["speedup_vs_fp32"], v["speedup_ci95"], v["timing_spread_pct"] = speedup, [low, high], spread
        if spread > UNSTABLE_SPREAD_PCT:
            unstable.append(f"{p} {spread:.0f}%")
        ci = f"{speedup:.2f}x (95% CI {low:.2f}-{high:.2f})"
        if p == BASELINE:
            ship, line = True, (f"baseline fp32: top-1 {base_top1:.1f}%, {base['latency_ms']['p50']:.2f} ms per clip "
                                "at batch 1")
        elif -change > max_drop:
            failed.append(p)
            ship, line = False, f"do not ship {p}: drops {-change:.1f} pt top-1 > {max_drop:.1f}"
        elif low > 1.0 and speedup >= MIN_SPEEDUP:
            faster.append(p)
            ship, line = True, f"ship {p}: {change:+.1f} pt top-1, {ci} faster than fp32 ({what})"
        elif low > 1.0:
            ship, line = True, f"{p}: {change:+.1f} pt top-1, only {ci} faster than fp32 ({what}, < {MIN_SPEEDUP:.2f}x)"
        elif high >= 1.0:
            ship, line = True, (f"{p}: {change:+.1f} pt top-1; {ci} the speed of fp32 ({what}): "
                                "within timing noise")
        else:
            ship, line = False, (f"no gain from {p}: {change:+.1f} pt top-1 but {ci} the speed of fp32 ({what}) "
                                 f"on {v['backend']}; keep fp32")
        v["recommendation"] = {"ship": ship, "line": line}
    if unstable:
        warnings.append(f"timing unstable ({what}; interquartile range over median: {', '.join(unstable)}, "
                        f"> {UNSTABLE_SPREAD_PCT:.0f}%): close other programs, pin --threads, or raise --runs")
    if faster:
        best = max(faster, key=lambda p: variants[p]["speedup_vs_fp32"])
        why = f"{best}: {variants[best]['recommendation']['line'].split(': ', 1)[1]}"
    else:
        ok = [p for p in variants if p not in failed]
        best = max(ok, key=lambda p: (variants[p]["accuracy"]["top1"], -SIMPLEST_FIRST.index(p)))
        why = (f"{best}: the most accurate ({variants[best]['accuracy']['top1']:.1f}% top-1)"
               + (", and the simplest" if best == BASELINE else "")
               + (f"; no variant is faster than fp32 beyond timing noise ({what})" if len(variants) > 1 else ""))
    report["gate"] = {"max_drop": max_drop, "passed": not failed, "failed": failed}
    report["summary"] = {"recommended": best, "pareto_front": front, "metric": metric, "ci_method": CI_METHOD,
                         "line": f"recommended: {why}"}
    return report
