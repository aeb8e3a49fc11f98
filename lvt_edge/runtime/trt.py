"""TensorRT backend (TensorRT 10 API): a plain engine file plus the fused-op plugin library.

Before anything touches the engine, the bundle's record of how it was built (TensorRT
version, GPU compute capability, plugin hash) is checked against this machine, and a
mismatch says what to rebuild. `tensorrt` and the CUDA binding are imported lazily.
"""

from __future__ import annotations

import os
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


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except Exception as e:  # the bindings wheel installs without its libraries: OSError/ImportError
        raise LvtEdgeError(
            f"TensorRT is not importable here ({e}); install TensorRT 10 (JetPack ships it; on x86 "
            "`pip install tensorrt`), or run the bundle with backend='onnxruntime'"
        ) from e
    return tensorrt


def rebuild_command(workdir: str | os.PathLike, precision: str) -> str:
    return f"lvt-edge build {workdir} --target tensorrt --precision {precision} --force"


def version_key(version: str) -> tuple[str, ...]:
    """major.minor.patch: engines load only under the TensorRT release that built them."""
    return tuple(str(version).split(".")[:3])


def cc_string(cc: Any) -> str:
    """Compute capability as "M.m" from (M, m), [M, m] or "M.m"."""
    if isinstance(cc, (tuple, list)) and len(cc) == 2:
        return f"{int(cc[0])}.{int(cc[1])}"
    return str(cc)


def engine_problems(recorded: dict[str, Any], *, tensorrt_version: str, compute_capability: Any,
                    plugin_sha256: str | None) -> list[str]:
    """Why an engine built as `recorded` (bundle variants[p]["tensorrt"]) cannot run here."""
    problems = []
    built = recorded.get("tensorrt_version")
    if built and version_key(built) != version_key(tensorrt_version):
        problems.append(f"built with TensorRT {built}, this machine has {tensorrt_version}")
    built_cc = recorded.get("compute_capability")
    if built_cc is not None and cc_string(built_cc) != cc_string(compute_capability):
        gpu = f" ({recorded['gpu']})" if recorded.get("gpu") else ""
        problems.append(f"built for compute capability {cc_string(built_cc)}{gpu}, this GPU is {cc_string(compute_capability)}")
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


