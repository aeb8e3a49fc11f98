"""Stand-ins for TensorRT's Python module and cuda-python's runtime bindings, with the real
signatures and return conventions (TensorRT 10.x/11.x `python/src/infer`, cuda-bindings 12.x/13.x):

- `IPluginRegistry.load_library(plugin_path)` returns a handle, or None on any failure (missing
  file, not a plugin library, a creator already registered); it never raises. A bare name goes
  through the dynamic loader's search path, not the current folder.
- `get_creator(type, version, plugin_namespace="")` returns the creator or None.
- `IExecutionContext.set_input_shape` / `set_tensor_address` / `execute_async_v3` return bool.
- `nptype(dtype)` maps TensorRT data types to numpy and raises TypeError for bfloat16/fp8.
- `IBuilderConfig.create_timing_cache(blob)` returns a cache (None for a blob it cannot read),
  `set_timing_cache(cache, ignore_mismatch)` returns bool (False for another TensorRT or GPU),
  `get_timing_cache()` returns None when no cache is attached.
- `OnnxParser.parse(model, path=None)` returns bool and needs `path` for external weights; up to
  10.6 a model-local function hides a registered plugin, from 10.7 the plugin wins.
- `Runtime.deserialize_cuda_engine` returns None for bytes of another TensorRT or when a plugin
  the engine needs is not registered.
- `Builder.build_serialized_network` returns None when a dynamic input has no shape in the
  optimisation profile (TensorRT: "dynamic input is missing dimensions in profile 0").
- cuda-python calls return (cudaError_t, *values); `int(cudaStream_t)` is deprecated. Copies and
  `cudaMemsetAsync` on a device range outside any allocation return cudaErrorInvalidValue.

"Device" memory is host memory from ctypes, so copies and engine runs move real bytes; an engine
computes every output (logits, a step model's next state) with ONNX Runtime on the model it was
parsed from, reading each input from the address bound to it. The tests at the bottom
pin the conventions themselves. Other test files import it as `lvt_edge_tests_trt_fakes` (tests/conftest.py loads it once).
"""

from __future__ import annotations

import ctypes
import enum
import importlib.machinery
import importlib.util
import json
import sys
import types
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
PLUGIN_MAGIC = b"FAKEPLUGIN"
CACHE_MAGIC = b"FAKE-TIMING-CACHE"
STANDARD_DOMAINS = ("", "ai.onnx")


