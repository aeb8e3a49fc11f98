"""fp16 I/O on the fused nodes: q, k, v and out float16, gate inputs float32, on a tiny graph
(every boundary case) and through the real build on the bundled demo model."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from lvt_edge.variants import fp16 as F
from lvt_edge.variants.graph import fused_nodes, function_takes_fp16_io
from lvt_edge.export.node import DOMAIN, OP_TYPE

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _fp16_ready_function() -> onnx.FunctionProto:
    # Shaped like the exported body: q, k, v cast to float32 first, the output CastLike'd to q.
    nodes = [
        helper.make_node("Cast", ["q"], ["q32"], to=F32),
        helper.make_node("Cast", ["k"], ["k32"], to=F32),
        helper.make_node("Cast", ["v"], ["v32"], to=F32),
        helper.make_node("Relu", ["q32"], ["rq"]),
        helper.make_node("Sigmoid", ["k32"], ["sk"]),
        helper.make_node("Mul", ["rq", "sk"], ["m"]),
        helper.make_node("Add", ["m", "v32"], ["o32"]),
        helper.make_node("CastLike", ["o32", "q"], ["out"]),
    ]
    return helper.make_function(DOMAIN, OP_TYPE, ["q", "k", "v"], ["out"], nodes, [helper.make_opsetid("", 20)],
                                attributes=["heads", "plugin_namespace", "plugin_version"])


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


def _casts_at_fused(model: onnx.ModelProto) -> int:
    """Cast nodes that feed a fused node's q, k, v or read its output."""
    ins = {x for n in fused_nodes(model) for x in n.input[: F.FUSED_FP16_INPUTS]}
    outs = {n.output[0] for n in fused_nodes(model)}
    return sum(1 for n in model.graph.node if n.op_type == "Cast" and (set(n.output) & ins or set(n.input) & outs))


def _run(path, clips):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"clip": clips})[0]


@pytest.fixture
def clips(contract):
    return np.random.default_rng(0).standard_normal((6, *contract.input_shape)).astype(np.float32)


@pytest.fixture
def fp16_ready(tmp_path, contract, make_model):
    model = make_model(contract)
    del model.functions[:]
    model.functions.append(_fp16_ready_function())
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_only_the_casting_body_takes_fp16(contract, make_model):
    from lvt_edge.export.ffla_function import ffla_function_proto

    exported = make_model(contract)
    del exported.functions[:]
    exported.functions.append(ffla_function_proto())
    assert function_takes_fp16_io(exported)
    assert not function_takes_fp16_io(make_model(contract)), "a body that computes in its inputs' type"


@pytest.mark.parametrize("exclude,casts", [((), 0), (("^embed/Add$", "residual"), 4)],
                         ids=["fp16-neighbours", "fp32-neighbours"])
def test_fused_nodes_get_fp16_io(fp16_ready, clips, tmp_path, exclude, casts):
    """fp16 neighbours: the converter's casts around the node are gone; fp32 neighbours (kept by
    --exclude): a down-cast of each q/k/v source tensor (a fake node reads one tensor as q, k and
    v) and an up-cast of its output, per node."""
    dst = tmp_path / "model.fp16.onnx"
    info = F.fp16_onnx_from_onnx(fp16_ready, dst, clips, exclude=exclude, progress=False)
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    assert info["fp16_io_nodes"] == ["blocks.0/ffla", "blocks.1/ffla"] and info["fused_nodes"] == 2
    assert "fused" not in info["fp32_reasons"] and info["policy"]["fused_io"] == F.FUSED_IO
    types = _elem_types(model)
    for node in fused_nodes(model):
        assert [types[x] for x in [*node.input, *node.output]] == [F16] * 4, node.name
    assert _casts_at_fused(model) == casts
    ref, got = _run(fp16_ready, clips), _run(dst, clips)
    assert np.abs(ref - got).max() < 0.01 * np.abs(ref).max()


def test_fused_node_that_would_overflow_keeps_fp32_io(fp16_ready):
    model = onnx.load(str(fp16_ready))
    ranges = {o: {"absmax": 1.0, "underflow_fraction": 0.0} for n in model.graph.node for o in n.output}
    ranges["a1"]["absmax"] = 30000.0  # blocks.1/ffla's output: x4 margin passes 65504
    keep = F.fp32_nodes(model, ranges)
    assert keep["blocks.1/ffla"] == "overflow" and "blocks.0/ffla" not in keep


