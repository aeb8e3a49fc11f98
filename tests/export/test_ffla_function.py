"""The function body alone (a one-node model run by ONNX Runtime) equals the torch reference op."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from lvt_edge.export.ffla_function import ffla_function_proto  # noqa: E402
from lvt_edge.export.node import DOMAIN, OP_TYPE, node_attributes  # noqa: E402
from lvt_edge.model.ffla import ffla  # noqa: E402

TOL = 1e-5
FP16_REL_TOL = 1e-3  # fp16 I/O: max |out - ref| / max |ref|, ref on the same fp16-rounded inputs


def one_node_model(attrs, n_gates, t, s, c, d, io=TensorProto.FLOAT):
    """The node alone; `io` is the element type of q, k, v and out (the gate inputs stay float32)."""
    node = helper.make_node(OP_TYPE, ["q", "k", "v", "w", "b"], ["out"], domain=DOMAIN, **attrs)
    ins = [helper.make_tensor_value_info(n, io, ["B", t, s, c]) for n in "qkv"]
    ins += [helper.make_tensor_value_info("w", TensorProto.FLOAT, [n_gates, d, 3 * d]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [n_gates, d])]
    out = helper.make_tensor_value_info("out", io, ["B", t, s, c])
    graph = helper.make_graph([node], "ffla", ins, [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(DOMAIN, 1)],
                              functions=[ffla_function_proto()])
    onnx.checker.check_model(model, full_check=True)
    return model


def _cases():
    for axis, gate, shift in itertools.product(("temporal", "spatial"), ("none", "shared", "separate"), (False, True)):
        borders = (False, True) if shift and axis == "temporal" else (False,)
        divs = (4, 8) if shift and axis == "spatial" else (4,)
        for border, div in itertools.product(borders, divs):
            yield pytest.param(axis, gate, shift, border, div, id=f"{axis}-{gate}-shift{int(shift)}-border{int(border)}-div{div}")


@pytest.mark.parametrize("heads,grid,t,c", [(2, 4, 4, 32), (4, 3, 3, 64)], ids=["h2g4", "h4g3"])
@pytest.mark.parametrize("axis,gate,shift,border,div", list(_cases()))
def test_function_body_equals_reference(axis, gate, shift, border, div, heads, grid, t, c):
    gen = torch.Generator().manual_seed(0)
    d, s, b = c // heads, grid * grid, 2
    q, k, v = (torch.randn(b, t, s, c, generator=gen) for _ in range(3))
    n = {"none": 0, "shared": 1, "separate": 2}[gate]
    w = torch.randn(max(n, 1), d, 3 * d, generator=gen) * 0.3
    bias = torch.randn(max(n, 1), d, generator=gen) * 0.3
    kw = dict(heads=heads, axis=axis, grid=grid, shift=shift, shift_div=div, gate=gate, official_border=border, eps=1e-6)
    ref = ffla(q, k, v, w if n else None, bias if n else None, **kw).numpy()

    attrs = node_attributes(head_dim=d, **kw)
    sess = ort.InferenceSession(one_node_model(attrs, max(n, 1), t, s, c, d).SerializeToString())
    out = sess.run(None, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "w": w.numpy(), "b": bias.numpy()})[0]
    assert np.abs(out - ref).max() < TOL


@pytest.mark.parametrize("heads,grid,t,c", [(2, 4, 4, 32), (4, 3, 3, 64)], ids=["h2g4", "h4g3"])
@pytest.mark.parametrize("axis,gate,shift,border,div", list(_cases()))
def test_function_body_takes_fp16_io(axis, gate, shift, border, div, heads, grid, t, c):
    """fp16 q, k, v and out with fp32 gate inputs (the fp16 build's node): the body computes in
    fp32, so the only error is the output's rounding to fp16."""
    gen = torch.Generator().manual_seed(0)
    d, s, b = c // heads, grid * grid, 2
    q, k, v = (torch.randn(b, t, s, c, generator=gen).half() for _ in range(3))
    n = {"none": 0, "shared": 1, "separate": 2}[gate]
    w = torch.randn(max(n, 1), d, 3 * d, generator=gen) * 0.3
    bias = torch.randn(max(n, 1), d, generator=gen) * 0.3
    kw = dict(heads=heads, axis=axis, grid=grid, shift=shift, shift_div=div, gate=gate, official_border=border, eps=1e-6)
    ref = ffla(q.float(), k.float(), v.float(), w if n else None, bias if n else None, **kw).numpy()

    model = one_node_model(node_attributes(head_dim=d, **kw), max(n, 1), t, s, c, d, io=TensorProto.FLOAT16)
    sess = ort.InferenceSession(model.SerializeToString())
    out = sess.run(None, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "w": w.numpy(), "b": bias.numpy()})[0]
    assert out.dtype == np.float16
    assert np.abs(out.astype(np.float32) - ref).max() / np.abs(ref).max() < FP16_REL_TOL


