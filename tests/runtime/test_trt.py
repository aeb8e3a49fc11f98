"""TensorRT backend on fakes that follow TensorRT's and cuda-python's real return conventions
(tests/runtime/test_trt_fakes.py); a real engine where TensorRT exists (marker `tensorrt`)."""

from __future__ import annotations

import ctypes
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file
from lvt_edge.runtime import load_bundle
from lvt_edge.runtime.cuda import CudaPythonApi, cuda_api
from lvt_edge.runtime.trt import TensorRTClassifier, check_engine, engine_problems, import_tensorrt


import lvt_edge_tests_trt_fakes as F  # noqa: E402 (registered by tests/conftest.py)

RECORDED = {"engine": "model.int8.engine", "tensorrt_version": "10.3.0.30", "gpu": "Orin", "compute_capability": "8.7",
            "plugin": {"path": "liblvt_edge_plugins.so", "sha256": None}}


@pytest.fixture
def fakes(monkeypatch):
    """A fake TensorRT 10.16 and cuda-python 12.9 on a CUDA 12.6 driver with one Orin, installed."""
    trt = F.install_tensorrt(monkeypatch, F.make_tensorrt("10.16.1.11", device="Orin"))
    cudart = F.FakeCudart()
    F.install_cuda(monkeypatch, cudart)
    return types.SimpleNamespace(trt=trt, cudart=cudart)


def with_engine(work: Path, precision: str = "fp32", batch=(1, 2, 4)) -> dict:
    """Build `precision`'s engine with the real engine_from_onnx on the installed fakes."""
    from lvt_edge.variants.tensorrt import engine_from_onnx

    data = B.read_bundle(work)
    rec = engine_from_onnx(work / data["variants"][precision]["onnx"], work / B.engine_name(precision),
                           B.bundle_contract(data), workdir=work, use_plugin=False, batch=batch)
    data["variants"][precision]["tensorrt"] = rec
    B.write_bundle(work, data)
    return rec


@pytest.fixture
def work(tmp_path, bundle):
    shutil.copytree(bundle, tmp_path / "w")
    return tmp_path / "w"


def test_engine_problems_name_each_mismatch():
    ok = engine_problems(RECORDED, tensorrt_version="10.3.0.30", compute_capability=(8, 7), plugin_sha256="x",
                         gpu_name="Orin")
    assert ok == []
    bad = engine_problems(dict(RECORDED, plugin={"sha256": "aaa"}), tensorrt_version="10.16.1",
                          compute_capability=(9, 0), plugin_sha256="bbb")
    assert len(bad) == 3
    assert "TensorRT 10.3.0.30, this machine has 10.16.1" in bad[0]
    assert "compute capability 8.7 (Orin), this GPU is 9.0" in bad[1]
    assert "plugin" in bad[2]


def test_engine_problems_see_the_build_number_and_the_gpu_model():
    """Engines load only under the exact TensorRT build, on the GPU model they were tuned for."""
    assert engine_problems(RECORDED, tensorrt_version="10.3.0.26", compute_capability=(8, 7), plugin_sha256=None) == [
        "built with TensorRT 10.3.0.30, this machine has 10.3.0.26"]
    assert engine_problems(RECORDED, tensorrt_version="10.3.0", compute_capability=(8, 7), plugin_sha256=None) == [], \
        "a version given without its build number is compared on what it has"
    rtx = dict(RECORDED, gpu="NVIDIA GeForce RTX 3080", compute_capability="8.6")
    assert engine_problems(rtx, tensorrt_version="10.3.0.30", compute_capability=(8, 6), plugin_sha256=None,
                           gpu_name="NVIDIA A10") == ["built on GPU 'NVIDIA GeForce RTX 3080', this GPU is 'NVIDIA A10'"]


