"""Causal LVT -> the step model as ONNX (`model.step.onnx`), verified frame by frame.

Inputs: `frame` (B x 3 x H x W, the clip contract's normalisation) and one `state.<name>` per
state tensor; outputs: `logits` (B x classes) and one `next.<name>` per state tensor, in the
order of `lvt_edge.model.causal.state_spec`. The batch axis is dynamic and first everywhere;
the state starts as zeros and its shapes (without the batch axis) are recorded in bundle.json's
`step` entry, so a runtime needs neither torch nor the model config to carry it.

The fused node: a step's spatial attention is the window model's over the S tokens of one
frame, so it exports as the same `lvt_edge::FFLinearAttention` node (T = 1; the causal temporal
shift is done from the carried state just before it, and the node runs with shift 0): TensorRT
uses the plugin there as in the window model. The temporal attention of a step is not the
node's computation: one query frame against the horizon's carried keys and values (not T
queries against T frames, and not from raw k, v); it exports as plain ops (Mul, ReduceSum,
Div on the carried ring, no Transpose), depth nodes in all rather than 2 x depth.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import onnx

from lvt_edge.errors import LvtEdgeError
from lvt_edge.export.node import DOMAIN, OP_TYPE
from lvt_edge.export.simplify import simplified_onnx
from lvt_edge.export.torch_export import MIN_OPSET, count_ffla_nodes, finished_export, fused_attention
from lvt_edge.export.verify import ATOL, MIN_TOP1_AGREEMENT

STEP_ONNX = "model.step.onnx"
FRAME_INPUT = "frame"
LOGITS_OUTPUT = "logits"
VERIFY_STREAMS = 2  # streams verified side by side (batch 2), and one alone (batch 1)


def state_input(name: str) -> str:
    return f"state.{name}"


def state_output(name: str) -> str:
    return f"next.{name}"


def step_onnx_from_model(model, *, fuse: bool = True, opset: int = 20) -> onnx.ModelProto:
    """Export a causal LVT's step form (`lvt_edge.model.step.LVTStep`) with dynamic batch."""
    import torch

    from lvt_edge.model.step import LVTStep

    if opset < MIN_OPSET:
        raise LvtEdgeError(f"opset {opset} is too old: use --opset {MIN_OPSET} or newer (nvidia-modelopt drops "
                           "the model-local functions of older opsets)")
    model = model.eval()
    step = LVTStep(model).eval()
    cfg = model.cfg
    names = [t.name for t in step.spec]
    frame = torch.zeros(2, 3, cfg.img_size, cfg.img_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    dynamic = ({0: batch}, tuple({0: batch} for _ in names))
    ctx = fused_attention(model) if fuse else contextlib.nullcontext()
    with ctx, torch.no_grad():
        program = torch.onnx.export(
            step, (frame, *step.initial_state(2)), None, dynamo=True, opset_version=opset,
            input_names=[FRAME_INPUT, *map(state_input, names)],
            output_names=[LOGITS_OUTPUT, *map(state_output, names)],
            dynamic_shapes=dynamic, optimize=True, verbose=False,
        )
    return finished_export(program.model_proto, fuse)


def expected_step_nodes(cfg, fuse: bool) -> int:
    """Fused nodes of a step graph: one per block, the spatial attention's."""
    return cfg.depth if fuse else 0


def step_state_entries(cfg) -> list[dict[str, Any]]:
    """The state as bundle.json records it: name, ONNX input and output, shape after the batch axis."""
    from lvt_edge.model.causal import state_spec

    return [{"name": t.name, "input": state_input(t.name), "output": state_output(t.name),
             "shape": list(t.shape), "dtype": "float32"} for t in state_spec(cfg)]


def stream_logits_torch(model, frames: np.ndarray) -> np.ndarray:
    """The causal clip model's logits at every frame of B x 3 x N x H x W (its per-frame output)."""
    import torch

    with torch.no_grad():
        return model.forward_stream(torch.from_numpy(frames))[0].numpy()


def stream_logits_onnx(session, frames: np.ndarray, state_shapes: list[tuple[str, str, list[int]]]) -> np.ndarray:
    """Feed B x 3 x N x H x W frame by frame through a step session from zeros -> B x N x classes.

    `state_shapes`: (input, output, shape after batch) per state tensor, as bundle.json records them.
    """
    b, n = frames.shape[0], frames.shape[2]
    state = {i: np.zeros((b, *shape), np.float32) for i, _, shape in state_shapes}
    outputs = [LOGITS_OUTPUT, *(o for _, o, _ in state_shapes)]
    logits = []
    for t in range(n):
        res = session.run(outputs, {FRAME_INPUT: np.ascontiguousarray(frames[:, :, t]), **state})
        logits.append(res[0])
        state = {i: r for (i, _, _), r in zip(state_shapes, res[1:])}
    return np.stack(logits, axis=1)


def verify_step_onnx(model, onnx_bytes: bytes, *, frames: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Run random streams frame by frame in ONNX Runtime against the PyTorch causal clip model on the
    same frames (its logits at every frame); raise above `lvt_edge.export.verify.ATOL`.

    `frames` per stream defaults to 2 x horizon + 2, so the ring wraps and early frames have left
    every horizon before the stream ends.
    """
    import onnxruntime as ort

    from lvt_edge.console import ort_session_options

    cfg = model.cfg
    n = frames or 2 * cfg.time_horizon + 2
    session = ort.InferenceSession(onnx_bytes, ort_session_options(), providers=["CPUExecutionProvider"])
    shapes = [(e["input"], e["output"], e["shape"]) for e in step_state_entries(cfg)]
    clips = np.random.default_rng(seed).uniform(-1.0, 1.0, (VERIFY_STREAMS, 3, n, cfg.img_size, cfg.img_size))
    clips = clips.astype(np.float32)
    checks = {}
    for name, x in ((f"batch_{VERIFY_STREAMS}", clips), ("batch_1", clips[:1])):
        ref = stream_logits_torch(model, x)
        out = stream_logits_onnx(session, x, shapes)
        checks[name] = {"streams": int(x.shape[0]), "frames": n, "max_abs_diff": float(np.abs(out - ref).max()),
                        "top1_agreement": float((out.argmax(-1) == ref.argmax(-1)).mean())}
    report: dict[str, Any] = {
        "tolerance": {"max_abs_diff": ATOL, "top1_agreement": MIN_TOP1_AGREEMENT},
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
        "reference": "PyTorch causal clip model, logits at every frame of the same streams",
        "random": checks,
        "max_abs_diff": max(c["max_abs_diff"] for c in checks.values()),
        "top1_agreement": min(c["top1_agreement"] for c in checks.values()),
    }
    report["passed"] = report["max_abs_diff"] <= ATOL and report["top1_agreement"] >= MIN_TOP1_AGREEMENT
    if not report["passed"]:
        raise LvtEdgeError(
            f"the step model in ONNX Runtime disagrees with the PyTorch causal model: max abs logit difference "
            f"{report['max_abs_diff']:.3g} (tolerance {ATOL}), top-1 agreement {report['top1_agreement']:.1%}; "
            "nothing was written. Try --no-fuse or --simplifier none to find the stage at fault")
    return report


@dataclass
class StepExport:
    """A verified step graph, ready to be written next to model.onnx."""

    data: bytes
    entry: dict[str, Any]  # bundle.json's "step" entry, without the file's sha256

    def bundle_entry(self, sha256: str) -> dict[str, Any]:
        return {**self.entry, "sha256": sha256}


def step_export(model, *, simplifier: str = "onnxslim", fuse: bool = True, opset: int = 20,
                set_metadata: Callable[[onnx.ModelProto], None] | None = None) -> StepExport:
    """Export, simplify, check and verify the step model of a causal LVT (nothing is written)."""
    from lvt_edge.model.causal import state_bytes

    cfg = model.cfg
    t0 = time.perf_counter()
    proto = step_onnx_from_model(model, fuse=fuse, opset=opset)
    want, got = expected_step_nodes(cfg, fuse), count_ffla_nodes(proto)
    if got != want:
        raise RuntimeError(f"expected {want} {DOMAIN}::{OP_TYPE} nodes in the step graph, the export has {got}")
    proto = simplified_onnx(proto, simplifier)
    if set_metadata is not None:
        set_metadata(proto)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    export_time = time.perf_counter() - t0
    verification = verify_step_onnx(model, data)
    entry = {
        "onnx": STEP_ONNX, "precision": "fp32", "size_bytes": len(data), "opset": opset,
        "fused": fuse and got > 0, "ffla_nodes": got, "simplifier": simplifier,
        "frame": {"name": FRAME_INPUT, "shape": [3, cfg.img_size, cfg.img_size]},
        "logits": LOGITS_OUTPUT, "horizon": cfg.time_horizon,
        "state": step_state_entries(cfg), "state_bytes_fp32": state_bytes(cfg),
        "export_time_s": round(export_time, 3), "verification": verification,
    }
    return StepExport(data, entry)

