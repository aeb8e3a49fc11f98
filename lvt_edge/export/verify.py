"""Stage check: the exported ONNX (run by ONNX Runtime) against the PyTorch model."""

from __future__ import annotations

from typing import Any

import numpy as np

from lvt_edge.errors import LvtEdgeError

ATOL = 1e-4  # max abs difference allowed on logits
MIN_TOP1_AGREEMENT = 1.0
RANDOM_CLIPS = 4
BATCH = 8


def random_clips(shape: tuple[int, ...], n: int = RANDOM_CLIPS, seed: int = 0) -> np.ndarray:
    """n clips of the model's input shape, uniform in the normalised pixel range [-1, 1]."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, *shape)).astype(np.float32)


def compare_logits(model, session, clips: np.ndarray, batch: int = BATCH) -> dict[str, Any]:
    """Max abs logit difference and top-1 agreement of ORT vs PyTorch over `clips`."""
    import torch
    from lvt_edge.console import bar

    diffs, agree = [], 0
    name = session.get_inputs()[0].name
    starts = range(0, len(clips), batch)
    for s in bar(starts, "verify", "batch", enabled=len(starts) >= 4):
        x = clips[s : s + batch]
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        out = session.run(None, {name: x})[0]
        diffs.append(float(np.abs(out - ref).max()))
        agree += int((out.argmax(1) == ref.argmax(1)).sum())
    return {"clips": int(len(clips)), "max_abs_diff": max(diffs), "top1_agreement": agree / len(clips)}


def verify_onnx(model, onnx_bytes: bytes, *, real_clips: np.ndarray | None = None,
                real_name: str | None = None) -> dict[str, Any]:
    """Run random clips at batch 1 and RANDOM_CLIPS (and real clips if given); raise above tolerance."""
    import onnxruntime as ort

    from lvt_edge.console import ort_session_options

    session = ort.InferenceSession(onnx_bytes, ort_session_options(), providers=["CPUExecutionProvider"])
    cfg = model.cfg
    clips = random_clips((3, cfg.frames, cfg.img_size, cfg.img_size))
    report: dict[str, Any] = {
        "tolerance": {"max_abs_diff": ATOL, "top1_agreement": MIN_TOP1_AGREEMENT},
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "random": {"batch_1": compare_logits(model, session, clips[:1], 1),
                   f"batch_{len(clips)}": compare_logits(model, session, clips, len(clips))},
    }
    if real_clips is not None:
        report["clipset"] = {"name": real_name, **compare_logits(model, session, real_clips)}
    checks = list(report["random"].values()) + ([report["clipset"]] if "clipset" in report else [])
    report["max_abs_diff"] = max(c["max_abs_diff"] for c in checks)
    report["top1_agreement"] = min(c["top1_agreement"] for c in checks)
    report["passed"] = report["max_abs_diff"] <= ATOL and report["top1_agreement"] >= MIN_TOP1_AGREEMENT
    if not report["passed"]:
        raise LvtEdgeError(
            f"ONNX Runtime disagrees with PyTorch: max abs logit difference {report['max_abs_diff']:.3g} "
            f"(tolerance {ATOL}), top-1 agreement {report['top1_agreement']:.1%} (need {MIN_TOP1_AGREEMENT:.0%}); "
            "nothing was written. Try --no-fuse or --simplifier none to find the stage at fault"
        )
    return report
