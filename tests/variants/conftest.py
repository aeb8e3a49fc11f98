"""Fixtures for the build tests: a tiny LVT-shaped ONNX with fused FFLA nodes, made with onnx.helper
in milliseconds (the build stages only see ONNX graphs), and small synthetic clip sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lvt_edge import bundle as B
from lvt_edge.contract import ClipContract
from lvt_edge.export.node import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
from lvt_edge.io import sha256_file

C = 16


def fake_contract() -> ClipContract:
    from lvt_edge.data import synth

    return ClipContract(frames=4, size=32, resize=32, labels=synth.LABELS)


def _ffla_function() -> onnx.FunctionProto:
    # Any float body will do here: the build must keep the node and this function intact.
    nodes = [
        helper.make_node("Relu", ["q"], ["rq"]),
        helper.make_node("Sigmoid", ["k"], ["sk"]),
        helper.make_node("Mul", ["rq", "sk"], ["m"]),
        helper.make_node("Add", ["m", "v"], ["out"]),
    ]
    return helper.make_function(DOMAIN, OP_TYPE, ["q", "k", "v"], ["out"], nodes,
                                [helper.make_opsetid("", 20)],
                                attributes=["heads", "plugin_namespace", "plugin_version"])


def fake_lvt_model(contract: ClipContract, seed: int = 0, fused: int = 2) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    k = contract.num_classes

    def init(name, *shape, scale=0.5):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w1", 3, C), init("b1", C), init("w2", C, C), init("ln_s", C, scale=0.1),
             init("ln_b", C, scale=0.1), init("w3", C, k), init("b3", k),
             numpy_helper.from_array(np.array([3, 4], np.int64), "ax34"),
             numpy_helper.from_array(np.array([1], np.int64), "ax1")]
    nodes = [
        helper.make_node("ReduceMean", ["clip", "ax34"], ["pooled"], keepdims=0, name="pool"),
        helper.make_node("Transpose", ["pooled"], ["tok"], perm=[0, 2, 1], name="to_tokens"),
        helper.make_node("MatMul", ["tok", "w1"], ["e0"], name="embed/MatMul"),
        helper.make_node("Add", ["e0", "b1"], ["x0"], name="embed/Add"),
    ]
    x = "x0"
    for i in range(fused):
        nodes += [
            helper.make_node(OP_TYPE, [x, x, x], [f"a{i}"], domain=DOMAIN, name=f"blocks.{i}/ffla",
                             heads=2, plugin_namespace=PLUGIN_NAMESPACE, plugin_version=PLUGIN_VERSION),
            helper.make_node("Add", [x, f"a{i}"], [f"x{i + 1}"], name=f"blocks.{i}/residual"),
        ]
        x = f"x{i + 1}"
    nodes += [
        helper.make_node("LayerNormalization", [x, "ln_s", "ln_b"], ["n"], axis=-1, name="norm"),
        helper.make_node("MatMul", ["n", "w2"], ["h"], name="mlp/MatMul"),
        helper.make_node("Gelu", ["h"], ["g"], name="mlp/Gelu"),
        helper.make_node("ReduceMean", ["g", "ax1"], ["feat"], keepdims=0, name="mean"),
        helper.make_node("Gemm", ["feat", "w3", "b3"], ["logits"], name="head/Gemm"),
    ]
    graph = helper.make_graph(
        nodes, "fake_lvt",
        [helper.make_tensor_value_info("clip", TensorProto.FLOAT, ["batch", *contract.input_shape])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20), helper.make_opsetid(DOMAIN, 1)],
                              functions=[_ffla_function()])
    model.ir_version = 10
    helper.set_model_props(model, {B.META_CONTRACT: contract.to_json(), B.META_PRECISION: "fp32"})
    onnx.checker.check_model(model)
    return model


def write_fake_bundle(workdir: Path, contract: ClipContract | None = None, **kw) -> Path:
    contract = contract or fake_contract()
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / B.onnx_name("fp32")
    onnx.save(fake_lvt_model(contract, **kw), str(path))
    data = B.new_bundle(contract, {"name": "fake"}, {"checkpoint": None, "sha256": None})
    data["variants"]["fp32"] = {"precision": "fp32", "onnx": path.name, "sha256": sha256_file(path),
                                "size_bytes": path.stat().st_size, "verification": {"source": "export"}}
    B.write_bundle(workdir, data)
    return workdir


@pytest.fixture
def contract() -> ClipContract:
    return fake_contract()


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    return write_fake_bundle(tmp_path / "bundle")


@pytest.fixture(scope="session")
def synth_clips(tmp_path_factory) -> Path:
    """22 synthetic clips (two per class), small frames: a calibration/eval clip set in seconds."""
    from lvt_edge.data import synth

    return synth.generate(tmp_path_factory.mktemp("clips") / "set", split="calib", num=22, seed=3,
                          frames=8, size=40, progress=False)


@pytest.fixture
def make_model():
    """fake_lvt_model(contract, seed=0, fused=2) as a fixture (test modules cannot import conftest)."""
    return fake_lvt_model
