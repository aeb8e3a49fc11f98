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
Graph inputs and outputs stay fp32 (keep_io_types), so callers see no difference; a caller can ask
for groups of them (a step model's carried state) in float16 where that changes no value.
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


def tensor_ranges(model: onnx.ModelProto, samples: np.ndarray | dict[str, np.ndarray], *,
                  progress: bool = True) -> dict[str, dict[str, float]]:
    """Run the fp32 model with every float node output exposed; per tensor: absmax and the
    fraction of nonzero values below fp16's smallest normal number.

    `samples`: clips (N x 3 x T x H x W) for a model with one input, each run as a batch of one;
    or, for a model with several inputs (a step model: frame and state), input name -> array
    with one row per sample."""
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
    feeds = list(_range_feeds(model, samples))
    for feed in bar(feeds, "fp16 ranges", "clip" if isinstance(samples, np.ndarray) else "sample", enabled=progress):
        for name, value in zip(names, session.run(None, feed)):
            a = np.abs(np.asarray(value, np.float32))
            if a.size == 0:
                continue
            absmax[name] = max(absmax[name], float(a.max()))
            nz = a[a > 0]
            nonzero[name] += int(nz.size)
            tiny[name] += int((nz < FP16_MIN_NORMAL).sum())
    return {n: {"absmax": absmax[n], "underflow_fraction": tiny[n] / nonzero[n] if nonzero[n] else 0.0}
            for n in names}


def _range_feeds(model: onnx.ModelProto, samples: np.ndarray | dict[str, np.ndarray]):
    """Up to RANGE_CLIPS batch-1 feeds: the first clips, or rows spread over a dict's samples
    (a step model's rows run clip by clip, so the first ones would all be one clip's)."""
    if not isinstance(samples, dict):
        feed_name = input_name(model)
        for clip in samples[:RANGE_CLIPS]:
            yield {feed_name: clip[None]}
        return
    rows = sample_count(model, samples)
    for i in np.unique(np.linspace(0, rows - 1, min(rows, RANGE_CLIPS)).round().astype(int)):
        yield {k: v[i : i + 1] for k, v in samples.items()}


def sample_count(model: onnx.ModelProto, samples: np.ndarray | dict[str, np.ndarray]) -> int:
    """Calibration samples in `samples`, checked against the model's inputs: an array for a model
    with one input, else a dict with every input and as many rows in each."""
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if not isinstance(samples, dict):
        input_name(model)  # one input only
        return len(samples)
    if sorted(samples) != sorted(names):
        raise LvtEdgeError(f"calibration data has inputs {sorted(samples)}, the model takes {sorted(names)}; "
                           "pass one array per model input")
    rows = {len(v) for v in samples.values()}
    if len(rows) != 1:
        raise LvtEdgeError(f"calibration inputs have different sample counts {sorted(rows)}; give each input "
                           "one row per sample")
    return rows.pop()


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


def fp16_onnx_from_onnx(src: str | os.PathLike, dst: str | os.PathLike, clips: np.ndarray | dict[str, np.ndarray], *,
                        exclude: Sequence[str] = (), fp16_io: Sequence[Sequence[str]] = (),
                        progress: bool = True) -> dict[str, Any]:
    """Convert the fp32 ONNX `src` to fp16 at `dst`, keeping the nodes `fp32_nodes` names in fp32.
    Returns what the bundle records about it.

    clips: calibration samples as `tensor_ranges` takes them. fp16_io: groups of graph input and
    output names (a carried state's input and output) that become float16 together where that
    changes no value: the converted graph already rounds every one of them to float16 right
    behind the input, or right before the output. Other graph I/O stays float32; the result's
    `io_dtypes` says which is which."""
    from onnxconverter_common import float16

    source = onnx.load(str(src))
    if sample_count(source, clips) == 0:
        raise LvtEdgeError("no calibration clips; pass a clip set with --calib")
    _name_nodes(source)
    _explicit_zeros(source)
    ranges = tensor_ranges(source, clips, progress=progress)
    keep = fp32_nodes(source, ranges, check_exclude(exclude))
    if "fused" in keep.values():
        warnings.warn("the fused attention nodes keep float32 I/O in the fp16 model: their ONNX function was "
                      "exported by an older lvt_edge and takes float32 only, so TensorRT would not reach the "
                      "plugin's fp16 kernel; re-run `lvt-edge export` and build again", FusedFp32Warning,
                      stacklevel=2)
    fp16_io_nodes = [n.name for n in fused_nodes(source) if n.name not in keep]
    _, op_type = fused_op()
    # The converter must not touch the fused nodes (it would turn their gate initializers into
    # float16); it puts casts around them, which _give_fp16_io then takes back.
    converted = float16.convert_float_to_float16(
        source, keep_io_types=True, max_finite_val=FP16_MAX,
        op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, op_type], node_block_list=[*keep, *fp16_io_nodes],
    )
    _keep_float_outputs(converted, source)
    _give_fp16_io(converted, fp16_io_nodes)
    io_dtypes = _give_graph_fp16_io(converted, fp16_io)
    fused = check_fused_intact(source, converted, "FP16 conversion")
    set_metadata(converted, {B.META_PRECISION: "fp16"})
    with atomic_path(dst) as tmp:
        onnx.save(converted, str(tmp))
    reasons: dict[str, int] = {}
    for why in keep.values():
        reasons[why] = reasons.get(why, 0) + 1
    return {
        "converter": "onnxconverter-common float16, keep_io_types",
        "calibration_clips": int(min(sample_count(source, clips), RANGE_CLIPS)),
        "policy": {"overflow_margin": OVERFLOW_MARGIN, "underflow_fraction": UNDERFLOW_FRACTION,
                   "fp32_ops": list(REDUCTION_OPS), "fused_io": FUSED_IO},
        "fp32_nodes": keep,
        "fp32_reasons": reasons,
        "fused_nodes": fused,
        "fp16_io_nodes": fp16_io_nodes,
        "io_dtypes": io_dtypes,
    }


