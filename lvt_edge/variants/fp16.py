"""fp32 ONNX -> fp16 ONNX, calibrated: tensors whose recorded range does not fit fp16 stay fp32.

The fused FFLA nodes get float16 I/O: q, k, v and out are float16 (so a strongly typed
TensorRT network reaches the plugin's fp16 kernel), gate_weight and gate_bias stay float32
initializers, and the op accumulates in float32 inside (its ONNX function casts up first, so
ONNX Runtime runs it too). bundle.json lists them under `fp16_io_nodes`.

Policy for what stays fp32 (each kept node is recorded in bundle.json with its reason):
- "reduction": LayerNormalization and reductions (mean/variance/sum over many values) stay fp32;
  fp16 accumulation of hundreds of terms loses more than the 10-bit mantissa can afford.
- "overflow": |x| reached more than 65504 / OVERFLOW_MARGIN on the calibration clips (for a
  fused node: on q, k, v or out; the node then keeps float32 I/O, with casts around it).
- "underflow": more than UNDERFLOW_FRACTION of the nonzero values fell below fp16's smallest
  normal number (2**-14), where fp16 keeps fewer than 10 significant bits.
- "fused": a fused node whose ONNX function takes float32 only (a model exported by an older
  lvt_edge) keeps float32 I/O; re-exporting gives it float16 I/O.
- "excluded": the node's name matched --exclude.
Graph inputs and outputs stay fp32 (keep_io_types), so callers see no difference.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any, Sequence

import numpy as np
import onnx

from lvt_edge import bundle as B
from lvt_edge.variants.graph import (cast_to, check_exclude, check_fused_intact, fused_nodes, fused_op,
                                  function_takes_fp16_io, input_name, set_metadata)
from lvt_edge.errors import LvtEdgeError, LvtEdgeWarning
from lvt_edge.io import atomic_path

FP16_MAX = 65504.0
FP16_MIN_NORMAL = 2.0**-14
OVERFLOW_MARGIN = 4.0
UNDERFLOW_FRACTION = 0.1
REDUCTION_OPS = ("LayerNormalization", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2",
                 "Softmax", "LogSoftmax", "GroupNormalization", "InstanceNormalization")
RANGE_CLIPS = 32  # enough to see each tensor's range; more only costs time
FUSED_FP16_INPUTS = 3  # q, k, v; gate_weight and gate_bias (inputs 3, 4) stay float32
FUSED_IO = "q, k, v, out float16; gate_weight, gate_bias float32; float32 accumulation inside"


class FusedFp32Warning(LvtEdgeWarning):
    """The fused nodes keep float32 I/O in an fp16 build because their ONNX function takes fp32 only."""


def tensor_ranges(model: onnx.ModelProto, clips: np.ndarray, *, progress: bool = True) -> dict[str, dict[str, float]]:
    """Run the fp32 model on `clips` (batch 1) with every float node output exposed; per tensor:
    absmax and the fraction of nonzero values below fp16's smallest normal number."""
    import onnxruntime as ort
    from lvt_edge.console import bar

    probe = _expose_float_outputs(model)
    from lvt_edge.console import ort_session_options

    opts = ort_session_options()
    # Graph fusions would hide the intermediate tensors we are asking for.
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    absmax = dict.fromkeys(names, 0.0)
    tiny = dict.fromkeys(names, 0)
    nonzero = dict.fromkeys(names, 0)
    feed_name = input_name(model)
    for clip in bar(clips[:RANGE_CLIPS], "fp16 ranges", "clip", enabled=progress):
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
    """node name -> why it stays fp32 (see the module docstring). A fused node missing here gets
    float16 q, k, v and out."""
    domain, op_type = fused_op()
    fused_fp16 = function_takes_fp16_io(model)
    patterns = [re.compile(p) for p in exclude]
    keep: dict[str, str] = {}
    for node in model.graph.node:
        fused = node.domain == domain and node.op_type == op_type
        if any(p.search(node.name) for p in patterns):
            keep[node.name] = "excluded"
        elif fused and not fused_fp16:
            keep[node.name] = "fused"
        elif node.op_type in REDUCTION_OPS:
            keep[node.name] = "reduction"
        else:
            # a fused node's float16 tensors are its q, k, v and out; the gate inputs stay float32
            names = [*node.input[:FUSED_FP16_INPUTS], *node.output] if fused else node.output
            stats = [ranges[o] for o in names if o in ranges]
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
    if "fused" in keep.values():
        warnings.warn("the fused attention nodes keep float32 I/O in the fp16 model: their ONNX function was "
                      "exported by an older lvt_edge and takes float32 only, so TensorRT would not reach the "
                      "plugin's fp16 kernel; re-run `lvt-edge export` and build again", FusedFp32Warning,
                      stacklevel=2)
    fp16_io = [n.name for n in fused_nodes(source) if n.name not in keep]
    _, op_type = fused_op()
    # The converter must not touch the fused nodes (it would turn their gate initializers into
    # float16); it puts casts around them, which _give_fp16_io then takes back.
    converted = float16.convert_float_to_float16(
        source, keep_io_types=True, max_finite_val=FP16_MAX,
        op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, op_type], node_block_list=[*keep, *fp16_io],
    )
    _give_fp16_io(converted, fp16_io)
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
                   "fp32_ops": list(REDUCTION_OPS), "fused_io": FUSED_IO},
        "fp32_nodes": keep,
        "fp32_reasons": reasons,
        "fused_nodes": fused,
        "fp16_io_nodes": fp16_io,
    }


