"""The benchmark scripts' bookkeeping (no timing here: speed is measured by running them)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def test_scaling_sweeps_the_issue_shapes():
    scaling = load("scaling")
    assert scaling.shapes() == [(8, 112), (16, 112), (32, 112), (64, 112), (8, 224), (8, 336), (8, 448)]
    assert scaling.tokens(8, 112) == 8 * 81 and scaling.tokens(8, 448) == 8 * 33 * 33


def test_ratios_are_per_round():
    lat = load("int8_latency")
    med, lo, hi = lat.ratio_stats(np.array([2.0, 4.0, 9.0]), np.array([1.0, 1.0, 3.0]))
    assert (med, lo, hi) == (3.0, 2.0, 4.0)  # not median(num) / median(den) = 4.0
    assert lat.fmt_ratio((1.234, 1.0, 1.5)) == "1.23x (1.00-1.50)"


def row(t, px, ffla, linear, softmax):
    return {"frames": t, "size": px, "tokens": 1, "us_per_token": {"ffla": ffla, "linear": linear, "softmax": softmax},
            "ffla_vs_linear": (ffla / linear, ffla / linear, ffla / linear),
            "softmax_vs_ffla": (softmax / ffla, softmax / ffla, softmax / ffla)}


def test_scaling_report_says_where_softmax_overtakes():
    pytest.importorskip("onnxruntime")
    scaling = load("scaling")
    rows = [row(8, 112, 1.0, 0.9, 0.8), row(16, 112, 1.0, 0.9, 0.95), row(8, 224, 1.0, 0.9, 1.2),
            row(8, 448, 1.0, 0.95, 2.0)]
    text = scaling.report(rows, rounds=3, threads=1)
    assert "frames at 112 px: softmax costs more per token than ffla not within this sweep" in text
    assert "size at 8 frames: softmax costs more per token than ffla first at 8 x 224" in text
    assert "softmax / ffla = 2.00x" in text
    assert "highest at 8 x 112" in text