def _keep_float_outputs(model: onnx.ModelProto, source: onnx.ModelProto) -> None:
    """keep_io_types, also for outputs written by a node kept in float32: the converter casts such
    a node's outputs to float16 as if a float16 node read them, and a graph output among them
    turns float16 (a step model's state behind a Slice kept for underflow). That Cast goes and
    the node writes its float32 output itself."""
    graph = model.graph
    f32 = onnx.TensorProto.FLOAT
    wanted = {o.name for o in source.graph.output if o.type.tensor_type.elem_type == f32}
    producer = {o: n for n in graph.node for o in n.output}
    types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    dropped = set()
    for out in graph.output:
        cast = producer.get(out.name)
        if out.name not in wanted or out.type.tensor_type.elem_type == f32 or cast is None or cast.op_type != "Cast":
            continue
        out.type.tensor_type.elem_type = f32
        full = cast.input[0]
        if types.get(full, f32) != f32 or not cast.name or full in {i.name for i in graph.input}:
            cast.attribute[:] = [onnx.helper.make_attribute("to", f32)]
            continue
        for n in graph.node:
            n.output[:] = [out.name if o == full else o for o in n.output]
        _rename_input(graph, full, out.name)
        dropped.add(cast.name)
    if dropped:
        nodes = [n for n in graph.node if not (n.op_type == "Cast" and n.name in dropped)]
        del graph.node[:]
        graph.node.extend(nodes)
        outputs = {o.name for o in graph.output}
        keep_info = [v for v in graph.value_info if v.name not in outputs]
        del graph.value_info[:]
        graph.value_info.extend(keep_info)


def _give_graph_fp16_io(model: onnx.ModelProto, groups: Sequence[Sequence[str]]) -> dict[str, str]:
    """Make each group of graph inputs/outputs float16 where keep_io_types only put a Cast
    between it and float16 (an input read by Casts to float16 alone; an output written by a
    Cast to float32 of a float16 tensor): those Casts go, so no value changes. A group with one
    member that does not qualify stays float32 whole. Returns every graph I/O's dtype."""
    graph = model.graph
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    producer = {o: n for n in graph.node for o in n.output}
    inputs = {i.name: i for i in graph.input}
    outputs = {o.name: o for o in graph.output}

    def readers(name: str) -> list[onnx.NodeProto]:
        return [n for n in graph.node if name in n.input]

    def lossless(name: str) -> bool:
        if name in inputs:
            users = readers(name)
            return (types.get(name) == f32 and bool(users) and name not in outputs
                    and all(n.op_type == "Cast" and cast_to(n) == f16 and n.name for n in users))
        if name in outputs:
            up = producer.get(name)
            return (up is not None and up.op_type == "Cast" and cast_to(up) == f32 and bool(up.name)
                    and types.get(up.input[0]) == f16 and up.input[0] not in inputs and up.input[0] not in outputs)
        raise ValueError(f"{name} is not a graph input or output")

    dropped: set[str] = set()  # Cast names (the converter names its Casts, uniquely)
    for group in groups:
        if not all(lossless(n) for n in group):
            continue
        for name in group:
            if name in inputs:
                for cast in readers(name):
                    _rename_input(graph, cast.output[0], name)
                    dropped.add(cast.name)
                inputs[name].type.tensor_type.elem_type = f16
            else:
                cast = producer[name]
                half = cast.input[0]
                for n in graph.node:
                    n.output[:] = [name if o == half else o for o in n.output]
                _rename_input(graph, half, name)
                for v in graph.value_info:
                    if v.name == half:
                        v.name = name
                dropped.add(cast.name)
                outputs[name].type.tensor_type.elem_type = f16
    nodes = [n for n in graph.node if not (n.op_type == "Cast" and n.name in dropped)]
    del graph.node[:]
    graph.node.extend(nodes)
    # a renamed tensor's value_info would repeat the graph output's
    keep_info = [v for v in graph.value_info if v.name not in outputs]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)
    inits = {i.name for i in graph.initializer}
    return {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
            for v in [*graph.input, *graph.output] if v.name not in inits}


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


def _explicit_zeros(model: onnx.ModelProto) -> None:
    """Give each ConstantOfShape without a `value` its default one (float32 0) written out: the
    converter marks such a node's output float16 but cannot retype a value that is not there, so
    ONNX Runtime refused the result (the causal clip model's zero padding)."""
    zero = onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [0.0])
    for node in model.graph.node:
        if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
            node.attribute.append(onnx.helper.make_attribute("value", zero))


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