def plugin_library(path: Path, creators=(("FFLinearAttention", "1", "lvt_edge"),)) -> Path:
    """A file the fake registry loads as a plugin library registering `creators`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(PLUGIN_MAGIC + b" " + " ".join(c).encode() + b"\n" for c in creators))
    return path


# --- cuda-python -------------------------------------------------------------------------------

class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorCallRequiresNewerDriver = 36
    cudaErrorNoDevice = 100


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class cudaStream_t:
    """An opaque handle; its address comes from cuda.bindings.utils.get_cuda_native_handle."""

    def __init__(self, address: int) -> None:
        self._address = address

    def __int__(self) -> int:
        warnings.warn("int(cudaStream_t) is deprecated; use cuda.bindings.utils.get_cuda_native_handle",
                      DeprecationWarning, stacklevel=2)
        return self._address


class FakeCudart:
    """cuda.bindings.runtime: every call returns (cudaError_t, *values)."""

    cudaError_t = cudaError_t
    cudaMemcpyKind = cudaMemcpyKind

    def __init__(self, *, devices: int = 1, driver: int = 12060, runtime: int = 12090, cc=(8, 7),
                 name: bytes = b"Orin") -> None:
        self.devices, self.driver, self.runtime, self.cc, self.name = devices, driver, runtime, cc, name
        self.device: dict[int, Any] = {}  # address -> ctypes buffer
        self.host: dict[int, Any] = {}
        self.streams: dict[int, cudaStream_t] = {}
        self.events: list[tuple[str, int]] = []
        self._next_stream = 0x5000

    def _usable(self) -> cudaError_t:
        if self.driver // 1000 < self.runtime // 1000:
            return cudaError_t.cudaErrorInsufficientDriver
        return cudaError_t.cudaSuccess if self.devices else cudaError_t.cudaErrorNoDevice

    def cudaGetDeviceCount(self):
        err = self._usable()
        return (err, self.devices if err == cudaError_t.cudaSuccess else 0)

    def cudaDriverGetVersion(self):
        return (cudaError_t.cudaSuccess, self.driver)

    def cudaRuntimeGetVersion(self):
        return (cudaError_t.cudaSuccess, self.runtime)

    def cudaGetErrorName(self, err):
        return (cudaError_t.cudaSuccess, cudaError_t(err).name.encode())

    def cudaGetErrorString(self, err):
        text = {35: b"CUDA driver version is insufficient for CUDA runtime version", 100: b"no CUDA-capable device is detected",
                2: b"out of memory"}.get(int(err), b"invalid argument")
        return (cudaError_t.cudaSuccess, text)

    def cudaGetDeviceProperties(self, device):
        if self._usable() != cudaError_t.cudaSuccess or not 0 <= device < self.devices:
            return (cudaError_t.cudaErrorInvalidValue, None)
        return (cudaError_t.cudaSuccess, types.SimpleNamespace(name=self.name.ljust(256, b"\0"), major=self.cc[0],
                                                                minor=self.cc[1]))

    def _alloc(self, table, nbytes):
        buf = ctypes.create_string_buffer(max(int(nbytes), 1))
        table[ctypes.addressof(buf)] = buf
        return (cudaError_t.cudaSuccess, ctypes.addressof(buf))

    def _release(self, table, ptr, what):
        if ptr not in table:
            return (cudaError_t.cudaErrorInvalidValue,)
        del table[ptr]
        self.events.append((what, ptr))
        return (cudaError_t.cudaSuccess,)

    def cudaMalloc(self, nbytes):
        return self._alloc(self.device, nbytes)

    def cudaFree(self, ptr):
        return self._release(self.device, ptr, "free")

    def cudaMallocHost(self, nbytes):
        return self._alloc(self.host, nbytes)

    def cudaFreeHost(self, ptr):
        return self._release(self.host, ptr, "free_host")

    def _on_device(self, ptr, count) -> bool:
        """Whether [ptr, ptr + count) lies inside one device allocation."""
        return any(base <= int(ptr) and int(ptr) + int(count) <= base + len(buf) for base, buf in self.device.items())

    def _stream_ok(self, stream) -> bool:
        return isinstance(stream, cudaStream_t) and stream._address in self.streams

    def cudaMemcpyAsync(self, dst, src, count, kind, stream):
        kind = cudaMemcpyKind(int(kind))
        device_side = {cudaMemcpyKind.cudaMemcpyHostToDevice: (dst,), cudaMemcpyKind.cudaMemcpyDeviceToHost: (src,),
                       cudaMemcpyKind.cudaMemcpyDeviceToDevice: (dst, src)}.get(kind, ())
        if not self._stream_ok(stream) or not all(self._on_device(p, count) for p in device_side):
            return (cudaError_t.cudaErrorInvalidValue,)
        ctypes.memmove(int(dst), int(src), int(count))
        self.events.append(("copy", int(kind)))
        return (cudaError_t.cudaSuccess,)

    def cudaMemsetAsync(self, devPtr, value, count, stream):
        if not self._stream_ok(stream) or not self._on_device(devPtr, count):
            return (cudaError_t.cudaErrorInvalidValue,)
        ctypes.memset(int(devPtr), int(value), int(count))
        self.events.append(("memset", int(devPtr)))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamCreate(self):
        self._next_stream += 0x10
        stream = self.streams[self._next_stream] = cudaStream_t(self._next_stream)
        return (cudaError_t.cudaSuccess, stream)

    def cudaStreamSynchronize(self, stream):
        if stream._address not in self.streams:
            return (cudaError_t.cudaErrorInvalidValue,)
        self.events.append(("sync", stream._address))
        return (cudaError_t.cudaSuccess,)

    def cudaStreamDestroy(self, stream):
        if self.streams.pop(stream._address, None) is None:
            return (cudaError_t.cudaErrorInvalidValue,)
        self.events.append(("destroy", stream._address))
        return (cudaError_t.cudaSuccess,)


def cuda_utils() -> types.ModuleType:
    mod = types.ModuleType("cuda.bindings.utils")
    mod.get_cuda_native_handle = lambda obj: obj._address
    return mod


def install_cuda(monkeypatch, cudart: FakeCudart, *, module: str = "cuda.bindings.runtime", utils: bool = True) -> None:
    """Make `importlib.import_module(module)` return `cudart` (and hide any real binding)."""
    for name in ("cuda.bindings.runtime", "cuda.cudart", "cuda.bindings.utils", "pycuda.driver"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: ImportError on import
    monkeypatch.setitem(sys.modules, module, cudart)
    if utils:
        monkeypatch.setitem(sys.modules, "cuda.bindings.utils", cuda_utils())


# --- tensorrt ------------------------------------------------------------------------------------

class DataType(enum.Enum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7
    INT64 = 8


NUMPY_OF = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8,
            DataType.INT32: np.int32, DataType.INT64: np.int64, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
ONNX_TYPES = {onnx.TensorProto.FLOAT: DataType.FLOAT, onnx.TensorProto.FLOAT16: DataType.HALF,
              onnx.TensorProto.BFLOAT16: DataType.BF16}


def nptype(trt_type):
    if trt_type in NUMPY_OF:
        return NUMPY_OF[trt_type]
    raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


class Dims(tuple):
    pass


class Handle:
    def __init__(self, path: str) -> None:
        self.path = path


class Registry:
    def __init__(self) -> None:
        self.creators: dict[tuple[str, str, str], Any] = {}
        self.calls: list[str] = []

    def load_library(self, plugin_path):
        self.calls.append(plugin_path)
        if "/" not in plugin_path:  # dlopen searches LD_LIBRARY_PATH and the system folders
            return None
        path = Path(plugin_path)
        if not path.is_file() or not path.read_bytes().startswith(PLUGIN_MAGIC):
            return None
        found = [tuple(line.split()[1:4]) for line in path.read_text().splitlines() if line.strip()]
        if any(c in self.creators for c in found):
            return None  # "fails and returns None if any of the plugins are already registered"
        for name, version, namespace in found:
            self.creators[(name, version, namespace)] = types.SimpleNamespace(
                name=name, plugin_version=version, plugin_namespace=namespace)
        return Handle(plugin_path)

    def get_creator(self, type, version, plugin_namespace=""):
        return self.creators.get((type, version, plugin_namespace))

    def deregister_library(self, handle):
        pass


class Layer:
    def __init__(self, type: str, name: str) -> None:
        self.type, self.name = type, name


class Network:
    def __init__(self, flags: int) -> None:
        self.flags, self.layers, self.model = flags, [], None

    @property
    def num_layers(self):
        return len(self.layers)

    def get_layer(self, index):
        return self.layers[index]


class ParserError:
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self):
        return self._desc

    def __str__(self):
        return self._desc


class TimingCache:
    def __init__(self, owner: tuple[str, str] | None, entries: int = 0) -> None:
        self.owner, self.entries = owner, entries

    def serialize(self):
        return memoryview(CACHE_MAGIC + json.dumps([self.owner, self.entries]).encode())


class Profile:
    def __init__(self) -> None:
        self.shapes: dict[str, tuple] = {}

    def set_shape(self, input, min, opt, max):
        if not (len(min) == len(opt) == len(max)) or any(not a <= b <= c for a, b, c in zip(min, opt, max)):
            raise RuntimeError("Shape provided for max is inconsistent with other shapes.")
        self.shapes[input] = (Dims(min), Dims(opt), Dims(max))


def make_tensorrt(version: str = "10.16.1.11", *, device: str = "Orin", gpu_ok: bool = True,
                  perturb: Callable[[np.ndarray], np.ndarray] | None = None) -> types.ModuleType:
    """A fresh `tensorrt` module: its own plugin registry, builder and runtime.

    perturb: applied to an engine's logits (an engine that disagrees with ONNX Runtime)."""
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = version
    numbers = tuple(int(x) for x in version.split(".")[:2])
    trt.DataType = DataType
    trt.float32, trt.float16, trt.int8, trt.int32, trt.int64 = (DataType.FLOAT, DataType.HALF, DataType.INT8,
                                                                 DataType.INT32, DataType.INT64)
    trt.bfloat16 = DataType.BF16
    trt.nptype = nptype
    trt.Logger = type("Logger", (), {"WARNING": 2, "ERROR": 1, "__init__": lambda self, severity=2: None})
    trt.TensorIOMode = types.SimpleNamespace(NONE=0, INPUT=1, OUTPUT=2)
    trt.LayerType = types.SimpleNamespace(PLUGIN_V3="PLUGIN_V3", MATRIX_MULTIPLY="MATRIX_MULTIPLY", OTHER="OTHER")
    trt.BuilderFlag = types.SimpleNamespace(TF32="TF32", FP16="FP16")

    class IProgressMonitor:  # subclassed by the application; __init__ must be called (pybind11 trampoline)
        def __init__(self):
            self._initialised = True

    trt.IProgressMonitor = IProgressMonitor
    if numbers >= (9, 1):  # strongly typed networks arrived in 9.x; 8.x has no such flag
        trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 5})
    registry = Registry()
    trt.get_plugin_registry = lambda: registry
    trt.fake = types.SimpleNamespace(device=device, built=[], perturb=perturb, registry=registry)

    class OnnxParser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

        def parse(self, model, path=None):
            m = onnx.load_from_string(bytes(model))
            missing = _external_data_missing(m, path)
            if missing:
                self.errors.append(ParserError(missing))
                return False
            if path is not None:  # the weights become part of the network, as in the real parser
                onnx.external_data_helper.load_external_data_for_model(m, str(Path(path).parent))
            for node in m.graph.node:
                layers = _layers_for(node, m, numbers, registry)
                if layers is None:
                    self.errors.append(ParserError(f"No importer registered for op: {node.op_type}"))
                    return False
                self.network.layers += layers
            self.network.model = m
            return True

    class Config:
        def __init__(self):
            self.flags, self.profiles, self.cache = {"TF32"}, [], None
            self.progress_monitor = None

        def set_flag(self, flag):
            self.flags.add(flag)

        def clear_flag(self, flag):
            self.flags.discard(flag)

        def get_flag(self, flag):
            return flag in self.flags

        def add_optimization_profile(self, profile):
            if not profile.shapes:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized_timing_cache):
            blob = bytes(serialized_timing_cache)
            if not blob:
                return TimingCache(None)
            if not blob.startswith(CACHE_MAGIC):
                return None
            owner, entries = json.loads(blob[len(CACHE_MAGIC):])
            return TimingCache(tuple(owner) if owner else None, entries)

        def set_timing_cache(self, cache, ignore_mismatch):
            if cache.owner is not None and cache.owner != (version, device) and not ignore_mismatch:
                return False
            self.cache = cache
            return True

        def get_timing_cache(self):
            return self.cache

    class Builder:
        def __init__(self, logger):
            if not gpu_ok:
                raise TypeError("pybind11::init(): factory function returned nullptr")

        def create_network(self, flags=0):
            return Network(flags)

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            if network.model is None or not config.profiles:
                return None
            monitor = getattr(config, "progress_monitor", None)
            if monitor is not None:  # TensorRT reports phases, some nested, each with its steps
                monitor.phase_start("Building engine", None, 2)
                monitor.phase_start("Tactic selection", "Building engine", 3)
                for step in range(3):
                    assert monitor.step_complete("Tactic selection", step) is True
                monitor.phase_finish("Tactic selection")
                monitor.step_complete("Building engine", 0)
                monitor.step_complete("Building engine", 1)
                monitor.phase_finish("Building engine")
            profile = config.profiles[0]
            if any(-1 in dims and name not in profile.shapes for name, dims, _ in _inputs(network.model)):
                return None  # "dynamic input is missing dimensions in profile 0"
            if config.cache is not None:
                config.cache.owner, config.cache.entries = (version, device), config.cache.entries + 1
            trt.fake.built.append({"flags": network.flags, "tf32": "TF32" in config.flags,
                                   "layers": [layer.type for layer in network.layers],
                                   "profiles": {k: tuple(tuple(s) for s in v) for k, v in profile.shapes.items()}})
            return memoryview(_engine_bytes(network, profile, version, registry))

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, serialized_engine):
            blob = bytes(serialized_engine)
            if not blob.startswith(ENGINE_MAGIC):
                return None
            header, model = blob[len(ENGINE_MAGIC):].split(b"\n", 1)
            meta = json.loads(header)
            if meta["version"] != version or any(registry.get_creator(*c) is None for c in meta["plugins"]):
                return None
            return Engine(meta, model, trt.fake)

    trt.OnnxParser, trt.Builder, trt.Runtime = OnnxParser, Builder, Runtime
    return trt


