"""The target table and everything before the TensorRT API calls; real engines where TensorRT exists."""

from __future__ import annotations

import pytest

from lvt_edge.variants import targets as T
from lvt_edge.variants import tensorrt as TR
from lvt_edge.variants.graph import fused_nodes
from lvt_edge.errors import LvtEdgeError


def test_target_table_and_auto(monkeypatch):
    assert set(T.TARGETS) == {"onnxruntime", "tensorrt"}
    monkeypatch.setattr(T, "tensorrt_status", lambda: (None, "ImportError: libnvinfer"))
    assert T.resolve_target("auto").name == "onnxruntime"
    with pytest.raises(LvtEdgeError, match=r"needs TensorRT.*pip install 'lvt-edge\[trt\]'"):
        T.resolve_target("tensorrt")
    monkeypatch.setattr(T, "tensorrt_status", lambda: ("10.3.0", None))
    assert T.resolve_target("auto").name == "tensorrt"
    with pytest.raises(LvtEdgeError, match="unknown target"):
        T.resolve_target("openvino")


@pytest.mark.parametrize("version", ["8.5.2.2", "8.6.2.3", "9.3.0.1"])
def test_tensorrt_before_10_is_refused_and_auto_falls_back(monkeypatch, version):
    """JetPack 5 and 6.0 ship TensorRT 8.x: no strongly typed networks, no IPluginV3."""
    monkeypatch.setattr(T, "tensorrt_status", lambda: (version, None))
    lines: list[str] = []
    assert T.resolve_target("auto", log=lines.append).name == "onnxruntime"
    assert f"TensorRT {version} is too old" in lines[0] and "builds for onnxruntime" in lines[0]
    with pytest.raises(LvtEdgeError, match=rf"TensorRT {version} is too old.*>= 10.*--target onnxruntime"):
        T.resolve_target("tensorrt")
    assert T.resolve_target("onnxruntime").name == "onnxruntime"


def test_unsupported_combinations_are_refused():
    ort, trt = T.TARGETS["onnxruntime"], T.TARGETS["tensorrt"]
    T.check_request(ort, ("fp32", "int8"))
    T.check_request(trt, ("int8",), plugin="lib.so", batch=(1, 2, 4))
    with pytest.raises(LvtEdgeError, match="--batch-profile only apply to a TensorRT build"):
        T.check_request(ort, ("int8",), batch=(1, 2, 4))
    with pytest.raises(LvtEdgeError, match="--no-plugin"):
        T.check_request(ort, ("int8",), no_plugin=True)
    with pytest.raises(LvtEdgeError, match="contradict"):
        T.check_request(trt, ("int8",), plugin="lib.so", no_plugin=True)


@pytest.mark.parametrize("spec,want", [("1:1:8", (1, 1, 8)), ((2, 4, 16), (2, 4, 16))])
def test_parse_batch(spec, want):
    assert T.parse_batch(spec) == want


@pytest.mark.parametrize("spec", ["8:1:1", "1:8", "a:b:c", "0:1:2"])
def test_parse_batch_rejects(spec):
    with pytest.raises(LvtEdgeError, match="--batch-profile .*MIN:OPT:MAX"):
        T.parse_batch(spec)


def test_function_removed_only_before_10_7(contract, make_model):
    model = make_model(contract)
    old = TR.onnx_for_tensorrt(model, "10.3.0.26")
    assert not old.functions and len(fused_nodes(old)) == 2
    assert len(model.functions) == 1, "the caller's model is not modified"
    assert TR.onnx_for_tensorrt(model, "10.7.0") is model
    assert TR.onnx_for_tensorrt(model, "11.1.0").functions


def test_plugin_lookup(tmp_path, monkeypatch):
    with pytest.raises(LvtEdgeError, match="plugin library not found"):
        TR.find_plugin(tmp_path / "nope.so")
    monkeypatch.setattr(TR, "default_plugin_dirs", lambda: [tmp_path / "build" / "plugins"])
    with pytest.raises(LvtEdgeError, match="--no-plugin"):
        TR.find_plugin(None)
    lib = tmp_path / "build" / "plugins" / "ffla" / "liblvt_edge_plugins.so"
    lib.parent.mkdir(parents=True)
    lib.write_bytes(b"\x7fELF")
    assert TR.find_plugin(None) == lib


def test_profile_shapes(contract):
    assert TR.profile_shapes(contract, (1, 2, 8)) == ((1, 3, 4, 32, 32), (2, 3, 4, 32, 32), (8, 3, 4, 32, 32))


@pytest.mark.tensorrt
def test_real_engine_from_fake_bundle(fake_bundle, contract):
    """Builds and runs a real strongly typed engine (the fake's fused op runs as its ONNX function)."""
    import numpy as np

    from lvt_edge import bundle as B
    from lvt_edge.runtime import load_bundle

    rec = TR.engine_from_onnx(fake_bundle / "model.onnx", fake_bundle / B.engine_name("fp32"), contract,
                              workdir=fake_bundle, use_plugin=False, batch=(1, 2, 4))
    assert (fake_bundle / rec["engine"]).is_file() and (fake_bundle / rec["timing_cache"]).is_file()
    assert rec["tensorrt_version"] and rec["compute_capability"] and rec["plugin"] is None
    data = B.read_bundle(fake_bundle)
    data["variants"]["fp32"]["tensorrt"] = rec
    B.write_bundle(fake_bundle, data)
    clips = np.random.default_rng(0).standard_normal((2, *contract.input_shape)).astype(np.float32)
    with load_bundle(fake_bundle, "fp32", backend="tensorrt") as trt_clf, \
            load_bundle(fake_bundle, "fp32", backend="onnxruntime") as ort_clf:
        np.testing.assert_allclose(trt_clf.predict(clips), ort_clf.predict(clips), atol=1e-3)
