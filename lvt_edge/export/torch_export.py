"""PyTorch LVT -> ONNX ModelProto, with or without the fused FFLinearAttention nodes."""

from __future__ import annotations

import contextlib
from typing import Iterator

import onnx

from lvt_edge.errors import LvtEdgeError
from lvt_edge.export.node import DOMAIN, OP_TYPE, ffla_node

INPUT_NAME = "clip"
OUTPUT_NAME = "logits"
MIN_OPSET = 19  # nvidia-modelopt drops model-local functions below 19


@contextlib.contextmanager
def fused_attention(model) -> Iterator[None]:
    """While active, torch.onnx.export emits one lvt_edge::FFLinearAttention node per FFLA module."""
    from lvt_edge.model.lvt import Attention

    mods = [m for m in model.modules() if isinstance(m, Attention) and m.cfg.attention != "softmax"]
    for m in mods:
        m.onnx_op = ffla_node
    try:
        yield
    finally:
        for m in mods:
            del m.onnx_op


def onnx_from_model(model, *, fuse: bool = True, opset: int = 20) -> onnx.ModelProto:
    """Export an LVT module: input `clip` (B x 3 x T x H x W, dynamic B), output `logits`."""
    import torch

    if opset < MIN_OPSET:
        raise LvtEdgeError(f"opset {opset} is too old: use --opset {MIN_OPSET} or newer (nvidia-modelopt drops "
                           "the model-local functions of older opsets)")
    cfg = model.cfg
    model = model.eval()
    example = torch.zeros(2, 3, cfg.frames, cfg.img_size, cfg.img_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    ctx = fused_attention(model) if fuse else contextlib.nullcontext()
    with ctx, torch.no_grad():
        program = torch.onnx.export(
            model, (example,), None, dynamo=True, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"clip": {0: batch}}, optimize=True, verbose=False,
        )
    return finished_export(program.model_proto, fuse)


def finished_export(proto: onnx.ModelProto, fuse: bool) -> onnx.ModelProto:
    """What every torch export of an LVT gets before simplification: exact sigmoids and, when the
    graph has fused nodes, their function."""
    exact_sigmoids(proto)
    if fuse and count_ffla_nodes(proto):
        add_ffla_function(proto)
    return proto


SIGMOID_ONE = "lvt_edge.sigmoid.one"


def exact_sigmoids(proto: onnx.ModelProto) -> int:
    """Rewrite each top-level float32 Sigmoid as 1 / (1 + exp(-x)); returns how many.

    ONNX Runtime's CPU Sigmoid is off by up to 1.4e-7 absolute, so a fixation gate near zero
    (x < -8, where a trained gate shuts a channel) comes out 30 % to several times off, and the
    attention's normaliser sums those gates: the trained demo's logits moved by 1.5e-4. Its Exp
    is within 1e-7 relative. (The fused node's function body does the same by itself.)
    """
    from onnx import TensorProto, helper

    n = 0
    nodes = []
    for node in proto.graph.node:
        if node.op_type != "Sigmoid" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        x, y, tag = node.input[0], node.output[0], f"{node.name or y}/exact_sigmoid"
        nodes += [helper.make_node("Neg", [x], [f"{tag}/neg"], name=f"{tag}/Neg"),
                  helper.make_node("Exp", [f"{tag}/neg"], [f"{tag}/exp"], name=f"{tag}/Exp"),
                  helper.make_node("Add", [f"{tag}/exp", SIGMOID_ONE], [f"{tag}/den"], name=f"{tag}/Add"),
                  helper.make_node("Reciprocal", [f"{tag}/den"], [y], name=f"{tag}/Reciprocal")]
        n += 1
    if n:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
        if SIGMOID_ONE not in {i.name for i in proto.graph.initializer}:
            proto.graph.initializer.append(helper.make_tensor(SIGMOID_ONE, TensorProto.FLOAT, [], [1.0]))
    return n


def add_ffla_function(proto: onnx.ModelProto) -> None:
    """Attach the model-local function that makes the custom nodes runnable by any ONNX tool."""
    from lvt_edge.export.ffla_function import ffla_function_proto

    del_idx = [i for i, f in enumerate(proto.functions) if (f.domain, f.name) == (DOMAIN, OP_TYPE)]
    for i in reversed(del_idx):
        del proto.functions[i]
    proto.functions.append(ffla_function_proto())
    if not any(o.domain == DOMAIN for o in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid(DOMAIN, 1))


def count_ffla_nodes(proto: onnx.ModelProto) -> int:
    return sum(1 for n in proto.graph.node if (n.domain, n.op_type) == (DOMAIN, OP_TYPE))


def count_ffla_functions(proto: onnx.ModelProto) -> int:
    return sum(1 for f in proto.functions if (f.domain, f.name) == (DOMAIN, OP_TYPE))