def _external_data_missing(model: onnx.ModelProto, path: str | None) -> str | None:
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next(e.value for e in init.external_data if e.key == "location")
        if path is None:
            return f"Failed to open file: {location} (external weights need the model's path)"
        if not (Path(path).parent / location).is_file():
            return f"Failed to open file: {Path(path).parent / location}"
    return None


def _layers_for(node, model, numbers, registry) -> list[Layer] | None:
    """What the parser makes of one node: a plugin layer, the function's body, or a plain layer."""
    if node.domain in STANDARD_DOMAINS:
        return [Layer("MATRIX_MULTIPLY" if node.op_type in ("MatMul", "Gemm") else "OTHER", node.name)]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    version = attrs.get("plugin_version", b"1")
    namespace = attrs.get("plugin_namespace", b"")
    key = (node.op_type, version.decode() if isinstance(version, bytes) else str(version),
           namespace.decode() if isinstance(namespace, bytes) else str(namespace))
    function = next((f for f in model.functions if f.domain == node.domain and f.name == node.op_type), None)
    creator = registry.get_creator(*key)
    body = [Layer("OTHER", f"{node.name}/{n.op_type}") for n in function.node] if function is not None else None
    if function is not None and (numbers < (10, 7) or creator is None):
        return body
    if creator is not None:
        return [Layer("PLUGIN_V3", node.name)]
    return None