def test_check_engine_says_what_to_rebuild(work, fakes):
    (work / "model.int8.engine").write_bytes(b"ENGINE")
    (work / "liblvt_edge_plugins.so").write_bytes(b"PLUGIN")
    data = B.read_bundle(work)
    data["variants"]["int8"]["tensorrt"] = dict(
        RECORDED, sha256=sha256_file(work / "model.int8.engine"),
        plugin={"path": "liblvt_edge_plugins.so", "sha256": sha256_file(work / "liblvt_edge_plugins.so"), "version": "1"})
    B.write_bundle(work, data)
    entry = B.read_bundle(work)["variants"]["int8"]
    api = CudaPythonApi(fakes.cudart)
    engine, lib = check_engine(work, "int8", entry, tensorrt_version="10.3.0.30", api=api)
    assert engine.name == "model.int8.engine" and lib.name == "liblvt_edge_plugins.so"
    fix = f"lvt-edge build {work} --target tensorrt --precision int8 --force"
    with pytest.raises(LvtEdgeError, match="compute capability 8.7") as e:
        check_engine(work, "int8", entry, tensorrt_version="10.3.0.30", api=CudaPythonApi(F.FakeCudart(cc=(8, 6))))
    assert fix in str(e.value)
    with pytest.raises(LvtEdgeError, match="built on GPU 'Orin', this GPU is 'Jetson Thor'"):
        check_engine(work, "int8", entry, tensorrt_version="10.3.0.30", api=CudaPythonApi(F.FakeCudart(name=b"Jetson Thor")))
    other = work / "other.so"
    other.write_bytes(b"OTHER PLUGIN")
    with pytest.raises(LvtEdgeError, match="different plugin library"):
        check_engine(work, "int8", entry, tensorrt_version="10.3.0.30", api=api, plugin=other)
    with pytest.raises(LvtEdgeError, match="plugin library not found at .*lvt-edge plugin build"):
        check_engine(work, "int8", entry, tensorrt_version="10.3.0.30", api=api, plugin=work / "nope.so")
    with pytest.raises(LvtEdgeError, match="no TensorRT engine.*--target tensorrt --precision fp32"):
        check_engine(work, "fp32", B.read_bundle(work)["variants"]["fp32"], tensorrt_version="10.3.0", api=api)
    (work / "model.int8.engine").write_bytes(b"CHANGED")
    with pytest.raises(LvtEdgeError, match="changed after the build"):
        check_engine(work, "int8", entry, tensorrt_version="10.3.0.30", api=api)


@pytest.mark.filterwarnings("error::DeprecationWarning")  # int(cudaStream_t) is deprecated from 12.9.1
def test_engine_runs_through_cuda_python_and_matches_onnxruntime(work, fakes, tiny):
    rec = with_engine(work, batch=(1, 2, 4))
    assert rec["batch"] == [1, 2, 4] and rec["gpu"] == "Orin" and rec["compute_capability"] == "8.7"
    contract = B.bundle_contract(B.read_bundle(work))
    x = tiny.clips_for(contract, 6, seed=2)
    with load_bundle(work, "fp32", "tensorrt") as clf, load_bundle(work, "fp32", "onnxruntime") as ref:
        assert clf.backend == "tensorrt" and (clf.min_batch, clf.max_batch) == (1, 4)
        np.testing.assert_allclose(clf.logits(x), ref.logits(x), atol=1e-4)  # 6 clips: batches of 4 and 2
        np.testing.assert_allclose(clf.predict(x[0]), ref.predict(x[0]), atol=1e-5)
    assert fakes.cudart.device == {} and fakes.cudart.host == {} and fakes.cudart.streams == {}, "everything freed"


@pytest.mark.parametrize("n", [1, 3, 9])
def test_batches_outside_the_profile_are_padded_or_split(work, fakes, tiny, n):
    """--batch-profile 2:4:8: one clip is padded up to the minimum, nine are split at the maximum;
    set_input_shape refuses anything else (it returns False)."""
    with_engine(work, batch=(2, 4, 8))
    contract = B.bundle_contract(B.read_bundle(work))
    x = tiny.clips_for(contract, n, seed=3)
    with load_bundle(work, "fp32", "tensorrt") as clf, load_bundle(work, "fp32", "onnxruntime") as ref:
        assert (clf.min_batch, clf.max_batch) == (2, 8)
        np.testing.assert_allclose(clf.logits(x), ref.logits(x), atol=1e-4)


def test_a_refused_input_shape_is_reported(work, fakes, tiny):
    with_engine(work, batch=(2, 4, 8))
    contract = B.bundle_contract(B.read_bundle(work))
    with load_bundle(work, "fp32", "tensorrt") as clf:
        clf.min_batch = 1  # as if the profile had been misread
        with pytest.raises(RuntimeError, match=r"refused input shape \(1, .*profile batch 1\.\.8"):
            clf.logits(tiny.clips_for(contract, 1))


def test_static_engine_runs_full_batches(work, fakes, tiny):
    import onnx

    model = onnx.load(str(work / "model.onnx"))
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_value = 4
    onnx.save(model, str(work / "model.onnx"))
    data = B.read_bundle(work)
    data["variants"]["fp32"]["sha256"] = sha256_file(work / "model.onnx")
    B.write_bundle(work, data)
    with_engine(work, batch=(4, 4, 4))
    contract = B.bundle_contract(data)
    x = tiny.clips_for(contract, 5, seed=4)
    with load_bundle(work, "fp32", "tensorrt") as clf, load_bundle(work, "fp32", "onnxruntime") as ref:
        assert clf.max_batch == 4 and clf._static
        np.testing.assert_allclose(clf.logits(x), ref.logits(x), atol=1e-4)


