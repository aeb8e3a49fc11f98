"""Report numbers on hand-made predictions, and the verdict rules."""

from __future__ import annotations

import numpy as np
import pytest

from lvt_edge.report.metrics import accuracy_metrics, kl_divergence, latency_stats, pareto_front, topk_accuracy
from lvt_edge.report.verdict import judge


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


def _variant(p, top1, p50):
    return {"precision": p, "backend": "onnxruntime", "accuracy": {"top1": top1}, "latency_ms": {"p50": p50}}


def test_verdicts_and_gate():
    report = {"variants": [_variant("fp32", 90.0, 10.0), _variant("fp16", 89.8, 9.9), _variant("int8", 89.6, 6.25)]}
    judge(report, max_drop=1.0)
    lines = [v["recommendation"]["line"] for v in report["variants"]]
    assert lines[1].startswith("no gain from fp16: -0.2 pt top-1")
    assert lines[2] == "ship int8: -0.4 pt top-1, 1.60x faster than fp32"
    assert report["gate"] == {"max_drop": 1.0, "passed": True, "failed": []}
    assert report["summary"]["recommended"] == "int8"
    report = {"variants": [_variant("fp32", 90.0, 10.0), _variant("int8", 86.9, 5.0)]}
    judge(report, max_drop=1.0)
    assert report["variants"][1]["recommendation"] == {"ship": False, "line": "do not ship int8: drops 3.1 pt top-1 > 1.0"}
    assert report["gate"]["failed"] == ["int8"] and report["summary"]["recommended"] == "fp32"
