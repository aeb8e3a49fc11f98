"""TensorRT backend: everything before the TensorRT calls with fakes; a real engine where
TensorRT exists (marker `tensorrt`)."""

from __future__ import annotations

import shutil
import types

import numpy as np
import pytest

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file
from lvt_edge.runtime import load_bundle
from lvt_edge.runtime.cuda import CudaApi, CudaPythonApi, cuda_api
from lvt_edge.runtime.trt import TensorRTClassifier, check_engine, engine_problems, import_tensorrt


class FakeCuda(CudaApi):
    """Device memory as numpy byte arrays keyed by fake pointers."""

    name = "fake"

    def __init__(self, cc=(8, 7)):
        self.cc, self.mem, self.next, self.pinned, self.streams = cc, {}, 4096, [], 0

    def device_count(self): return 1
    def compute_capability(self, device=0): return self.cc
    def device_name(self, device=0): return "Fake Orin"

    def malloc(self, nbytes):
        self.next += 4096
        self.mem[self.next] = np.zeros(nbytes, np.uint8)
        return self.next

    def free(self, ptr): del self.mem[ptr]
    def pinned_empty(self, shape, dtype):
        a = np.zeros(shape, dtype)
        self.pinned.append(a)
        return a

    def free_pinned(self, array): self.pinned = [a for a in self.pinned if a is not array]
    def memcpy_htod_async(self, dst, src, stream): self.mem[dst][: src.nbytes] = src.reshape(-1).view(np.uint8)
    def memcpy_dtoh_async(self, dst, src, stream): dst.reshape(-1).view(np.uint8)[:] = self.mem[src][: dst.nbytes]
    def stream_create(self):
        self.streams += 1
        return 77

    def stream_handle(self, stream): return stream
    def stream_synchronize(self, stream): pass
    def stream_destroy(self, stream): self.streams -= 1


def fake_trt(api: FakeCuda, contract, weights: np.ndarray, max_batch=4, static=False):
    """A tensorrt module whose engine computes logits = mean(clip over C,T,H... ) @ weights."""
    calls = []

    class Context:
        def __init__(self):
            self.addr, self.shape = {}, None

        def set_tensor_address(self, name, ptr): self.addr[name] = ptr
        def set_input_shape(self, name, shape):
            calls.append(("shape", tuple(shape)))
            self.shape = tuple(shape)

        def execute_async_v3(self, stream):
            calls.append(("exec", stream))
            n = self.shape[0] if self.shape else max_batch
            x = api.mem[self.addr["clip"]][: n * 4 * int(np.prod(contract.input_shape))].view(np.float32)
            y = x.reshape(n, -1)[:, : weights.shape[0]] @ weights
            api.mem[self.addr["logits"]][: y.nbytes] = y.astype(np.float32).reshape(-1).view(np.uint8)
            return True

    class Engine:
        num_io_tensors = 2
        def get_tensor_name(self, i): return ["clip", "logits"][i]
        def get_tensor_mode(self, n): return "in" if n == "clip" else "out"
        def get_tensor_shape(self, n): return ((max_batch if static else -1), *contract.input_shape)
        def get_tensor_profile_shape(self, n, p): return [(1, *contract.input_shape), (1, *contract.input_shape), (max_batch, *contract.input_shape)]
        def get_tensor_dtype(self, n): return "f32"
        def create_execution_context(self): return Context()

    registry = types.SimpleNamespace(libs=[])
    registry.load_library = lambda path: registry.libs.append(path)
    trt = types.SimpleNamespace(
        __version__="10.3.0.30", Logger=type("L", (), {"WARNING": 2, "__init__": lambda self, lvl: None}),
        TensorIOMode=types.SimpleNamespace(INPUT="in"), nptype=lambda dt: np.float32,
        get_plugin_registry=lambda: registry,
        Runtime=lambda logger: types.SimpleNamespace(deserialize_cuda_engine=lambda b: Engine() if b == b"ENGINE" else None),
    )
    return trt, calls, registry


RECORDED = {"engine": "model.int8.engine", "tensorrt_version": "10.3.0", "gpu": "Orin", "compute_capability": "8.7",
            "plugin": {"path": "liblvt_edge_plugins.so", "sha256": None}}


