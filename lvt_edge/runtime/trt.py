"""TensorRT backend (TensorRT >= 10): a plain engine file plus the fused-op plugin library.

Before anything touches the engine, the bundle's record of how it was built (TensorRT version
with its build number, GPU model and compute capability, plugin hash) is checked against this
machine, and a mismatch says what to rebuild. `tensorrt` and the CUDA binding are imported lazily.

`TensorRTClassifier` runs a clip engine; `lvt_edge.runtime.trt_step.TensorRTStepClassifier` runs
a causal bundle's step engine on the same `EngineRunner`.

Engines and plugin libraries are native code that TensorRT loads into this process: load only
bundles you trust, as you would run only programs you trust.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file
from lvt_edge.runtime.base import Classifier
from lvt_edge.runtime.cuda import CudaApi, cuda_api
from lvt_edge.runtime.files import checked_file

PLUGIN_BUILD = "lvt-edge plugin build"  # prints the library it built or reused
# TensorRT 10 brought what the engines need: strongly typed networks, IPluginV3 plugins and the
# registry's get_creator. JetPack 5 (8.5) and JetPack 6.0 (8.6) are older.
MIN_TENSORRT = (10, 0)
UPGRADE_HINT = ("upgrade to TensorRT 10 or later (JetPack 6.1+ ships 10.3; on x86 `pip install 'lvt-edge[trt]'`), "
                "or use ONNX Runtime (--target onnxruntime / backend='onnxruntime')")


def version_numbers(version: str) -> tuple[int, ...]:
    """"10.3.0.30" -> (10, 3, 0, 30); every number the version string has."""
    return tuple(int(x) for x in re.findall(r"\d+", str(version)))


def version_floor_problem(version: str) -> str | None:
    """Why TensorRT `version` is too old for lvt_edge, or None."""
    if version_numbers(version)[:2] >= MIN_TENSORRT:
        return None
    return (f"TensorRT {version} is too old: lvt_edge needs TensorRT >= {'.'.join(map(str, MIN_TENSORRT))} "
            f"(strongly typed networks, IPluginV3 plugins); {UPGRADE_HINT}")


def import_tensorrt() -> Any:
    """The tensorrt module, or LvtEdgeError when it does not import or is older than MIN_TENSORRT."""
    try:
        import tensorrt
    except Exception as e:  # the bindings wheel installs without its libraries: OSError/ImportError
        raise LvtEdgeError(
            f"TensorRT is not importable here ({e}); install TensorRT 10 or later (JetPack ships it; on x86 "
            "`pip install 'lvt-edge[trt]'`), or run the bundle with backend='onnxruntime'"
        ) from e
    why = version_floor_problem(tensorrt.__version__)
    if why:
        raise LvtEdgeError(why)
    return tensorrt


def rebuild_command(workdir: str | os.PathLike, precision: str) -> str:
    return f"lvt-edge build {workdir} --target tensorrt --precision {precision} --force"


def same_release(built: str, here: str) -> bool:
    """Engines load only under the TensorRT release that built them, build number included.
    A version written without its build number ("10.3.0") is compared on what it has."""
    a, b = version_numbers(built), version_numbers(here)
    n = min(len(a), len(b), 4)
    return a[:max(n, 3)] == b[:max(n, 3)]


def cc_string(cc: Any) -> str:
    """Compute capability as "M.m" from (M, m), [M, m] or "M.m"."""
    if isinstance(cc, (tuple, list)) and len(cc) == 2:
        return f"{int(cc[0])}.{int(cc[1])}"
    return str(cc)


def engine_problems(recorded: dict[str, Any], *, tensorrt_version: str, compute_capability: Any,
                    plugin_sha256: str | None, gpu_name: str | None = None) -> list[str]:
    """Why an engine built as `recorded` (bundle variants[p]["tensorrt"]) cannot run here."""
    problems = []
    built = recorded.get("tensorrt_version")
    if built and not same_release(built, tensorrt_version):
        problems.append(f"built with TensorRT {built}, this machine has {tensorrt_version}")
    built_cc = recorded.get("compute_capability")
    if built_cc is not None and cc_string(built_cc) != cc_string(compute_capability):
        gpu = f" ({recorded['gpu']})" if recorded.get("gpu") else ""
        problems.append(f"built for compute capability {cc_string(built_cc)}{gpu}, this GPU is {cc_string(compute_capability)}")
    elif recorded.get("gpu") and gpu_name and recorded["gpu"].strip() != gpu_name.strip():
        # TensorRT tunes an engine for one GPU model; another model of the same compute capability
        # may refuse it or run it slowly.
        problems.append(f"built on GPU {recorded['gpu'].strip()!r}, this GPU is {gpu_name.strip()!r}")
    want = (recorded.get("plugin") or {}).get("sha256")
    if want and plugin_sha256 and want != plugin_sha256:
        problems.append("built with a different plugin library (sha256 differs)")
    return problems


def plugin_path(workdir: str | os.PathLike, recorded: dict[str, Any], override: str | os.PathLike | None) -> Path | None:
    """The plugin library to load: `override`, else the one the bundle recorded (None: none used)."""
    rec = recorded.get("plugin") or {}
    name = override or rec.get("path")
    if not name:
        if rec:
            raise LvtEdgeError(
                "the engine was built with the fused-op plugin but bundle.json does not say where it is; "
                f"pass plugin=PATH (CLI: --plugin), e.g. the library built by `{PLUGIN_BUILD}`"
            )
        return None
    path = Path(name)
    if not path.is_absolute() and not override:
        path = Path(workdir) / path
    if not path.is_file():
        raise LvtEdgeError(f"plugin library not found at {path}; build it with `{PLUGIN_BUILD}` "
                           "or pass plugin=PATH (CLI: --plugin)")
    return path


def plugin_creator(recorded: dict[str, Any]) -> tuple[str, str, str] | None:
    """(name, version, namespace) of the plugin an engine record names, or None."""
    rec = recorded.get("plugin") or {}
    if not rec.get("name"):
        return None
    return str(rec["name"]), str(rec.get("version") or "1"), str(rec.get("namespace") or "")


def check_engine(workdir: str | os.PathLike, precision: str, entry: dict[str, Any], *, tensorrt_version: str,
                 api: CudaApi, plugin: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(engine path, plugin path) for a variant, or LvtEdgeError saying what to rebuild."""
    rebuild = rebuild_command(workdir, precision)
    rec = entry.get("tensorrt")
    if not rec or not rec.get("engine"):
        raise LvtEdgeError(f"the {precision} variant has no TensorRT engine; build one with `{rebuild}`")
    return checked_engine(workdir, rec, what=f"{precision} TensorRT engine", rebuild=rebuild,
                          tensorrt_version=tensorrt_version, api=api, plugin=plugin)