def _io(value_info) -> tuple[str, list[int], DataType]:
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in value_info.type.tensor_type.shape.dim]
    return value_info.name, dims, ONNX_TYPES.get(value_info.type.tensor_type.elem_type, DataType.FLOAT)


def _inputs(model: onnx.ModelProto) -> list[tuple[str, list[int], DataType]]:
    weights = {i.name for i in model.graph.initializer}
    return [_io(v) for v in model.graph.input if v.name not in weights]


def _engine_bytes(network: Network, profile: Profile, version: str, registry: Registry) -> bytes:
    model = network.model
    plugins = sorted({key for key, c in registry.creators.items()
                      if any(layer.type == "PLUGIN_V3" for layer in network.layers)})
    meta = {"version": version, "inputs": [[n, d, t.name] for n, d, t in _inputs(model)],
            "outputs": [[n, d, t.name] for n, d, t in map(_io, model.graph.output)],
            "profiles": {name: [list(s) for s in shapes] for name, shapes in profile.shapes.items()}, "plugins": plugins}
    return ENGINE_MAGIC + json.dumps(meta).encode() + b"\n" + model.SerializeToString()


class Engine:
    """meta: {"version", "inputs"/"outputs": [[name, dims, type], ...], "profiles": {input: [min, opt, max]},
    "plugins"}; the one-input form {"input", "output", "profile"} is read too."""

    def __init__(self, meta: dict[str, Any], model: bytes, fake: Any) -> None:
        if "inputs" not in meta:
            meta = {**meta, "inputs": [meta["input"]], "outputs": [meta["output"]],
                    "profiles": {meta["input"][0]: meta["profile"]}}
        self.meta, self.model, self.fake = meta, model, fake
        self.inputs = [tuple(t) for t in meta["inputs"]]
        self.outputs = [tuple(t) for t in meta["outputs"]]
        self._io = {t[0]: (1, t) for t in self.inputs} | {t[0]: (2, t) for t in self.outputs}

    @property
    def num_io_tensors(self):
        return len(self._io)

    def get_tensor_name(self, index):
        return [t[0] for t in self.inputs + self.outputs][index]

    def get_tensor_mode(self, name):
        return self._io[name][0] if name in self._io else 0

    def get_tensor_shape(self, name):
        return Dims(self._io[name][1][1])

    def get_tensor_dtype(self, name):
        return DataType[self._io[name][1][2]]

    def get_tensor_profile_shape(self, name, profile_index):
        return [Dims(s) for s in self.meta["profiles"][name]]

    def create_execution_context(self):
        return Context(self)


