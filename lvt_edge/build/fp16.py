"""fp32 ONNX -> fp16 ONNX, calibrated: tensors whose recorded range does not fit fp16 stay fp32.

Policy (each kept node is recorded in bundle.json with its reason):
- "fused": the FFLA nodes stay fp32; their sums over tokens/frames accumulate inside the op.
- "reduction": LayerNormalization and reductions (mean/variance/sum over many values) stay fp32;
  fp16 accumulation of hundreds of terms loses more than the 10-bit mantissa can afford.
- "overflow": |x| reached more than 65504 / OVERFLOW_MARGIN on the calibration clips.
- "underflow": more than UNDERFLOW_FRACTION of the nonzero values fell below fp16's smallest
  normal number (2**-14), where fp16 keeps fewer than 10 significant bits.
Graph inputs and outputs stay fp32 (keep_io_types), so callers see no difference.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Sequence

import numpy as np
import onnx

from lvt_edge import bundle as B
from lvt_edge.build.graph import check_exclude, check_fused_intact, fused_op, input_name, set_metadata
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14
OVERFLOW_MARGIN = 4.0
UNDERFLOW_FRACTION = 0.1
REDUCTION_OPS = ("LayerNormalization", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2",
                 "Softmax", "LogSoftmax", "GroupNormalization", "InstanceNormalization")
RANGE_CLIPS = 32  # enough to see each tensor's range; more only costs time


def tensor_ranges(model: onnx.ModelProto, clips: np.ndarray, *, progress: bool = True) -> dict[str, dict[str, float]]:
    """Run the fp32 model on `clips` (batch 1) with every float node output exposed; per tensor:
    absmax and the fraction of nonzero values below fp16's smallest normal number."""
    import onnxruntime as ort
    from tqdm import tqdm

    probe = _expose_float_outputs(model)
    opts = ort.SessionOptions()
    # Graph fusions would hide the intermediate tensors we are asking for.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    absmax = dict.fromkeys(names, 0.0)
    tiny = dict.fromkeys(names, 0)
    nonzero = dict.fromkeys(names, 0)
    feed_name = input_name(model)
    for clip in tqdm(clips[:RANGE_CLIPS], desc="fp16 ranges", unit="clip", disable=not progress,
                     file=sys.stderr, leave=False):
        for name, value in zip(names, session.run(None, {feed_name: clip[None]})):
            a = np.abs(np.asarray(value, np.float32))
            if a.size == 0:
                continue
            absmax[name] = max(absmax[name], float(a.max()))
            nz = a[a > 0]
            nonzero[name] += int(nz.size)
            tiny[name] += int((nz < FP16_MIN_NORMAL).sum())
    return {n: {"absmax": absmax[n], "underflow_fraction": tiny[n] / nonzero[n] if nonzero[n] else 0.0}
            for n in names}


def _expose_float_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in
             [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    present = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for out in node.output:
            if out and out not in present and types.get(out) == onnx.TensorProto.FLOAT:
                probe.graph.output.add().CopyFrom(onnx.helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, None))
                present.add(out)
    return probe


def fp32_nodes(model: onnx.ModelProto, ranges: dict[str, dict[str, float]],
               exclude: Sequence[str] = ()) -> dict[str, str]:
    """node name -> why it stays fp32 (see the module docstring; "excluded": matched --exclude)."""
    domain, op_type = fused_op()
    patterns = [re.compile(p) for p in exclude]
    keep: dict[str, str] = {}
    for node in model.graph.node:
        if any(p.search(node.name) for p in patterns):
            keep[node.name] = "excluded"
        elif node.domain == domain and node.op_type == op_type:
            keep[node.name] = "fused"
        elif node.op_type in REDUCTION_OPS:
            keep[node.name] = "reduction"
        else:
            stats = [ranges[o] for o in node.output if o in ranges]
            if any(s["absmax"] * OVERFLOW_MARGIN > FP16_MAX for s in stats):
                keep[node.name] = "overflow"
            elif any(s["underflow_fraction"] > UNDERFLOW_FRACTION for s in stats):
                keep[node.name] = "underflow"
    return keep


def fp16_onnx_from_onnx(src: str | os.PathLike, dst: str | os.PathLike, clips: np.ndarray, *,
                        exclude: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """Convert the fp32 ONNX `src` to fp16 at `dst`, keeping the nodes `fp32_nodes` names in fp32.
    Returns what the bundle records about it."""
    from onnxconverter_common import float16

    if len(clips) == 0:
        raise LvtEdgeError("no calibration clips; pass a clip set with --calib")
    source = onnx.load(str(src))
    _name_nodes(source)
    ranges = tensor_ranges(source, clips, progress=progress)
    keep = fp32_nodes(source, ranges, check_exclude(exclude))
    _, op_type = fused_op()
    converted = float16.convert_float_to_float16(
        source, keep_io_types=True, max_finite_val=FP16_MAX,
        op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, op_type], node_block_list=list(keep),
    )
    fused = check_fused_intact(source, converted, "FP16 conversion")
    set_metadata(converted, {B.META_PRECISION: "fp16"})
    with atomic_path(dst) as tmp:
        onnx.save(converted, str(tmp))
    reasons: dict[str, int] = {}
    for why in keep.values():
        reasons[why] = reasons.get(why, 0) + 1
    return {
        "converter": "onnxconverter-common float16, keep_io_types",
        "calibration_clips": int(min(len(clips), RANGE_CLIPS)),
        "policy": {"overflow_margin": OVERFLOW_MARGIN, "underflow_fraction": UNDERFLOW_FRACTION,
                   "fp32_ops": list(REDUCTION_OPS)},
        "fp32_nodes": keep,
        "fp32_reasons": reasons,
        "fused_nodes": fused,
    }


def _name_nodes(model: onnx.ModelProto) -> None:
    """node_block_list matches by name: give unnamed nodes unique ones."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