def _engine_with_io(work: Path, trt, output: list, out_type: str = "FLOAT") -> Path:
    shape = [*B.bundle_contract(B.read_bundle(work)).input_shape]
    meta = {"version": trt.__version__, "input": ["clip", [-1, *shape], "FLOAT"],
            "output": ["logits", output, out_type], "profile": [[1, *shape]] * 3, "plugins": []}
    path = work / "odd.engine"
    path.write_bytes(F.ENGINE_MAGIC + json.dumps(meta).encode() + b"\n" + (work / "model.onnx").read_bytes())
    return path


def test_outputs_are_checked_against_the_contract(work, fakes):
    contract = B.bundle_contract(B.read_bundle(work))
    api = CudaPythonApi(fakes.cudart)
    wrong = _engine_with_io(work, fakes.trt, [-1, contract.num_classes + 1])
    with pytest.raises(LvtEdgeError, match=rf"returns \(-1, {contract.num_classes + 1}\), the contract says "
                                           rf"Bx{contract.num_classes}"):
        TensorRTClassifier(wrong, contract, trt=fakes.trt, api=api)
    bf16 = _engine_with_io(work, fakes.trt, [-1, contract.num_classes], "BF16")
    with pytest.raises(LvtEdgeError, match="numpy cannot hold"):
        TensorRTClassifier(bf16, contract, trt=fakes.trt, api=api)
    assert fakes.cudart.device == {} and fakes.cudart.host == {}


def test_memory_is_freed_only_after_the_stream_is_done(work, fakes, tiny):
    """A copy fails while work is queued: close() synchronises the stream before freeing."""
    with_engine(work)
    contract = B.bundle_contract(B.read_bundle(work))
    real = fakes.cudart.cudaMemcpyAsync

    def failing_readback(dst, src, count, kind, stream):
        if kind == F.cudaMemcpyKind.cudaMemcpyDeviceToHost:
            return (F.cudaError_t.cudaErrorInvalidValue,)
        return real(dst, src, count, kind, stream)

    fakes.cudart.cudaMemcpyAsync = failing_readback
    clf = load_bundle(work, "fp32", "tensorrt")
    with pytest.raises(RuntimeError, match="cudaErrorInvalidValue"):
        clf.logits(tiny.clips_for(contract, 1))
    fakes.cudart.events.clear()
    clf.close()
    kinds = [k for k, _ in fakes.cudart.events]
    assert kinds[0] == "sync" and kinds.index("sync") < kinds.index("free") and kinds[-1] == "destroy"


def test_undeserialisable_engine_frees_what_it_took(work, fakes):
    contract = B.bundle_contract(B.read_bundle(work))
    (work / "bad.engine").write_bytes(b"GARBAGE")
    with pytest.raises(LvtEdgeError, match="could not deserialise"):
        TensorRTClassifier(work / "bad.engine", contract, trt=fakes.trt, api=CudaPythonApi(fakes.cudart))
    assert fakes.cudart.device == {} and fakes.cudart.host == {}


def test_tensorrt_older_than_10_is_refused(monkeypatch):
    F.install_tensorrt(monkeypatch, F.make_tensorrt("8.6.2.3"))
    with pytest.raises(LvtEdgeError, match=r"TensorRT 8.6.2.3 is too old.*>= 10.*JetPack 6.1\+"):
        import_tensorrt()
    F.install_tensorrt(monkeypatch, F.make_tensorrt("10.3.0"))
    assert import_tensorrt().__version__ == "10.3.0"


