"""lvt_edge.report.profile: ONNX Runtime kernels attributed to the fused FFLA node they came from."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from onnx import TensorProto, helper  # noqa: E402

from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.export.ffla_function import ffla_function_proto  # noqa: E402
from lvt_edge.export.node import DOMAIN, OP_TYPE, node_attributes  # noqa: E402
from lvt_edge.report.profile import (  # noqa: E402
    OUTSIDE, attribute_kernels, format_profile, profile_onnx, profile_report, tagged_model,
)

T, GRID, C, HEADS = 4, 4, 32, 2
D = C // HEADS


def two_node_model():
    """x -> Relu -> temporal FFLA -> spatial FFLA -> Relu (q = k = v, gate weights as initializers)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="pre")]
    prev = "r"
    for i, axis in enumerate(("temporal", "spatial")):
        attrs = node_attributes(heads=HEADS, head_dim=D, axis=axis, grid=GRID, shift=True, shift_div=4,
                                gate="shared", official_border=False, eps=1e-6)
        nodes.append(helper.make_node(OP_TYPE, [prev, prev, prev, "w", "b"], [f"a{i}"], name=f"attn_{axis}",
                                      domain=DOMAIN, **attrs))
        prev = f"a{i}"
    nodes.append(helper.make_node("Relu", [prev], ["y"], name="post"))
    rng = np.random.default_rng(0)
    inits = [onnx.numpy_helper.from_array((rng.standard_normal((1, D, 3 * D)) * 0.3).astype(np.float32), "w"),
             onnx.numpy_helper.from_array(np.zeros((1, D), np.float32), "b")]
    shape = ["B", T, GRID * GRID, C]
    graph = helper.make_graph(nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(DOMAIN, 1)],
                             functions=[ffla_function_proto()])


@pytest.fixture(scope="module")
def profile():
    x = np.random.default_rng(1).standard_normal((1, T, GRID * GRID, C)).astype(np.float32)
    return profile_onnx(two_node_model(), {"x": x}, runs=3, warmup=1, threads=1)


def test_each_fused_node_gets_its_own_kernels(profile):
    assert [(f.name, f.axis) for f in profile.fused] == [("attn_temporal", "temporal"), ("attn_spatial", "spatial")]
    owners = {name: idx for name, _, idx, _ in profile.kernels}
    assert owners["pre"] is None and owners["post"] is None
    per_node = [sum(1 for _, _, idx, _ in profile.kernels if idx == i) for i in (0, 1)]
    assert min(per_node) >= 10  # the inlined bodies, If branches included
    # kernels ONNX Runtime renamed when it folded the body's If nodes are attributed too
    assert any(idx is not None and "_if_" in name for name, _, idx, _ in profile.kernels)
    assert sum(1 for _, _, idx, _ in profile.kernels if idx is None) == 2  # just the two Relus


def test_shares_add_up(profile):
    rows = profile.by_fused_node()
    assert [r["node"] for r in rows] == ["attn_temporal", "attn_spatial", OUTSIDE]
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert sum(r["share"] for r in profile.by_op_type()) == pytest.approx(1.0)
    assert profile.fused_share == pytest.approx(rows[0]["share"] + rows[1]["share"])
    assert 0.5 < profile.fused_share < 1.0
    gather = next(r for r in profile.by_op_type() if r["op_type"] == "Gather")
    assert gather["fused_us"] == pytest.approx(gather["us"])


def test_format_names_nodes_and_op_types(profile):
    text = format_profile(profile)
    assert "attn_temporal (temporal)" in text and "attn_spatial (spatial)" in text
    assert "Gather" in text and "fused FFLA bodies" in text


def test_tagged_model_leaves_the_source_alone():
    model = two_node_model()
    tagged, fused = tagged_model(model)
    assert [n.op_type for n in model.graph.node if n.domain == DOMAIN] == [OP_TYPE, OP_TYPE]
    assert len(model.functions) == 1
    copies = [n.op_type for n in tagged.graph.node if n.domain == DOMAIN]
    assert len(set(copies)) == 2 and all(c.startswith(OP_TYPE) and c != OP_TYPE for c in copies)
    assert {f.name for f in tagged.functions} >= set(copies)
    assert len(fused) == 2


def test_attribution_through_folded_if_branches():
    """Unnamed kernels connect to one fused node's marked kernels, or they stay unattributed."""
    mark = "_inlfunc_FFLinearAttention__lvtprof"

    def owners(nodes):
        return attribute_kernels(helper.make_graph(nodes, "g", [], []))

    chain = [
        helper.make_node("Relu", ["x"], ["a"], name=f"{mark}0_n1"),
        helper.make_node("Relu", ["a"], ["b"], name="_if_then_branch_token_3_Relu"),
        helper.make_node("Relu", ["b"], ["c"], name="fused _if_else_branch_Gemm/Fusion"),
        helper.make_node("Relu", ["c"], ["d"], name="outside"),
        helper.make_node("Relu", ["d"], ["e"], name=f"{mark}1_n1"),
        helper.make_node("Relu", ["e"], ["f"], name="_if_then_branch_Relu"),
    ]
    owner = owners(chain)
    assert owner[f"{mark}0_n1"] == 0 and owner["_if_then_branch_token_3_Relu"] == 0
    assert owner["fused _if_else_branch_Gemm/Fusion"] == 0
    assert owner["outside"] is None
    assert owner[f"{mark}1_n1"] == 1 and owner["_if_then_branch_Relu"] == 1
    # a loose kernel joining both bodies cannot be placed, nor can the loose kernels it joins
    owner = owners(chain + [helper.make_node("Add", ["c", "f"], ["g"], name="_if_else_branch_Add")])
    assert owner["_if_else_branch_Add"] is None and owner["_if_then_branch_Relu"] is None
    assert owner[f"{mark}0_n1"] == 0 and owner[f"{mark}1_n1"] == 1


def test_profile_report_is_for_onnxruntime_on_the_cpu(tmp_path):
    with pytest.raises(LvtEdgeError, match="ONNX Runtime"):
        profile_report(tmp_path, backend="tensorrt")
    with pytest.raises(LvtEdgeError, match="ONNX Runtime"):
        profile_report(tmp_path, device="cuda")


def test_models_are_profiled_side_by_side():
    from lvt_edge.report.profile import profile_models

    x = np.random.default_rng(2).standard_normal((2, T, GRID * GRID, C)).astype(np.float32)
    profs = profile_models({"a": (two_node_model(), {"x": x}), "b": (two_node_model(), {"x": x})}, runs=2, warmup=0)
    assert list(profs) == ["a", "b"] and all(p.batch == 2 and p.runs == 2 for p in profs.values())
    assert {k[0] for k in profs["a"].kernels} == {k[0] for k in profs["b"].kernels}


def test_bench_profile_prints_every_variant(bundle, capsys):
    from lvt_edge.cli import main

    assert main(["bench", str(bundle), "--profile", "--runs", "2", "--warmup", "0", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for p in ("fp32", "fp16", "int8"):
        assert f"{p} (model" in out
    assert out.count("\nop type ") == 3 and "interleaved" in out
    assert main(["bench", str(bundle), "--profile", "--backend", "tensorrt"]) == 1