def _give_fp16_io(model: onnx.ModelProto, names: Sequence[str]) -> None:
    """Make the fused nodes `names` of a converted model take float16 q, k, v and give float16
    out: the converter's float32 casts at their boundary are bypassed (and dropped when unused),
    and a Cast is added only where a neighbour stays float32. Gate inputs are left as they are."""
    if not names:
        return
    graph = model.graph
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    infos = {v.name: v for v in [*graph.input, *graph.value_info, *graph.output]}
    types = {n: v.type.tensor_type.elem_type for n, v in infos.items()}
    types.update({i.name: i.data_type for i in graph.initializer})
    producer = {o: n for n in graph.node for o in n.output}
    graph_outputs = {o.name for o in graph.output}
    before: dict[str, list[onnx.NodeProto]] = {}  # fused node name -> casts to insert before it
    after: dict[str, list[onnx.NodeProto]] = {}
    bypassed: list[onnx.NodeProto] = []  # up-casts no longer read by the fused node (dropped if unused)
    replaced: list[onnx.NodeProto] = []  # down-casts whose output the fused node now writes (dropped)

    def typed(name: str, like: str, elem: int) -> None:
        types[name] = elem
        if name in infos:
            infos[name].type.tensor_type.elem_type = elem
        elif like in infos:
            info = graph.value_info.add()
            info.CopyFrom(infos[like])
            info.name, info.type.tensor_type.elem_type = name, elem
            infos[name] = info

    def cast(src: str, dst: str, to: int, name: str) -> onnx.NodeProto:
        node = onnx.helper.make_node("Cast", [src], [dst], to=to, name=name)
        producer[dst] = node
        typed(dst, src, to)
        return node

    wanted = set(names)
    for node in [n for n in fused_nodes(model) if n.name in wanted]:
        for i in range(FUSED_FP16_INPUTS):
            x = node.input[i]
            up = producer.get(x)
            if up is not None and up.op_type == "Cast" and cast_to(up) == f32 and types.get(up.input[0]) == f16:
                node.input[i] = up.input[0]  # the converter's up-cast: take its float16 input
                bypassed.append(up)
            elif types.get(x) != f16:  # a float32 neighbour: cast down at the boundary
                x16 = f"{x}_fp16"
                if x16 not in producer:
                    before.setdefault(node.name, []).append(cast(x, x16, f16, f"{node.name}/input_cast_fp16_{i}"))
                node.input[i] = x16
        out = node.output[0]
        users = [n for n in graph.node if out in n.input]
        down = [n for n in users if n.op_type == "Cast" and cast_to(n) == f16 and n.output[0] not in graph_outputs]
        if down:  # the converter's down-cast: the node now writes its float16 output itself
            out16 = down[0].output[0]
            for extra in down[1:]:
                _rename_input(graph, extra.output[0], out16)
            replaced.extend(down)
        else:
            out16 = f"{out}_fp16"
            typed(out16, out, f16)
        node.output[0] = out16
        producer[out16] = node
        if len(down) < len(users) or out in graph_outputs:  # a float32 neighbour reads `out`
            after.setdefault(node.name, []).append(cast(out16, out, f32, f"{node.name}/output_cast_fp32"))
        else:
            producer.pop(out, None)
    read = {x for n in graph.node for x in n.input} | graph_outputs
    dropped = {_cast_key(n) for n in replaced}
    dropped |= {_cast_key(n) for n in bypassed if not set(n.output) & read}
    nodes = []
    for n in graph.node:
        if n.op_type == "Cast" and _cast_key(n) in dropped:
            continue
        fused = n.name in wanted and (n.domain, n.op_type) == fused_op()
        nodes += [*before.get(n.name, []), n, *after.get(n.name, [])] if fused else [n]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {x for n in graph.node for x in [*n.input, *n.output]} | graph_outputs
    keep_info = [v for v in graph.value_info if v.name in used]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)


def _cast_key(node: onnx.NodeProto) -> tuple:
    return node.name, tuple(node.input), tuple(node.output)


def _rename_input(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        for i, x in enumerate(node.input):
            if x == old:
                node.input[i] = new


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