def test_without_tensorrt_the_error_says_what_to_install(work, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(LvtEdgeError, match="install TensorRT 10"):
        import_tensorrt()
    data = B.read_bundle(work)
    data["variants"]["int8"]["tensorrt"] = dict(RECORDED)
    B.write_bundle(work, data)
    with pytest.raises(LvtEdgeError, match="install TensorRT 10"):
        load_bundle(work, "int8", "tensorrt")


# --- the CUDA binding ----------------------------------------------------------------------------

def importer(available):
    def imp(name):
        if name not in available:
            raise ImportError(f"No module named {name!r}")
        return available[name]
    return imp


PYCUDA = {"pycuda.driver": types.SimpleNamespace(Device=types.SimpleNamespace(count=lambda: 1)),
          "pycuda.autoprimaryctx": object()}


def test_cuda_adapter_selection():
    rt = F.FakeCudart()
    both = {"cuda.bindings.runtime": rt, "cuda.bindings.utils": F.cuda_utils(), **PYCUDA}
    assert cuda_api("auto", importer(both)).name == "cuda-python"
    assert cuda_api("pycuda", importer(both)).name == "pycuda"
    assert cuda_api("auto", importer(PYCUDA)).name == "pycuda"
    with pytest.raises(LvtEdgeError, match=r"lvt-edge\[trt-cu12\].*lvt-edge\[jetpack6\]"):
        cuda_api("auto", importer({}))
    with pytest.raises(LvtEdgeError, match="choose one of"):
        cuda_api("cupy", importer(both))
    with pytest.raises(LvtEdgeError, match="cuda-python sees no CUDA device"):
        cuda_api("cuda-python", importer({"cuda.bindings.runtime": F.FakeCudart(devices=0)}))


def test_a_binding_newer_than_the_driver_is_reported_as_such_and_auto_tries_pycuda():
    """cuda-python 13.x on JetPack 6's CUDA 12.6 driver: cudaErrorInsufficientDriver, not 'no device'."""
    rt13 = F.FakeCudart(driver=12060, runtime=13000)
    with pytest.raises(LvtEdgeError) as e:
        cuda_api("cuda-python", importer({"cuda.bindings.runtime": rt13}))
    msg = str(e.value)
    assert "built for CUDA 13.0 but the driver supports CUDA 12.6" in msg and "cudaErrorInsufficientDriver" in msg
    assert "cuda-python>=12.6.1,<13" in msg and "no CUDA device" not in msg
    assert cuda_api("auto", importer({"cuda.bindings.runtime": rt13, **PYCUDA})).name == "pycuda"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the fake stream warns; bindings this old do not
def test_cuda_python_before_12_6_1_is_used_through_cuda_cudart():
    api = cuda_api("auto", importer({"cuda.cudart": F.FakeCudart()}))
    assert api.name == "cuda-python" and api.device_name() == "Orin"
    stream = api.stream_create()
    assert api.stream_handle(stream) == stream._address  # int(): no get_cuda_native_handle there


def test_cuda_python_errors_are_raised_with_their_names():
    rt = F.FakeCudart()
    rt.cudaMalloc = lambda n: (F.cudaError_t.cudaErrorMemoryAllocation, 0)
    with pytest.raises(RuntimeError, match=r"cudaErrorMemoryAllocation \(2\): out of memory"):
        CudaPythonApi(rt).malloc(10)


def test_pinned_and_device_memory_round_trip():
    rt = F.FakeCudart()
    api = CudaPythonApi(rt, F.cuda_utils().get_cuda_native_handle)
    host = api.pinned_empty((2, 3), np.float32)
    host[:] = np.arange(6).reshape(2, 3)
    dev, back, stream = api.malloc(host.nbytes), api.pinned_empty((2, 3), np.float32), api.stream_create()
    api.memcpy_htod_async(dev, host, stream)
    api.memcpy_dtoh_async(back, dev, stream)
    api.stream_synchronize(stream)
    assert back.tolist() == host.tolist() and ctypes.c_float.from_address(dev + 4).value == 1.0
    api.free(dev)
    api.free_pinned(host)
    api.free_pinned(back)
    api.stream_destroy(stream)
    assert rt.device == {} and rt.host == {} and rt.streams == {}


# --- the real thing --------------------------------------------------------------------------------

@pytest.mark.tensorrt
def test_real_engine_matches_onnxruntime(tmp_path, bundle, tiny):
    """Build an fp32 engine from the tiny bundle's ONNX with TensorRT and run it."""
    from lvt_edge.variants.tensorrt import engine_from_onnx

    work = tmp_path / "w"
    shutil.copytree(bundle, work)
    data = B.read_bundle(work)
    contract = B.bundle_contract(data)
    rec = engine_from_onnx(work / "model.onnx", work / "model.fp32.engine", contract, workdir=work,
                           use_plugin=False, batch=(2, 2, 4))
    data["variants"]["fp32"]["tensorrt"] = rec
    B.write_bundle(work, data)
    x = tiny.clips_for(contract, 5, seed=2)
    with load_bundle(work, "fp32", "tensorrt") as clf, load_bundle(work, "fp32", "onnxruntime") as ref:
        assert clf.backend == "tensorrt" and (clf.min_batch, clf.max_batch) == (2, 4)
        np.testing.assert_allclose(clf.predict(x), ref.predict(x), atol=1e-3)
        np.testing.assert_allclose(clf.predict(x[0]), ref.predict(x[0]), atol=1e-3)
    data["variants"]["fp32"]["tensorrt"]["compute_capability"] = "1.0"
    B.write_bundle(work, data)
    with pytest.raises(LvtEdgeError, match="compute capability 1.0"):
        load_bundle(work, "fp32", "tensorrt")