def test_fp32_io_costs_no_cast(tmp_path):
    """On fp32 q, k, v the body's Casts and final CastLike are identities ONNX Runtime removes at
    load time (basic optimisations); on fp16 the three up-casts and the down-cast remain."""
    kw = dict(heads=2, axis="temporal", grid=4, shift=True, shift_div=4, gate="shared", official_border=False, eps=1e-6)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    for io, left in ((TensorProto.FLOAT, 0), (TensorProto.FLOAT16, 4)):
        model = one_node_model(node_attributes(head_dim=16, **kw), 1, 4, 16, 32, 16, io=io)
        # a consumer, as in the real graph (ONNX Runtime keeps a Cast that writes a graph output)
        model.graph.node[0].output[0] = "att"
        model.graph.node.append(helper.make_node("Relu", ["att"], ["out"]))
        so.optimized_model_filepath = str(tmp_path / f"opt{io}.onnx")
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]
        assert ops.count("Cast") + ops.count("CastLike") == left, (io, ops)


def test_cases_are_distinguishable():
    """The sweep above can fail: each switch changes the reference output on random inputs."""
    gen = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 4, 16, 32, generator=gen) for _ in range(3))
    w, b = torch.randn(2, 16, 48, generator=gen), torch.randn(2, 16, generator=gen)
    base = dict(heads=2, axis="temporal", grid=4, shift=True, gate="shared", official_border=False)
    ref = ffla(q, k, v, w[:1], b[:1], **base)
    for change in ({"official_border": True}, {"shift": False}, {"axis": "spatial"}):
        assert not torch.allclose(ffla(q, k, v, w[:1], b[:1], **{**base, **change}), ref, atol=1e-4), change
    assert not torch.allclose(ffla(q, k, v, w, b, **{**base, "gate": "separate"}), ref, atol=1e-4)


# Shapes that reach the body's other branches: frames >= head_dim (the q' (k'^T v) association
# in the temporal node), channel widths that are not powers of two (copy blocks smaller than the
# shift's groups), an odd head count (the shifted channels end inside a head).
@pytest.mark.parametrize("heads,grid,t,c", [(2, 3, 12, 16), (2, 3, 3, 48), (3, 3, 4, 48)],
                         ids=["long-clip", "c48", "h3"])
@pytest.mark.parametrize("axis,gate,shift,border,div", [
    ("temporal", "shared", True, False, 4), ("temporal", "separate", True, True, 4),
    ("spatial", "shared", True, False, 4), ("spatial", "separate", True, False, 8),
    ("temporal", "none", False, False, 4), ("spatial", "none", False, False, 4)])
def test_function_body_equals_reference_other_shapes(axis, gate, shift, border, div, heads, grid, t, c):
    test_function_body_equals_reference(axis, gate, shift, border, div, heads, grid, t, c)


def test_function_body_with_a_dynamic_frame_count():
    """The Gather index depends on the frame count; when it is not static ONNX Runtime cannot fold
    it and computes it on every run, which must give the same result."""
    gen = torch.Generator().manual_seed(3)
    kw = dict(heads=2, axis="temporal", grid=4, shift=True, shift_div=4, gate="shared", official_border=False, eps=1e-6)
    w, bias = torch.randn(1, 16, 48, generator=gen) * 0.3, torch.randn(1, 16, generator=gen) * 0.3
    model = one_node_model(node_attributes(head_dim=16, **kw), 1, "T", 16, 32, 16)
    sess = ort.InferenceSession(model.SerializeToString())
    for t in (3, 5):
        q, k, v = (torch.randn(1, t, 16, 32, generator=gen) for _ in range(3))
        ref = ffla(q, k, v, w, bias, **kw).numpy()
        out = sess.run(None, {"q": q.numpy(), "k": k.numpy(), "v": v.numpy(), "w": w.numpy(), "b": bias.numpy()})[0]
        assert np.abs(out - ref).max() < TOL