@pytest.fixture
def trt_bundle(tmp_path, bundle):
    work = tmp_path / "w"
    shutil.copytree(bundle, work)
    (work / "model.int8.engine").write_bytes(b"ENGINE")
    (work / "liblvt_edge_plugins.so").write_bytes(b"PLUGIN")
    data = B.read_bundle(work)
    rec = dict(RECORDED, sha256=sha256_file(work / "model.int8.engine"),
               plugin={"path": "liblvt_edge_plugins.so", "sha256": sha256_file(work / "liblvt_edge_plugins.so"), "version": "1"})
    data["variants"]["int8"]["tensorrt"] = rec
    B.write_bundle(work, data)
    return work


def test_engine_problems_name_each_mismatch():
    ok = engine_problems(RECORDED, tensorrt_version="10.3.0.30", compute_capability=(8, 7), plugin_sha256="x")
    assert ok == []
    bad = engine_problems(dict(RECORDED, plugin={"sha256": "aaa"}), tensorrt_version="10.16.1",
                          compute_capability=(9, 0), plugin_sha256="bbb")
    assert len(bad) == 3
    assert "TensorRT 10.3.0, this machine has 10.16.1" in bad[0]
    assert "compute capability 8.7 (Orin), this GPU is 9.0" in bad[1]
    assert "plugin" in bad[2]


def test_check_engine_says_what_to_rebuild(trt_bundle):
    entry = B.read_bundle(trt_bundle)["variants"]["int8"]
    engine, lib = check_engine(trt_bundle, "int8", entry, tensorrt_version="10.3.0.30", api=FakeCuda())
    assert engine.name == "model.int8.engine" and lib.name == "liblvt_edge_plugins.so"
    fix = f"lvt-edge build {trt_bundle} --target tensorrt --precision int8 --force"
    with pytest.raises(LvtEdgeError, match="compute capability 8.7") as e:
        check_engine(trt_bundle, "int8", entry, tensorrt_version="10.3.0.30", api=FakeCuda((8, 6)))
    assert fix in str(e.value)
    other = trt_bundle / "other.so"
    other.write_bytes(b"OTHER PLUGIN")
    with pytest.raises(LvtEdgeError, match="different plugin library"):
        check_engine(trt_bundle, "int8", entry, tensorrt_version="10.3.0.30", api=FakeCuda(), plugin=other)
    with pytest.raises(LvtEdgeError, match="plugin library not found at .*lvt-edge plugin build"):
        check_engine(trt_bundle, "int8", entry, tensorrt_version="10.3.0.30", api=FakeCuda(), plugin=trt_bundle / "nope.so")
    with pytest.raises(LvtEdgeError, match="no TensorRT engine.*--target tensorrt --precision fp32"):
        check_engine(trt_bundle, "fp32", B.read_bundle(trt_bundle)["variants"]["fp32"], tensorrt_version="10.3.0", api=FakeCuda())
    (trt_bundle / "model.int8.engine").write_bytes(b"CHANGED")
    with pytest.raises(LvtEdgeError, match="changed after the build"):
        check_engine(trt_bundle, "int8", entry, tensorrt_version="10.3.0.30", api=FakeCuda())


@pytest.mark.parametrize("static", [False, True])
def test_classifier_flow_with_fakes(trt_bundle, static):
    data = B.read_bundle(trt_bundle)
    contract = B.bundle_contract(data)
    api = FakeCuda()
    w = np.random.default_rng(0).standard_normal((16, contract.num_classes)).astype(np.float32)
    trt, calls, registry = fake_trt(api, contract, w, max_batch=4, static=static)
    x = np.random.default_rng(1).standard_normal((6, *contract.input_shape)).astype(np.float32)
    with TensorRTClassifier(trt_bundle / "model.int8.engine", contract, precision="int8",
                            plugin=trt_bundle / "liblvt_edge_plugins.so", trt=trt, api=api) as clf:
        assert clf.max_batch == 4 and registry.libs == [str(trt_bundle / "liblvt_edge_plugins.so")]
        logits = clf.logits(x)  # 6 clips -> batches of 4 and 2
        np.testing.assert_allclose(logits, x.reshape(6, -1)[:, :16] @ w, rtol=1e-5, atol=1e-5)
        assert [c for c in calls if c[0] == "exec"] == [("exec", 77)] * 2
        if not static:
            assert [c[1][0] for c in calls if c[0] == "shape"] == [4, 2]
        assert len(api.mem) == 2 and len(api.pinned) == 2
    assert api.mem == {} and api.pinned == [] and api.streams == 0  # everything freed