class Context:
    def __init__(self, engine: Engine) -> None:
        self.engine, self.addresses, self._session = engine, {}, None
        self.shapes = {name: tuple(dims) for name, dims, _ in engine.inputs if -1 not in dims}

    def set_tensor_address(self, name, memory):
        if name not in self.engine._io:
            return False
        self.addresses[name] = int(memory)
        return True

    def set_input_shape(self, name, shape):
        if name not in self.engine.meta["profiles"] or self.engine.get_tensor_mode(name) != 1:
            return False
        low, _, high = self.engine.meta["profiles"][name]
        shape = tuple(int(s) for s in shape)
        if len(shape) != len(low) or any(not a <= s <= b for a, s, b in zip(low, shape, high)):
            return False
        self.shapes[name] = shape
        return True

    def execute_async_v3(self, stream_handle):
        if not isinstance(stream_handle, int):
            raise TypeError("execute_async_v3(): incompatible function arguments")
        if set(self.shapes) != {t[0] for t in self.engine.inputs} or set(self.addresses) != set(self.engine._io):
            return False  # an input shape or a tensor address is missing
        feeds = {}
        for name, _, type_name in self.engine.inputs:
            dtype, shape = np.dtype(nptype(DataType[type_name])), self.shapes[name]
            raw = (ctypes.c_byte * (int(np.prod(shape)) * dtype.itemsize)).from_address(self.addresses[name])
            feeds[name] = np.frombuffer(raw, dtype).reshape(shape).copy()
        outputs = self._run(feeds)
        if self.engine.fake.perturb is not None:  # the first output is the logits
            outputs[0] = self.engine.fake.perturb(outputs[0])
        for (name, _, type_name), value in zip(self.engine.outputs, outputs):
            out = np.ascontiguousarray(value, np.dtype(nptype(DataType[type_name])))
            ctypes.memmove(self.addresses[name], out.ctypes.data, out.nbytes)
        return True

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import onnxruntime as ort

        if self._session is None:
            self._session = ort.InferenceSession(self.engine.model, providers=["CPUExecutionProvider"])
        return self._session.run([t[0] for t in self.engine.outputs], feeds)