@pytest.mark.parametrize("axis", ["temporal", "spatial"])
def test_function_body_is_exact_where_the_gate_is_nearly_shut(axis):
    """A trained gate shuts channels: sigmoid(x) for x from -16 to -8, 1e-7 to 3e-4. ONNX
    Runtime's Sigmoid is off by up to 1.4e-7 there (30 % to several times the value), and the
    normaliser sums those gates, so its output would be percents off; the body's own sigmoid
    (1 / (1 + exp(-x))) must keep it at float32 rounding against a float64 reference."""
    gen = torch.Generator().manual_seed(5)
    d, t, grid, c = 16, 4, 4, 32
    kw = dict(heads=2, axis=axis, grid=grid, shift=True, shift_div=4, gate="shared", official_border=False, eps=1e-6)
    q, k, v = (torch.randn(2, t, grid * grid, c, generator=gen, dtype=torch.float64) for _ in range(3))
    w = torch.randn(1, d, 3 * d, generator=gen, dtype=torch.float64) * 0.3
    bias = -12.0 + 4.0 * torch.rand(1, d, generator=gen, dtype=torch.float64)  # pre-activations about -16 to -8
    ref = ffla(q, k, v, w, bias, **kw).numpy()
    sess = ort.InferenceSession(one_node_model(node_attributes(head_dim=d, **kw), 1, t, grid * grid, c, d)
                                .SerializeToString())
    feeds = {"q": q, "k": k, "v": v, "w": w, "b": bias}
    out = sess.run(None, {n: x.float().numpy() for n, x in feeds.items()})[0]
    # measured: 2.3e-7 / 2.7e-7 (temporal / spatial); 1.5e-4 / 8.8e-5 with ONNX Runtime's Sigmoid
    assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-5


@pytest.mark.parametrize("axis", ["temporal", "spatial"])
def test_function_body_folds_to_few_large_kernels(axis, tmp_path):
    """What ONNX Runtime runs for one node with static shapes (as exported): the index arithmetic is
    folded away, the shift and layout change are Gathers (no Pad/Slice chains), and the only
    Transpose is the one that puts the result back."""
    rng = np.random.default_rng(0)
    attrs = node_attributes(heads=2, head_dim=32, axis=axis, grid=7, shift=True, shift_div=4, gate="shared",
                            official_border=False, eps=1e-6)
    model = one_node_model(attrs, 1, 8, 49, 64, 32)
    w = rng.standard_normal((1, 32, 96)).astype(np.float32)
    model.graph.initializer.extend([onnx.numpy_helper.from_array(w, "w"),
                                    onnx.numpy_helper.from_array(np.zeros((1, 32), np.float32), "b")])
    del model.graph.input[3:]
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    # (ONNX Runtime keeps the identity Cast that writes the graph output of this one-node model)
    ops = [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node if n.op_type != "Cast"]
    assert not {"Range", "Where", "Mod", "Equal", "If", "ReduceMax", "Pad", "Slice"} & set(ops), ops
    # (q in one Gather; k and v in one, or two when some heads hold no shifted channel)
    assert ops.count("Transpose") == 1 and 2 <= ops.count("Gather") <= 3, ops
    # (the sigmoid is Exp, Add, Reciprocal: ONNX Runtime's Sigmoid is too coarse near zero)
    assert len(ops) <= 39, ops


def test_function_proto_is_the_same_in_every_process():
    """model.onnx must come out byte-identical from the same checkpoint (the build keeps variants
    and calibrations by its sha256); onnxscript orders the outputs of an If that returns several
    values by a set, which changes with Python's hash seed."""
    import hashlib
    import os
    import subprocess
    import sys

    code = ("import hashlib; from lvt_edge.export.ffla_function import ffla_function_proto; "
            "print(hashlib.sha256(ffla_function_proto().SerializeToString()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(4)}
    assert len(digests) == 1
    assert hashlib.sha256(ffla_function_proto().SerializeToString()).hexdigest() == digests.pop().strip()
