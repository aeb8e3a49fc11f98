"""Report numbers on hand-made predictions, and the verdict rules."""

from __future__ import annotations

import numpy as np
import pytest

from lvt_edge.report.checks import calibration_overlap, class_count_warnings
from lvt_edge.report.metrics import (accuracy_metrics, kl_divergence, latency_stats, pareto_front, topk_accuracy,
                                     wilson_interval)
from lvt_edge.report.verdict import judge, speedup_interval


def test_accuracy_metrics_on_known_predictions():
    labels = np.array([0, 1, 2, 2])
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.1, 0.4]])
    m = accuracy_metrics(probs, labels, ("a", "b", "c"))
    assert m["top1"] == 50.0 and m["top5"] == 100.0 and m["top5_k"] == 3
    assert topk_accuracy(probs, labels, 2) == 100.0
    assert m["confusion"] == [[1, 0, 0], [1, 0, 0], [1, 0, 1]]
    assert [c["accuracy"] for c in m["per_class"]] == [100.0, 0.0, 50.0]
    assert m["agreement_top1"] is None and m["kl_vs_fp32"] is None
    same = accuracy_metrics(probs, labels, ("a", "b", "c"), reference=probs)
    assert same["agreement_top1"] == 100.0 and same["kl_vs_fp32"] == pytest.approx(0.0, abs=1e-12)
    flipped = accuracy_metrics(probs[:, ::-1], labels, ("a", "b", "c"), reference=probs)
    assert flipped["agreement_top1"] == 0.0 and flipped["kl_vs_fp32"] > 0.1


def test_kl_matches_the_formula():
    p, q = np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])
    assert kl_divergence(p, q)[0] == pytest.approx(0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1))


def test_latency_stats_and_pareto():
    s = latency_stats(list(range(1, 101)))
    assert s["runs"] == 100 and s["mean"] == 50.5 and s["p50"] == 50.5 and s["p99"] == pytest.approx(99.01)
    assert pareto_front({"fp32": (10, 90), "fp16": (6, 89.5), "int8": (4, 80), "bad": (12, 70)}) == ["int8", "fp16", "fp32"]
    assert pareto_front({"fp32": (10, 90), "int8": (5, 90)}) == ["int8"]


def test_wilson_interval_matches_known_values():
    # 95 % Wilson intervals (z = 1.96) from the closed form, e.g. Newcombe (1998), table I
    assert wilson_interval(81, 263) == pytest.approx((25.53, 36.62), abs=0.01)
    assert wilson_interval(15, 148) == pytest.approx((6.24, 16.05), abs=0.01)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 16.11), abs=0.01)
    assert wilson_interval(5, 5) == pytest.approx((56.55, 100.0), abs=0.01)  # 100 % on 5 clips is not certainty
    assert wilson_interval(0, 0) == (0.0, 100.0)
    for n in range(1, 200):  # the interval holds the proportion itself, to the last bit (the plot's error bars)
        assert wilson_interval(n, n)[1] == 100.0 and wilson_interval(0, n)[0] == 0.0
    m = accuracy_metrics(np.eye(3)[[0, 1, 2, 0]], np.array([0, 1, 2, 1]), ("a", "b", "c"))
    assert m["top1_ci95"] == pytest.approx(list(wilson_interval(3, 4)))
    assert m["per_class"][1]["ci95"] == pytest.approx(list(wilson_interval(1, 2)))


def test_too_few_clips_per_class_is_warned():
    names = [f"c{i}" for i in range(10)]
    five_clips = np.array([0, 1, 2, 3, 4])  # half the classes empty, the rest with one clip each
    w = class_count_warnings(five_clips, names)
    assert len(w) == 2 and w[0].startswith("5 of 10 classes have no eval clips (c5, c6")
    assert w[1].startswith("5 classes have fewer than 5 eval clips (c0 (1)")
    assert class_count_warnings(np.repeat(np.arange(10), 5), names) == []


class _Clip:  # what calibration_overlap needs of lvt_edge.data.Clip
    def __init__(self, d):
        self.d = d

    def digest(self):
        return self.d


class _Set:
    def __init__(self, digests):
        self.clips = tuple(_Clip(d) for d in digests)

    def subset(self, size, seed):
        out = _Set([])
        out.clips = self.clips[:size]
        return out


def _h(i):
    return f"{i:064x}"


def test_overlap_with_the_calibration_set_is_found():
    from lvt_edge.report.checks import _content_hash, overlap_warning

    ev = _Set([_h(i) for i in range(10)])
    by_digest = {"variants": {"fp32": {}, "int8": {"calibration": {"clipset": {"clips": 3, "digests": [_h(8), _h(9), _h(99)]}}}}}
    o = calibration_overlap(by_digest, ev)
    assert o == {"method": "clip digests", "overlapping_clips": 2, "variants": ["int8"]}
    assert overlap_warning(o, 10).startswith("eval set overlaps the calibration clips of int8: 2 of 10")
    same = {"variants": {"fp16": {"calibration": {"clipset": {"clips": 10, "content_hash": _content_hash(_h(i) for i in range(10))}}}}}
    assert calibration_overlap(same, ev)["overlapping_clips"] == 10
    drawn = {"variants": {"int8": {"calibration": {"clipset": {"clips": 4, "content_hash": _content_hash(_h(i) for i in range(4))}}}}}
    o = calibration_overlap(drawn, ev)  # the eval set is the set the build drew its calibration subset from
    assert o["variants"] == ["int8"] and o["overlapping_clips"] == 4 and "draw" in o["method"]
    apart = {"variants": {"int8": {"calibration": {"clipset": {"clips": 4, "content_hash": _h(7)}}}}}
    assert calibration_overlap(apart, ev)["variants"] == [] and overlap_warning(calibration_overlap(apart, ev), 10) is None