def install_tensorrt(monkeypatch, trt: types.ModuleType) -> types.ModuleType:
    """Make `import tensorrt` return `trt`; plugin libraries loaded by other tests are forgotten."""
    from lvt_edge.runtime import trt as runtime_trt

    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(runtime_trt, "_LOADED", {}, raising=False)
    return trt


# --- the conventions, pinned ------------------------------------------------------------------

def test_load_library_reports_failure_by_returning_none(tmp_path):
    trt = make_tensorrt()
    registry = trt.get_plugin_registry()
    lib = plugin_library(tmp_path / "liblvt_edge_ffla_trt10.so")
    assert registry.load_library(str(tmp_path / "missing.so")) is None
    assert registry.load_library(lib.name) is None, "a bare name is looked up on the library search path"
    assert registry.load_library(str(lib)) is not None
    assert registry.get_creator("FFLinearAttention", "1", "lvt_edge") is not None
    assert registry.load_library(str(lib)) is None, "already registered: None, no exception"
    (tmp_path / "garbage.so").write_bytes(b"\x7fELF not a plugin")
    assert registry.load_library(str(tmp_path / "garbage.so")) is None


def test_nptype_maps_each_type_and_refuses_bfloat16():
    assert nptype(DataType.FLOAT) is np.float32 and nptype(DataType.HALF) is np.float16
    with pytest.raises(TypeError):
        nptype(DataType.BF16)


