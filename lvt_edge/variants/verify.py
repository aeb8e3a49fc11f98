"""Checking a built bundle on held-out clips: top-1 per precision, batch-1 latency measured
side by side (interleaved rounds, so machine noise hits every precision alike), and each
TensorRT engine against the ONNX Runtime variant of the same precision."""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np

# Largest top-1 drop from fp32, in points, each precision may show (issue: int8 1.0, fp16 0.3).
TOLERANCE_PT = {"fp16": 0.3, "int8": 1.0}
EVAL_BATCH = 8
# Smallest top-1 agreement, in %, a TensorRT engine must show with the ONNX Runtime variant of the
# same precision on the held-out clips. Different kernels (TF32 in fp32 engines, fp16 accumulation,
# int8 rounding) move near-tied clips; more than this is a wrong engine or plugin.
ENGINE_AGREEMENT_PCT = {"fp32": 99.0, "fp16": 98.0, "int8": 97.0}


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


def batched_logits(clf: Any, clips: np.ndarray, batch: int = EVAL_BATCH) -> np.ndarray:
    return np.concatenate([clf.logits(clips[i : i + batch]) for i in range(0, len(clips), batch)])


def engine_agreement(workdir: str | os.PathLike, precision: str, clips: np.ndarray, labels: np.ndarray | None,
                     clipset_info: dict[str, Any]) -> dict[str, Any]:
    """bundle.json's variants[p]["tensorrt"]["verification"]: the engine against ONNX Runtime on
    the same clips (top-1 agreement, largest logit difference, top-1 of each where labels are known)."""
    from lvt_edge.runtime import load_bundle

    with load_bundle(workdir, precision, backend="tensorrt") as engine:
        got = batched_logits(engine, clips)
    with load_bundle(workdir, precision, backend="onnxruntime") as ref:
        want = batched_logits(ref, clips)
    return agreement_record(precision, got, want, labels, clipset_info)


def agreement_record(precision: str, got: np.ndarray, want: np.ndarray, labels: np.ndarray | None,
                     clipset_info: dict[str, Any]) -> dict[str, Any]:
    agree = float((got.argmax(-1) == want.argmax(-1)).mean() * 100.0)
    floor = ENGINE_AGREEMENT_PCT[precision]
    out: dict[str, Any] = {
        "backend": "tensorrt", "reference": "onnxruntime-cpu", "clipset": clipset_info, "clips": int(len(got)),
        "agreement_pct": round(agree, 3), "max_abs_logit_diff": round(float(np.abs(got - want).max()), 6),
        "min_agreement_pct": floor, "within_tolerance": bool(agree >= floor),
    }
    if labels is not None:
        out.update(top1=round(float((got.argmax(-1) == labels).mean() * 100.0), 3),
                   top1_onnxruntime=round(float((want.argmax(-1) == labels).mean() * 100.0), 3))
    return out
