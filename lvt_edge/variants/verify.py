"""Checking a built bundle on held-out clips: top-1 per precision, and batch-1 latency measured
side by side (interleaved rounds, so machine noise hits every precision alike)."""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np

# Largest top-1 drop from fp32, in points, each precision may show (issue: int8 1.0, fp16 0.3).
TOLERANCE_PT = {"fp16": 0.3, "int8": 1.0}
EVAL_BATCH = 8


def top1(workdir: str | os.PathLike, precision: str, clips: np.ndarray, labels: np.ndarray, *,
         progress: bool = True) -> tuple[float, np.ndarray]:
    """(top-1 accuracy in %, predicted class per clip) of one precision on ONNX Runtime."""
    from lvt_edge.console import bar

    from lvt_edge.runtime import load_bundle

    preds = []
    with load_bundle(workdir, precision, backend="onnxruntime") as clf:
        for i in bar(range(0, len(clips), EVAL_BATCH), f"verify {precision}", "batch", enabled=progress):
            preds.append(clf.predict(clips[i : i + EVAL_BATCH]).argmax(-1))
    pred = np.concatenate(preds)
    return float((pred == labels).mean() * 100.0), pred


def verification(precision: str, acc: float, pred: np.ndarray, ref_acc: float | None,
                 ref_pred: np.ndarray | None, clipset_info: dict[str, Any]) -> dict[str, Any]:
    """bundle.json's variants[p]["verification"] record, with the drop from fp32 and its tolerance."""
    out: dict[str, Any] = {"backend": "onnxruntime-cpu", "clipset": clipset_info, "top1": round(acc, 3)}
    if ref_acc is not None and precision != "fp32":
        drop = ref_acc - acc
        tol = TOLERANCE_PT[precision]
        out.update(top1_fp32=round(ref_acc, 3), drop_pt=round(drop, 3), tolerance_pt=tol,
                   within_tolerance=bool(drop <= tol),
                   agreement_with_fp32=round(float((pred == ref_pred).mean() * 100.0), 3))
    return out


def accuracy_skipped(clipset_info: dict[str, Any], why: str) -> dict[str, Any]:
    """The verification record of held-out clips that could not check top-1 (labels not the model's)."""
    return {"backend": "onnxruntime-cpu", "clipset": clipset_info, "accuracy_skipped": why}


def latency_side_by_side(workdir: str | os.PathLike, precisions: Sequence[str], clip: np.ndarray, *,
                         rounds: int = 30, warmup: int = 3, threads: int | None = None) -> dict[str, float]:
    """Median batch-1 latency (ms) per precision on ONNX Runtime CPU, rounds interleaved."""
    from lvt_edge.runtime import load_bundle

    clfs = {p: load_bundle(workdir, p, backend="onnxruntime", threads=threads) for p in precisions}
    try:
        times: dict[str, list[float]] = {p: [] for p in precisions}
        batch = clip[None].astype(np.float32)
        for clf in clfs.values():
            for _ in range(warmup):
                clf.predict(batch)
        for _ in range(rounds):
            for p, clf in clfs.items():
                t0 = time.perf_counter()
                clf.predict(batch)
                times[p].append(time.perf_counter() - t0)
    finally:
        for clf in clfs.values():
            clf.close()
    return {p: float(np.median(t) * 1e3) for p, t in times.items()}