def test_timing_cache_results_are_booleans_and_none():
    trt = make_tensorrt("10.3.0.30", device="Orin")
    config = trt.Builder(trt.Logger()).create_builder_config()
    assert config.get_timing_cache() is None
    assert config.create_timing_cache(b"garbage") is None
    other = config.create_timing_cache(CACHE_MAGIC + json.dumps([["10.16.1.11", "H200"], 3]).encode())
    assert config.set_timing_cache(other, ignore_mismatch=False) is False and config.get_timing_cache() is None
    assert config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False) is True


def test_cudart_returns_tuples_and_stream_int_is_deprecated():
    rt = FakeCudart()
    err, n = rt.cudaGetDeviceCount()
    assert (err, n) == (cudaError_t.cudaSuccess, 1)
    err, stream = rt.cudaStreamCreate()
    assert isinstance(stream, cudaStream_t) and rt.cudaStreamDestroy(stream) == (cudaError_t.cudaSuccess,)
    with pytest.warns(DeprecationWarning):
        int(stream)
    assert FakeCudart(driver=12060, runtime=13000).cudaGetDeviceCount()[0] == cudaError_t.cudaErrorInsufficientDriver


def test_context_results_are_booleans():
    trt = make_tensorrt()
    meta = {"version": trt.__version__, "input": ["clip", [-1, 3], "FLOAT"], "output": ["logits", [-1, 2], "FLOAT"],
            "profile": [[2, 3], [4, 3], [8, 3]], "plugins": []}
    ctx = Engine(meta, b"", trt.fake).create_execution_context()
    assert ctx.set_input_shape("clip", (1, 3)) is False and ctx.set_input_shape("clip", (9, 3)) is False
    assert ctx.set_input_shape("clip", (2, 3)) is True and ctx.set_tensor_address("nope", 16) is False
    assert ctx.execute_async_v3(0) is False, "addresses not set"


def test_a_dynamic_input_left_out_of_the_profile_fails_the_build():
    trt = make_tensorrt()
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 2])
    s = onnx.helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT, ["batch", 2])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", 2])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Add", ["x", "s"], ["y"])], "g", [x, s], [y])
    builder = trt.Builder(trt.Logger())
    network = builder.create_network(1 << 5)
    assert trt.OnnxParser(network, trt.Logger()).parse(onnx.helper.make_model(graph).SerializeToString())
    for names, built in ((["x"], False), (["x", "s"], True)):
        config, profile = builder.create_builder_config(), builder.create_optimization_profile()
        for name in names:
            profile.set_shape(name, (1, 2), (2, 2), (4, 2))
        config.add_optimization_profile(profile)
        assert (builder.build_serialized_network(network, config) is not None) is built


def test_device_ranges_outside_an_allocation_are_invalid_values():
    rt = FakeCudart()
    _, stream = rt.cudaStreamCreate()
    _, dev = rt.cudaMalloc(16)
    _, other = rt.cudaMalloc(16)
    ok, bad = (cudaError_t.cudaSuccess,), (cudaError_t.cudaErrorInvalidValue,)
    assert rt.cudaMemsetAsync(dev + 8, 0, 8, stream) == ok and rt.cudaMemsetAsync(dev + 8, 0, 9, stream) == bad
    assert rt.cudaMemcpyAsync(other, dev, 16, cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream) == ok
    assert rt.cudaMemcpyAsync(other + 4, dev, 16, cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream) == bad