def test_an_old_body_keeps_fp32_io_and_warns(contract, make_model, clips, tmp_path):
    src = tmp_path / "old.onnx"
    onnx.save(make_model(contract), str(src))
    with pytest.warns(F.FusedFp32Warning, match="re-run `lvt-edge export`"):
        info = F.fp16_onnx_from_onnx(src, tmp_path / "old.fp16.onnx", clips, progress=False)
    assert info["fp16_io_nodes"] == [] and info["fp32_reasons"]["fused"] == 2
    model = onnx.load(str(tmp_path / "old.fp16.onnx"))
    types = _elem_types(model)
    assert all(types[x] == F32 for n in fused_nodes(model) for x in [*n.input, *n.output])


@pytest.fixture(scope="module")
def demo_fp16(tmp_path_factory):
    """The real build on the bundled demo model: export, synthetic calibration (32 clips) and 64
    held-out synthetic clips (the must-show 500-clip numbers come from `lvt-edge build`)."""
    from lvt_edge.variants import build_bundle
    from lvt_edge.demo import DEMO_CHECKPOINT

    if not DEMO_CHECKPOINT.with_name(DEMO_CHECKPOINT.name + ".safetensors").is_file():
        pytest.skip("the bundled demo model is not trained yet")
    workdir = tmp_path_factory.mktemp("demo")
    data = build_bundle(workdir, "fp16", calib_size=32, eval_size=64, latency_rounds=0, progress=False)
    return workdir, data


def test_demo_fp16_bundle_has_fp16_io_on_every_fused_node(demo_fp16):
    from lvt_edge import bundle as B

    workdir, data = demo_fp16
    fp32 = onnx.load(str(workdir / B.onnx_name("fp32")))
    model = onnx.load(str(workdir / B.onnx_name("fp16")))
    onnx.checker.check_model(model, full_check=True)
    nodes = fused_nodes(model)
    assert len(nodes) == len(fused_nodes(fp32)) == 6
    types = _elem_types(model)
    for node in nodes:
        assert [types[x] for x in node.input] == [F16, F16, F16, F32, F32], node.name
        assert types[node.output[0]] == F16, node.name
    assert _casts_at_fused(model) == 0, "q/k/v producers and the output's consumer run in fp16"
    conversion = data["variants"]["fp16"]["conversion"]
    assert sorted(conversion["fp16_io_nodes"]) == sorted(n.name for n in nodes)
    assert "fused" not in conversion["fp32_reasons"]


def test_demo_fp16_matches_fp32_on_held_out_clips(demo_fp16):
    _, data = demo_fp16
    held = data["variants"]["fp16"]["heldout"]
    assert held["clipset"]["clips"] == 64
    assert held["drop_pt"] <= 0.1 and held["agreement_with_fp32"] == 100.0


def test_demo_fused_node_between_fp32_neighbours(demo_fp16, tmp_path):
    """Its q/k/v Split and the output projection kept fp32 (--exclude): the node still takes fp16
    I/O, through three down-casts and one up-cast at its boundary."""
    from lvt_edge import bundle as B

    workdir, _ = demo_fp16
    src = workdir / B.onnx_name("fp32")
    fp32 = onnx.load(str(src))
    first = fused_nodes(fp32)[0]
    split = next(n for n in fp32.graph.node if first.input[0] in n.output)
    proj = next(n for n in fp32.graph.node if first.output[0] in n.input)
    shape = [d.dim_value for d in fp32.graph.input[0].type.tensor_type.shape.dim[1:]]
    clips = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
    dst = tmp_path / "model.fp16.onnx"
    info = F.fp16_onnx_from_onnx(src, dst, clips, exclude=[f"^{split.name}$", f"^{proj.name}$"], progress=False)
    assert info["fp32_nodes"][split.name] == info["fp32_nodes"][proj.name] == "excluded"
    model = onnx.load(str(dst))
    onnx.checker.check_model(model, full_check=True)
    types = _elem_types(model)
    for node in fused_nodes(model):
        assert [types[x] for x in [*node.input, *node.output]] == [F16, F16, F16, F32, F32, F16], node.name
    assert _casts_at_fused(model) == 4
    ref, got = _run(src, clips), _run(dst, clips)
    assert np.abs(ref - got).max() < 0.01 * np.abs(ref).max()