def _variant(p, top1, samples, batch_samples=None):
    samples = list(samples)
    return {"precision": p, "backend": "onnxruntime", "accuracy": {"top1": top1},
            "latency_ms": {"p50": float(np.median(samples)), "samples": samples},
            "throughput": {"batch": 8, "samples_ms": list(batch_samples if batch_samples is not None else samples)}}


def _timings(median, spread, n=50, seed=0):
    """n interleaved rounds: machine-wide load (shared by every variant in a round) plus own noise."""
    rng = np.random.default_rng(seed)
    return median * (1 + spread * rng.standard_normal(n) ** 2)


def test_speedup_interval_is_tight_on_clear_timings_and_wide_on_noisy_ones():
    rng = np.random.default_rng(1)
    base = 10 * (1 + 0.01 * rng.random(50))
    point, low, high = speedup_interval(base, base / 1.6)
    assert point == pytest.approx(1.6, rel=0.01) and 1.55 < low < 1.6 < high < 1.65
    noisy = 10 * (1 + 2.0 * rng.random(50))
    _, low, high = speedup_interval(base, noisy / 1.1)
    assert low < 1 < high or high < 1
    assert speedup_interval(base, base) == (1.0, 1.0, 1.0)


def test_clear_timing_gain_ships_the_faster_variant():
    base = _timings(10.0, 0.01, seed=1)
    report = {"variants": [_variant("fp32", 90.0, base), _variant("fp16", 89.8, _timings(9.9, 0.01, seed=2)),
                           _variant("int8", 89.6, _timings(6.25, 0.01, seed=3))]}
    judge(report, max_drop=1.0)
    v = {x["precision"]: x for x in report["variants"]}
    assert v["int8"]["recommendation"]["line"].startswith("ship int8: -0.4 pt top-1, 1.60x (95% CI 1.5")
    assert not v["fp16"]["recommendation"]["line"].startswith("ship")
    assert report["gate"] == {"max_drop": 1.0, "passed": True, "failed": []}
    assert report["summary"]["recommended"] == "int8" and report["summary"]["line"].startswith("recommended: int8:")
    assert report["warnings"] == []


def test_noisy_timing_keeps_the_most_accurate_variant_and_warns():
    rng = np.random.default_rng(7)
    base = 10 * (1 + 1.5 * rng.random(30))
    int8 = rng.permutation(base) / 1.1  # 1.1x by the medians, well inside the noise
    report = {"variants": [_variant("fp32", 90.0, base), _variant("int8", 89.6, int8)]}
    judge(report, max_drop=1.0)
    assert report["summary"]["recommended"] == "fp32"
    assert "within timing noise" in report["variants"][1]["recommendation"]["line"]
    assert "no variant is faster than fp32 beyond timing noise" in report["summary"]["line"]
    assert any(w.startswith("timing unstable") and "fp32 " in w for w in report["warnings"])
    # equal speed within noise, int8 more accurate: the most accurate wins; a tie goes to the simplest
    report = {"variants": [_variant("fp32", 90.0, base), _variant("int8", 91.0, int8)]}
    assert judge(report, 1.0)["summary"]["recommended"] == "int8"
    report = {"variants": [_variant("fp32", 90.0, base), _variant("int8", 90.0, int8)]}
    assert judge(report, 1.0)["summary"]["recommended"] == "fp32"


def test_throughput_metric_decides_on_the_batch_timings():
    base, flat = _timings(10.0, 0.01, seed=1), _timings(80.0, 0.01, seed=4)
    report = {"variants": [_variant("fp32", 90.0, base, flat), _variant("int8", 90.0, base / 1.5, flat * 1.001)]}
    assert judge(report, 1.0, "latency")["summary"]["recommended"] == "int8"
    report = {"variants": [_variant("fp32", 90.0, base, flat), _variant("int8", 90.0, base / 1.5, flat * 1.001)]}
    judge(report, 1.0, "throughput")
    assert report["summary"]["recommended"] == "fp32" and "throughput at batch 8" in report["summary"]["line"]


def test_a_large_drop_fails_the_gate():
    base = _timings(10.0, 0.01, seed=1)
    report = {"variants": [_variant("fp32", 90.0, base), _variant("int8", 86.9, base / 2)]}
    judge(report, max_drop=1.0)
    assert report["variants"][1]["recommendation"] == {"ship": False, "line": "do not ship int8: drops 3.1 pt top-1 > 1.0"}
    assert report["gate"]["failed"] == ["int8"] and report["summary"]["recommended"] == "fp32"