def check_engine(workdir: str | os.PathLike, precision: str, entry: dict[str, Any], *, tensorrt_version: str,
                 api: CudaApi, plugin: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """(engine path, plugin path) for a variant, or LvtEdgeError saying what to rebuild."""
    rebuild = rebuild_command(workdir, precision)
    rec = entry.get("tensorrt")
    if not rec or not rec.get("engine"):
        raise LvtEdgeError(f"the {precision} variant has no TensorRT engine; build one with `{rebuild}`")
    lib = plugin_path(workdir, rec, plugin)
    problems = engine_problems(rec, tensorrt_version=tensorrt_version, compute_capability=api.compute_capability(),
                               plugin_sha256=sha256_file(lib) if lib else None)
    if problems:
        raise LvtEdgeError(f"the {precision} TensorRT engine in {workdir} cannot run here: "
                           + "; ".join(problems) + f". Rebuild it on this machine with `{rebuild}`")
    engine = checked_file(workdir, rec["engine"], rec.get("sha256"), what=f"{precision} TensorRT engine", rebuild=rebuild)
    return engine, lib


class TensorRTClassifier(Classifier):
    """Runs a deserialised engine on one CUDA stream with pinned host buffers."""

    backend = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, contract: ClipContract, *, precision: str = "fp32",
                 plugin: str | os.PathLike | None = None, cuda: str = "auto",
                 trt: Any = None, api: CudaApi | None = None) -> None:
        super().__init__(contract, precision=precision, source=str(engine_path))
        self._owned: list[Any] = []
        self.api = api or cuda_api(cuda)
        try:
            self._setup(Path(engine_path), trt or import_tensorrt(), plugin)
        except BaseException:
            self._close()  # free what was made before the failure
            raise

    def _setup(self, engine_path: Path, trt: Any, plugin: str | os.PathLike | None) -> None:
        contract = self.contract
        self._logger = trt.Logger(trt.Logger.WARNING)
        if plugin is not None:
            # The fused op's creators must be registered before the engine is deserialised.
            trt.get_plugin_registry().load_library(str(plugin))
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            raise LvtEdgeError(f"TensorRT could not deserialise {engine_path} (see its log above); "
                               "rebuild it on this machine with `lvt-edge build WORKDIR --target tensorrt --force`")
        self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or len(outputs) != 1:
            raise LvtEdgeError(f"{engine_path} has inputs {inputs} and outputs {outputs}; an LVT engine has one of each")
        self._in, self._out = inputs[0], outputs[0]
        shape = tuple(self._engine.get_tensor_shape(self._in))
        self._static = shape[0] != -1
        self.max_batch = shape[0] if self._static else int(self._engine.get_tensor_profile_shape(self._in, 0)[2][0])
        if tuple(shape[1:]) != contract.input_shape:
            raise LvtEdgeError(f"{engine_path} takes {shape}, the contract says Bx{'x'.join(map(str, contract.input_shape))}; "
                               "rebuild the engine from this bundle's ONNX")
        in_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._in)))
        out_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self._out)))
        self._stream = self.api.stream_create()
        self._host_in = self._pinned((self.max_batch, *contract.input_shape), in_dtype)
        self._host_out = self._pinned((self.max_batch, contract.num_classes), out_dtype)
        self._dev_in = self._device(self._host_in.nbytes)
        self._dev_out = self._device(self._host_out.nbytes)
        # Addresses never change: bind them once.
        self._context.set_tensor_address(self._in, self._dev_in)
        self._context.set_tensor_address(self._out, self._dev_out)

    @classmethod
    def from_bundle(cls, workdir: str | os.PathLike, data: dict[str, Any], precision: str, *,
                    plugin: str | os.PathLike | None = None, cuda: str = "auto") -> "TensorRTClassifier":
        entry = B.variant(data, precision, workdir)
        trt = import_tensorrt()
        api = cuda_api(cuda)
        engine, lib = check_engine(workdir, precision, entry, tensorrt_version=trt.__version__, api=api, plugin=plugin)
        return cls(engine, B.bundle_contract(data), precision=precision, plugin=lib, trt=trt, api=api)

    def _pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        array = self.api.pinned_empty(shape, dtype)
        self._owned.append(("host", array))
        return array

    def _device(self, nbytes: int) -> int:
        ptr = self.api.malloc(nbytes)
        self._owned.append(("device", ptr))
        return ptr

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        n = len(batch)
        rows = self.max_batch if self._static else n  # a static engine always runs full batches
        self._host_in[:n] = batch
        self._host_in[n:rows] = 0
        if not self._static:
            self._context.set_input_shape(self._in, (n, *self.contract.input_shape))
        self.api.memcpy_htod_async(self._dev_in, self._host_in[:rows], self._stream)
        if not self._context.execute_async_v3(self.api.stream_handle(self._stream)):
            raise RuntimeError(f"TensorRT execute_async_v3 failed on {self.source}")
        self.api.memcpy_dtoh_async(self._host_out[:rows], self._dev_out, self._stream)
        self.api.stream_synchronize(self._stream)
        return self._host_out[:n].astype(np.float32)  # a copy: the pinned buffer is reused

    def _close(self) -> None:
        # Context before engine before runtime, then the memory they used.
        for attr in ("_context", "_engine", "_runtime"):
            if hasattr(self, attr):
                delattr(self, attr)
        for kind, obj in reversed(self._owned):
            if kind == "device":
                self.api.free(obj)
            else:
                self.api.free_pinned(obj)
        self._owned.clear()
        if hasattr(self, "_stream"):
            self.api.stream_destroy(self._stream)
            del self._stream
