"""Reading and checking the ONNX graphs a build starts from and makes (onnx only, no torch)."""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Sequence
from pathlib import Path

import onnx

from lvt_edge import bundle as B
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def fused_op() -> tuple[str, str]:
    """(domain, op_type) of the fused FFLA node, as the exporter names it."""
    from lvt_edge.export.node import DOMAIN, OP_TYPE

    return DOMAIN, OP_TYPE


def load_lvt_onnx(path: str | os.PathLike, *, rebuild: str = "re-run `lvt-edge export`") -> onnx.ModelProto:
    """Load an ONNX file written by lvt_edge export; clear errors for missing, corrupt or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise LvtEdgeError(f"{path} not found; {rebuild}")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError / RuntimeWarning subclasses for garbage
        raise LvtEdgeError(f"{path} is not a readable ONNX file ({type(e).__name__}: {e}); {rebuild}") from e
    if not model.graph.node:
        raise LvtEdgeError(f"{path} holds no ONNX graph; {rebuild}")
    if B.META_CONTRACT not in metadata(model):
        raise LvtEdgeError(
            f"{path} is not an lvt_edge LVT model (no {B.META_CONTRACT!r} in its metadata); "
            f"export it with `lvt-edge export`, which records the clip contract"
        )
    return model


def metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def set_metadata(model: onnx.ModelProto, items: dict[str, str]) -> None:
    """Add or overwrite metadata_props entries."""
    current = {p.key: p for p in model.metadata_props}
    for key, value in items.items():
        if key in current:
            current[key].value = value
        else:
            model.metadata_props.add(key=key, value=value)


def onnx_contract(model: onnx.ModelProto) -> ClipContract:
    return ClipContract.from_json(metadata(model)[B.META_CONTRACT])


def fused_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    domain, op_type = fused_op()
    return [n for n in model.graph.node if n.domain == domain and n.op_type == op_type]


def fused_function(model: onnx.ModelProto) -> onnx.FunctionProto | None:
    """The model-local function ONNX Runtime runs for the fused nodes, if the model has one."""
    domain, op_type = fused_op()
    return next((f for f in model.functions if f.domain == domain and f.name == op_type), None)


def function_takes_fp16_io(model: onnx.ModelProto) -> bool:
    """Whether the fused nodes' function accepts float16 q, k, v (and then gives float16 out).

    The body lvt_edge exports casts q, k, v to float32 first and CastLikes its output to q's
    type (`lvt_edge/export/ffla_function.py`); a body exported before that computes in its
    inputs' type and must keep float32 I/O.
    """
    fn = fused_function(model)
    if fn is None or len(fn.input) < 3 or not fn.output:
        return False
    for name in fn.input[:3]:
        # every use is a Cast to float32, except as the type of the final CastLike
        users = [n for n in fn.node if name in n.input and not (n.op_type == "CastLike" and n.input[0] != name)]
        if not users or any(n.op_type != "Cast" or cast_to(n) != onnx.TensorProto.FLOAT for n in users):
            return False
    last = next((n for n in fn.node if fn.output[0] in n.output), None)
    return last is not None and last.op_type == "CastLike" and list(last.input)[1:] == [fn.input[0]]


def cast_to(node: onnx.NodeProto) -> int | None:
    """The `to` element type of a Cast node."""
    return next((a.i for a in node.attribute if a.name == "to"), None)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    return dict(Counter(n.op_type for n in model.graph.node))


def _fused_signature(node: onnx.NodeProto) -> tuple:
    attrs = tuple(sorted((a.name, onnx.helper.get_attribute_value(a)) for a in node.attribute))
    return node.name, len(node.input), len(node.output), attrs


def check_fused_intact(reference: onnx.ModelProto, candidate: onnx.ModelProto, stage: str) -> int:
    """Fail loudly unless `candidate` keeps every fused node of `reference` (same names, same
    attributes, same arity) and the model-local function that ONNX Runtime runs for them."""
    domain, op_type = fused_op()
    ref = sorted(_fused_signature(n) for n in fused_nodes(reference))
    got = sorted(_fused_signature(n) for n in fused_nodes(candidate))
    problems = []
    if ref != got:
        problems.append(f"{len(ref)} {op_type} nodes before, {len(got)} after, or their attributes changed")
    ref_fn = any(f.domain == domain and f.name == op_type for f in reference.functions)
    got_fn = any(f.domain == domain and f.name == op_type for f in candidate.functions)
    if ref_fn and not got_fn:
        problems.append(f"the model-local {domain}::{op_type} function was dropped")
    if problems:
        raise LvtEdgeError(
            f"{stage} broke the fused attention nodes: {'; '.join(problems)}. The fused op must stay "
            f"float and intact; check the quantizer version (tested: nvidia-modelopt 0.47) or report a bug"
        )
    return len(got)


def input_name(model: onnx.ModelProto) -> str:
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(names) != 1:
        raise LvtEdgeError(f"an LVT ONNX model has one input (the clip), this one has {names}; re-export it")
    return names[0]


def check_exclude(patterns: Sequence[str]) -> list[str]:
    out = []
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise LvtEdgeError(f"--exclude {p!r} is not a valid regular expression: {e}") from e
        out.append(p)
    return out