def test_undeserialisable_engine_frees_what_it_took(trt_bundle):
    contract = B.bundle_contract(B.read_bundle(trt_bundle))
    api = FakeCuda()
    trt, _, _ = fake_trt(api, contract, np.zeros((1, 1), np.float32))
    (trt_bundle / "bad.engine").write_bytes(b"GARBAGE")
    with pytest.raises(LvtEdgeError, match="could not deserialise"):
        TensorRTClassifier(trt_bundle / "bad.engine", contract, trt=trt, api=api)
    assert api.mem == {} and api.pinned == []


def test_without_tensorrt_the_error_says_what_to_install(trt_bundle):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is importable here")
    except Exception:
        pass
    with pytest.raises(LvtEdgeError, match="install TensorRT 10"):
        import_tensorrt()
    with pytest.raises(LvtEdgeError, match="install TensorRT 10"):
        load_bundle(trt_bundle, "int8", "tensorrt")


def test_cuda_adapter_selection():
    def importer(available):
        def imp(name):
            if name not in available:
                raise ImportError(f"No module named {name!r}")
            return available[name]
        return imp

    ok = types.SimpleNamespace(cudaSuccess=0)
    rt = types.SimpleNamespace(cudaError_t=types.SimpleNamespace(cudaSuccess=ok.cudaSuccess),
                               cudaGetDeviceCount=lambda: (0, 1))
    driver = types.SimpleNamespace(Device=types.SimpleNamespace(count=lambda: 1))
    both = {"cuda.bindings.runtime": rt, "pycuda.driver": driver, "pycuda.autoprimaryctx": object()}
    assert cuda_api("auto", importer(both)).name == "cuda-python"
    assert cuda_api("pycuda", importer(both)).name == "pycuda"
    only_pycuda = {k: v for k, v in both.items() if k.startswith("pycuda")}
    assert cuda_api("auto", importer(only_pycuda)).name == "pycuda"
    with pytest.raises(LvtEdgeError, match="pip install cuda-python"):
        cuda_api("auto", importer({}))
    with pytest.raises(LvtEdgeError, match="choose one of"):
        cuda_api("cupy", importer(both))
    no_driver = types.SimpleNamespace(cudaError_t=rt.cudaError_t, cudaGetDeviceCount=lambda: (35, 0))
    with pytest.raises(LvtEdgeError, match="sees no CUDA device"):
        cuda_api("cuda-python", importer({"cuda.bindings.runtime": no_driver}))


def test_cuda_python_errors_are_raised():
    err_t = types.SimpleNamespace(cudaSuccess=0)
    rt = types.SimpleNamespace(cudaError_t=err_t, cudaMalloc=lambda n: (2, None),
                               cudaGetErrorString=lambda e: (0, b"out of memory"))
    with pytest.raises(RuntimeError, match="out of memory"):
        CudaPythonApi(rt).malloc(10)


@pytest.mark.tensorrt
def test_real_engine_matches_onnxruntime(tmp_path, bundle, tiny):
    """Build an fp32 engine from the tiny bundle's ONNX with TensorRT and run it."""
    import tensorrt as trt

    from lvt_edge.runtime.cuda import cuda_api as real_cuda

    api = real_cuda()
    work = tmp_path / "w"
    shutil.copytree(bundle, work)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((work / "model.onnx").read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    contract = B.bundle_contract(B.read_bundle(work))
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("clip", (1, *contract.input_shape), (1, *contract.input_shape), (4, *contract.input_shape))
    config.add_optimization_profile(profile)
    (work / "model.fp32.engine").write_bytes(bytes(builder.build_serialized_network(network, config)))
    data = B.read_bundle(work)
    data["variants"]["fp32"]["tensorrt"] = {
        "engine": "model.fp32.engine", "sha256": sha256_file(work / "model.fp32.engine"),
        "tensorrt_version": trt.__version__, "compute_capability": list(api.compute_capability()), "plugin": None}
    B.write_bundle(work, data)
    x = tiny.clips_for(contract, 6, seed=2)
    with load_bundle(work, "fp32", "tensorrt") as clf, load_bundle(work, "fp32", "onnxruntime") as ref:
        assert clf.backend == "tensorrt" and clf.max_batch == 4
        np.testing.assert_allclose(clf.predict(x), ref.predict(x), atol=1e-3)
    data["variants"]["fp32"]["tensorrt"]["compute_capability"] = "1.0"
    B.write_bundle(work, data)
    with pytest.raises(LvtEdgeError, match="compute capability 1.0"):
        load_bundle(work, "fp32", "tensorrt")