def checked_engine(workdir: str | os.PathLike, rec: dict[str, Any], *, what: str, rebuild: str, tensorrt_version: str,
                   api: CudaApi, plugin: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(engine path, plugin path) of the engine record `rec`, or LvtEdgeError saying what to rebuild."""
    lib = plugin_path(workdir, rec, plugin)
    problems = engine_problems(rec, tensorrt_version=tensorrt_version, compute_capability=api.compute_capability(),
                               plugin_sha256=sha256_file(lib) if lib else None, gpu_name=api.device_name())
    if problems:
        raise LvtEdgeError(f"the {what} in {workdir} cannot run here: "
                           + "; ".join(problems) + f". Rebuild it on this machine with `{rebuild}`")
    engine = checked_file(workdir, rec["engine"], rec.get("sha256"), what=what, rebuild=rebuild)
    return engine, lib


# --- plugin libraries ---------------------------------------------------------------------------

# Libraries this process loaded through TensorRT's registry: sha256 -> (path, handle). TensorRT
# refuses to load a second library whose creators are already registered, so one load serves
# every later engine of the same library (the bundle's copy and the cache's are the same bytes).
_LOADED: dict[str, tuple[str, Any]] = {}


def load_plugin(trt: Any, path: str | os.PathLike, creator: tuple[str, str, str] | None = None) -> Any:
    """Register the plugin library at `path` with TensorRT (once per process) and return its handle.

    creator: (name, version, namespace) the library must register; checked after loading.
    `load_library` reports failure only by returning None; this says why, as far as it can."""
    lib = Path(path).resolve()  # a bare name would go through the library search path instead
    if not lib.is_file():
        raise LvtEdgeError(f"plugin library not found at {lib}; build it with `{PLUGIN_BUILD}`")
    key = sha256_file(lib)
    registry = trt.get_plugin_registry()
    if key in _LOADED:
        return _LOADED[key][1]
    if creator is not None and registry.get_creator(*creator) is not None:
        raise LvtEdgeError(_already_registered(creator, lib))
    handle = registry.load_library(str(lib))
    if handle is None:
        raise LvtEdgeError(f"TensorRT {trt.__version__} could not load the plugin library {lib}: "
                           f"{_load_failure(lib)}. Rebuild it for this TensorRT with `{PLUGIN_BUILD}`")
    _LOADED[key] = (str(lib), handle)
    if creator is not None and registry.get_creator(*creator) is None:
        name, version, namespace = creator
        raise LvtEdgeError(f"{lib} loaded, but registers no plugin {name} version {version} in namespace "
                           f"{namespace!r}: it is not the fused-op plugin this engine needs (another version or "
                           f"another library). Build the right one with `{PLUGIN_BUILD}`")
    return handle


def _already_registered(creator: tuple[str, str, str], lib: Path) -> str:
    others = [p for p, _ in _LOADED.values()]
    by = f"by {others[0]}, a different library" if others else "by a library lvt_edge did not load"
    return (f"the plugin {creator[0]} (namespace {creator[2]!r}) is already registered in this process {by}; "
            f"TensorRT keeps the first and cannot also load {lib}. Load this bundle in a fresh process")


def _load_failure(lib: Path) -> str:
    """Why TensorRT's loader returned None: the dynamic loader's own message where it fails too."""
    try:
        ctypes.CDLL(str(lib), mode=getattr(os, "RTLD_LOCAL", 0))
    except OSError as e:
        return f"the dynamic loader says: {e}"
    return ("the library loads, but TensorRT refused it (it exports no getCreators, was built for another "
            "TensorRT major, or one of its plugins is already registered); see TensorRT's log above")


# --- what both classifiers share -----------------------------------------------------------------

class EngineRunner:
    """A deserialised engine, its execution context, one CUDA stream and the memory allocated for
    them (`_owned`), freed in order by `_close`. Subclasses set `api` and `_owned` first."""

    api: CudaApi
    _owned: list[tuple[str, Any]]

    def _open(self, engine_path: Path, trt: Any, plugin: str | os.PathLike | None,
              creator: tuple[str, str, str] | None) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        if plugin is not None:
            # The fused op's creators must be registered before the engine is deserialised.
            load_plugin(trt, plugin, creator)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            raise LvtEdgeError(f"TensorRT could not deserialise {engine_path} (see its log above); "
                               "rebuild it on this machine with `lvt-edge build WORKDIR --target tensorrt --force`")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise LvtEdgeError(f"TensorRT could not create an execution context for {engine_path} (out of GPU "
                               "memory? see its log above)")
        self._stream = self.api.stream_create()

    def _io_names(self, trt: Any) -> tuple[list[str], list[str]]:
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        return inputs, [n for n in names if n not in inputs]

    def _numpy_dtype(self, trt: Any, name: str, engine_path: Path) -> np.dtype:
        dtype = self._engine.get_tensor_dtype(name)
        try:
            return np.dtype(trt.nptype(dtype))
        except TypeError as e:
            raise LvtEdgeError(f"{engine_path}: tensor {name!r} is {dtype}, which numpy cannot hold ({e}); "
                               "rebuild the engine from this bundle's ONNX (its inputs and outputs are float)") from e

    def _pinned(self, shape: tuple[int, ...], dtype: np.dtype, group: list | None = None) -> np.ndarray:
        array = self.api.pinned_empty(shape, dtype)
        self._owned.append(entry := ("host", array))
        if group is not None:
            group.append(entry)
        return array

    def _device(self, nbytes: int, group: list | None = None) -> int:
        ptr = self.api.malloc(nbytes)
        self._owned.append(entry := ("device", ptr))
        if group is not None:
            group.append(entry)
        return ptr

    def _bind(self, name: str, ptr: int) -> None:
        if not self._context.set_tensor_address(name, ptr):
            raise RuntimeError(f"TensorRT refused the device address of {name!r} in {self.source}")

    def _execute(self, what: str) -> None:
        if not self._context.execute_async_v3(self.api.stream_handle(self._stream)):
            raise RuntimeError(f"TensorRT execute_async_v3 failed on {self.source} ({what}); see its log above")

    def _free(self, group: list[tuple[str, Any]]) -> None:
        """Free a group of `_owned` (newest first), once the stream is done with it."""
        self.api.stream_synchronize(self._stream)
        ids = {id(entry) for entry in group}
        self._owned = [entry for entry in self._owned if id(entry) not in ids]
        self._free_entries(group)

    def _free_entries(self, entries: list[tuple[str, Any]]) -> None:
        for kind, obj in reversed(entries):
            if kind == "device":
                self.api.free(obj)
            else:
                self.api.free_pinned(obj)

    def _close(self) -> None:
        # Work queued on the stream may still use the buffers: wait for it before freeing them.
        if hasattr(self, "_stream"):
            try:
                self.api.stream_synchronize(self._stream)
            except Exception:  # a failed stream still has its memory freed below
                pass
        # Context before engine before runtime, then the memory they used.
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                delattr(self, attr)
        self._free_entries(self._owned)
        self._owned.clear()
        if hasattr(self, "_stream"):
            self.api.stream_destroy(self._stream)
            del self._stream


# --- the classifier -----------------------------------------------------------------------------

class TensorRTClassifier(EngineRunner, Classifier):
    """Runs a deserialised engine on one CUDA stream with pinned host buffers.

    A dynamic-batch engine runs batches within its optimisation profile: smaller ones are padded
    with zero clips up to the profile's minimum, larger ones split at its maximum."""

    backend = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, contract: ClipContract, *, precision: str = "fp32",
                 plugin: str | os.PathLike | None = None, cuda: str = "auto",
                 trt: Any = None, api: CudaApi | None = None,
                 plugin_creator: tuple[str, str, str] | None = None) -> None:
        super().__init__(contract, precision=precision, source=str(engine_path))
        self._owned = []
        self.api = api or cuda_api(cuda)
        try:
            self._setup(Path(engine_path), trt or import_tensorrt(), plugin, plugin_creator)
        except BaseException:
            self._close()  # free what was made before the failure
            raise

    def _setup(self, engine_path: Path, trt: Any, plugin: str | os.PathLike | None,
               creator: tuple[str, str, str] | None) -> None:
        self._open(engine_path, trt, plugin, creator)
        inputs, outputs = self._io_names(trt)
        if len(inputs) != 1 or len(outputs) != 1:
            raise LvtEdgeError(f"{engine_path} has inputs {inputs} and outputs {outputs}; an LVT engine has one of each")
        self._in, self._out = inputs[0], outputs[0]
        self._check_shapes(engine_path)
        in_dtype = self._numpy_dtype(trt, self._in, engine_path)
        out_dtype = self._numpy_dtype(trt, self._out, engine_path)
        self._host_in = self._pinned((self.max_batch, *self.contract.input_shape), in_dtype)
        self._host_out = self._pinned((self.max_batch, self.contract.num_classes), out_dtype)
        self._dev_in = self._device(self._host_in.nbytes)
        self._dev_out = self._device(self._host_out.nbytes)
        # Addresses never change: bind them once.
        self._bind(self._in, self._dev_in)
        self._bind(self._out, self._dev_out)

    def _check_shapes(self, engine_path: Path) -> None:
        """Input Bx3xTxHxW and output BxK as the contract says; the batch range of the profile."""
        contract, rebuild = self.contract, "rebuild the engine from this bundle's ONNX"
        shape = tuple(self._engine.get_tensor_shape(self._in))
        if tuple(shape[1:]) != contract.input_shape:
            raise LvtEdgeError(f"{engine_path} takes {shape}, the contract says Bx{'x'.join(map(str, contract.input_shape))}; "
                               + rebuild)
        out = tuple(self._engine.get_tensor_shape(self._out))
        if len(out) != 2 or out[1] != contract.num_classes or out[0] not in (-1, shape[0]):
            raise LvtEdgeError(f"{engine_path} returns {out}, the contract says Bx{contract.num_classes} "
                               f"({contract.num_classes} labels); {rebuild}")
        self._static = shape[0] != -1
        if self._static:
            self.min_batch = self.max_batch = int(shape[0])
            return
        low, _, high = (tuple(s) for s in self._engine.get_tensor_profile_shape(self._in, 0))
        self.min_batch, self.max_batch = int(low[0]), int(high[0])
        if not 1 <= self.min_batch <= self.max_batch:
            raise LvtEdgeError(f"{engine_path} has an optimisation profile for batch {self.min_batch}..{self.max_batch}; "
                               + rebuild)

    @classmethod
    def from_bundle(cls, workdir: str | os.PathLike, data: dict[str, Any], precision: str, *,
                    plugin: str | os.PathLike | None = None, cuda: str = "auto") -> "TensorRTClassifier":
        entry = B.variant(data, precision, workdir)
        trt = import_tensorrt()
        api = cuda_api(cuda)
        engine, lib = check_engine(workdir, precision, entry, tensorrt_version=trt.__version__, api=api, plugin=plugin)
        return cls(engine, B.bundle_contract(data), precision=precision, plugin=lib, trt=trt, api=api,
                   plugin_creator=plugin_creator(entry["tensorrt"]) if lib else None)

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        rows = self.max_batch if self._static else max(n, self.min_batch)  # pad up to what the engine takes
        self._host_in[:n] = batch
        self._host_in[n:rows] = 0
        if not self._static and not self._context.set_input_shape(self._in, (rows, *self.contract.input_shape)):
            raise RuntimeError(f"TensorRT refused input shape {(rows, *self.contract.input_shape)} for {self.source} "
                               f"(profile batch {self.min_batch}..{self.max_batch})")
        self.api.memcpy_htod_async(self._dev_in, self._host_in[:rows], self._stream)
        self._execute(f"batch {rows}")
        self.api.memcpy_dtoh_async(self._host_out[:rows], self._dev_out, self._stream)
        self.api.stream_synchronize(self._stream)
        return self._host_out[:n].astype(np.float32)  # a copy: the pinned buffer is reused
