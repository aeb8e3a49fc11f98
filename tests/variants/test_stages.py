"""The INT8 and FP16 stages on a tiny fused-node ONNX: Q/DQ present, fused nodes intact, outputs close."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from lvt_edge import bundle as B
from lvt_edge.variants import fp16 as F
from lvt_edge.variants.graph import check_fused_intact, fused_nodes, metadata, op_counts
from lvt_edge.variants.quantize import qdq_onnx_from_onnx
from lvt_edge.errors import LvtEdgeError


def _run(path, clips):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"clip": clips})[0]


@pytest.fixture
def fp32(tmp_path, contract, make_model):
    path = tmp_path / "model.onnx"
    onnx.save(make_model(contract), str(path))
    return path


@pytest.fixture
def clips(contract):
    return np.random.default_rng(0).standard_normal((12, *contract.input_shape)).astype(np.float32)


def test_int8_has_qdq_keeps_fused_nodes_and_stays_close(fp32, clips, tmp_path):
    dst = tmp_path / "model.int8.onnx"
    info = qdq_onnx_from_onnx(fp32, dst, clips, method="max")
    model = onnx.load(str(dst))
    counts = op_counts(model)
    assert counts["QuantizeLinear"] >= 1 and counts["DequantizeLinear"] >= 2
    assert info["fused_nodes"] == len(fused_nodes(model)) == 2
    assert metadata(model)[B.META_PRECISION] == "int8"
    assert B.META_CONTRACT in metadata(model)
    ref, got = _run(fp32, clips), _run(dst, clips)
    assert np.abs(ref - got).max() < 0.05 * np.abs(ref).max()
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_int8_refuses_to_quantize_nothing(fp32, clips, tmp_path):
    with pytest.raises(LvtEdgeError, match="no Q/DQ"):
        qdq_onnx_from_onnx(fp32, tmp_path / "q.onnx", clips, exclude=[".*"])
    assert not (tmp_path / "q.onnx").exists()


def test_int8_bad_options(fp32, clips, tmp_path):
    with pytest.raises(LvtEdgeError, match="calibration method"):
        qdq_onnx_from_onnx(fp32, tmp_path / "q.onnx", clips, method="percentile")
    with pytest.raises(LvtEdgeError, match="regular expression"):
        qdq_onnx_from_onnx(fp32, tmp_path / "q.onnx", clips, exclude=["("])
    with pytest.raises(LvtEdgeError, match="no calibration clips"):
        qdq_onnx_from_onnx(fp32, tmp_path / "q.onnx", clips[:0])


def test_fused_check_catches_damage(contract, make_model):
    ref = make_model(contract)
    check_fused_intact(ref, ref, "noop")
    dropped = make_model(contract, fused=1)
    with pytest.raises(LvtEdgeError, match="broke the fused"):
        check_fused_intact(ref, dropped, "test")
    no_fn = make_model(contract)
    del no_fn.functions[:]
    with pytest.raises(LvtEdgeError, match="function was dropped"):
        check_fused_intact(ref, no_fn, "test")
    changed = make_model(contract)
    fused_nodes(changed)[0].attribute[0].i = 7
    with pytest.raises(LvtEdgeError, match="attributes"):
        check_fused_intact(ref, changed, "test")


def test_fp16_policy_reasons(contract, make_model):
    model = make_model(contract)
    names = {n.name: n for n in model.graph.node}
    ranges = {o: {"absmax": 1.0, "underflow_fraction": 0.0} for n in model.graph.node for o in n.output}
    ranges[names["embed/Add"].output[0]]["absmax"] = 30000.0  # x4 margin passes 65504
    ranges[names["mlp/Gelu"].output[0]]["underflow_fraction"] = 0.5
    keep = F.fp32_nodes(model, ranges, exclude=["^head/"])
    assert keep == {"embed/Add": "overflow", "blocks.0/ffla": "fused", "blocks.1/ffla": "fused",
                    "pool": "reduction", "norm": "reduction", "mean": "reduction",
                    "mlp/Gelu": "underflow", "head/Gemm": "excluded"}


def test_fp16_ranges_see_every_float_tensor(fp32, clips):
    model = onnx.load(str(fp32))
    ranges = F.tensor_ranges(model, clips[:2], progress=False)
    assert {"e0", "x1", "a0", "logits", "n"} <= set(ranges)
    assert all(r["absmax"] > 0 for r in ranges.values())


def test_fp16_keeps_io_fp32_and_stays_close(fp32, clips, tmp_path):
    dst = tmp_path / "model.fp16.onnx"
    info = F.fp16_onnx_from_onnx(fp32, dst, clips, progress=False)
    model = onnx.load(str(dst))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
    assert info["fp32_nodes"]["blocks.0/ffla"] == "fused" and info["fused_nodes"] == 2
    assert metadata(model)[B.META_PRECISION] == "fp16"
    ref, got = _run(fp32, clips), _run(dst, clips)
    assert np.abs(ref - got).max() < 0.01 * np.abs(ref).max()
