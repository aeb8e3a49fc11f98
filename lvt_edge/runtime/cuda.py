"""The few CUDA calls the TensorRT backend needs, behind one small adapter.

cuda-python is the default, as in NVIDIA's TensorRT samples: `cuda.bindings.runtime` from 12.6.1
on, `cuda.cudart` before that. pycuda is accepted where it is what the device has (JetPack 6
setups). Both are imported lazily. Pointers and stream handles are plain ints, host buffers
are pinned numpy arrays.

cuda-python's bindings are built for one CUDA major and need a driver of at least that major: the
13.x bindings cannot run on JetPack 6's CUDA 12.6 driver. Such a mismatch is reported as what it
is, and "auto" then tries pycuda.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any, Callable

import numpy as np

from lvt_edge.errors import LvtEdgeError

CUDA_APIS = ("auto", "cuda-python", "pycuda")
# cuda-python's runtime module: the current name, then the one before 12.6.1.
CUDART_MODULES = ("cuda.bindings.runtime", "cuda.cudart")
NATIVE_HANDLE_MODULE = "cuda.bindings.utils"  # get_cuda_native_handle, from cuda-bindings 12.9.1
# What to install for each CUDA major of the driver (pyproject's extras say the same).
BINDING_FOR_DRIVER = {12: "pip install 'cuda-python>=12.6.1,<13'  (lvt-edge[trt-cu12]; JetPack 6: lvt-edge[jetpack6])",
                      13: "pip install 'cuda-python>=13,<14'  (lvt-edge[trt-cu13])"}
INSTALL_HINT = ("install cuda-python for the CUDA major of your driver: `pip install 'lvt-edge[trt-cu12]'` (CUDA 12 "
                "drivers; JetPack 6: `pip install 'lvt-edge[jetpack6]'`) or `'lvt-edge[trt-cu13]'` (CUDA 13), "
                "or pycuda where JetPack provides it")
DRIVER_ERRORS = ("cudaErrorInsufficientDriver", "cudaErrorCallRequiresNewerDriver", "cudaErrorCompatNotSupportedOnDevice")
NO_DEVICE_ERRORS = ("cudaErrorNoDevice",)


def cuda_version_string(v: int) -> str:
    """12060 -> "12.6" (the encoding of cudaDriverGetVersion / cudaRuntimeGetVersion)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


class CudaApi:
    """Device memory, pinned host memory, async copies and one kind of stream."""

    name = ""

    def problem(self) -> str | None:
        """Why this binding cannot run CUDA here (no device, driver too old for it), or None."""
        return None if self.device_count() >= 1 else f"{self.name} sees no CUDA device"

    def device_count(self) -> int: raise NotImplementedError
    def compute_capability(self, device: int = 0) -> tuple[int, int]: raise NotImplementedError
    def device_name(self, device: int = 0) -> str: raise NotImplementedError
    def malloc(self, nbytes: int) -> int: raise NotImplementedError
    def free(self, ptr: int) -> None: raise NotImplementedError
    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray: raise NotImplementedError
    def free_pinned(self, array: np.ndarray) -> None: raise NotImplementedError
    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None: raise NotImplementedError
    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None: raise NotImplementedError
    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None: raise NotImplementedError
    def memset_async(self, ptr: int, value: int, nbytes: int, stream: Any) -> None: raise NotImplementedError
    def stream_create(self) -> Any: raise NotImplementedError
    def stream_handle(self, stream: Any) -> int: raise NotImplementedError
    def stream_synchronize(self, stream: Any) -> None: raise NotImplementedError
    def stream_destroy(self, stream: Any) -> None: raise NotImplementedError


class CudaPythonApi(CudaApi):
    """cuda-python's runtime bindings: every call returns a tuple (error, *results).

    native_handle: turns a cudaStream_t into its address (cuda.bindings.utils.get_cuda_native_handle
    where it exists; `int()` on older bindings, where it is not yet deprecated)."""

    name = "cuda-python"

    def __init__(self, cudart: Any, native_handle: Callable[[Any], int] | None = None) -> None:
        self.rt = cudart
        self.native_handle = native_handle or int
        self._pinned: dict[int, int] = {}  # id(array) -> host pointer

    def _ok(self, err: Any) -> bool:
        return err == self.rt.cudaError_t.cudaSuccess

    def error_text(self, err: Any) -> str:
        """"cudaErrorInsufficientDriver (35): CUDA driver version is insufficient ..." """
        name = getattr(err, "name", None) or _second(self.rt.cudaGetErrorName(err)) or str(err)
        text = _second(self.rt.cudaGetErrorString(err)) or ""
        return f"{_text(name)} ({int(getattr(err, 'value', err))}): {_text(text)}".rstrip(": ")

    def _call(self, result: tuple) -> Any:
        err, *rest = result
        if not self._ok(err):
            raise RuntimeError(f"CUDA error {self.error_text(err)}")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def versions(self) -> tuple[int | None, int | None]:
        """(driver, bindings) CUDA versions as 12060-style ints; None where a call fails."""
        out = []
        for call in (self.rt.cudaDriverGetVersion, self.rt.cudaRuntimeGetVersion):
            try:
                err, v = call()
            except Exception:  # a binding without a driver library can raise instead of returning
                out.append(None)
                continue
            out.append(int(v) if self._ok(err) and v else None)
        return out[0], out[1]

    def problem(self) -> str | None:
        try:
            err, n = self.rt.cudaGetDeviceCount()
        except Exception as e:  # e.g. the driver library itself cannot be loaded
            return (f"cuda-python cannot load the NVIDIA driver ({type(e).__name__}: {e}); check the driver "
                    "(nvidia-smi / tegrastats)")
        if self._ok(err) and int(n) >= 1:
            return None
        driver, binding = self.versions()
        name = getattr(err, "name", "")
        if binding and (name in DRIVER_ERRORS or (driver and driver // 1000 < binding // 1000)):
            return self.mismatch_message(driver, binding, err)
        if self._ok(err) or name in NO_DEVICE_ERRORS:
            return "cuda-python sees no CUDA device: check the NVIDIA driver (nvidia-smi / tegrastats)"
        return f"cuda-python cannot use the GPU: {self.error_text(err)}"

    def mismatch_message(self, driver: int | None, binding: int, err: Any) -> str:
        have = f"the driver supports CUDA {cuda_version_string(driver)}" if driver else "the driver is older"
        fix = BINDING_FOR_DRIVER.get(driver // 1000) if driver else None
        return (f"cuda-python is built for CUDA {cuda_version_string(binding)} but {have} ({self.error_text(err)}): "
                f"install the binding for your driver's CUDA major{f': {fix}' if fix else ''}, or update the driver")

    def device_count(self) -> int:
        err, n = self.rt.cudaGetDeviceCount()
        return int(n) if self._ok(err) else 0

    def _properties(self, device: int) -> Any:
        return self._call(self.rt.cudaGetDeviceProperties(device))

    def compute_capability(self, device: int = 0) -> tuple[int, int]:
        prop = self._properties(device)
        return int(prop.major), int(prop.minor)

    def device_name(self, device: int = 0) -> str:
        return _text(self._properties(device).name)

    def malloc(self, nbytes: int) -> int:
        return int(self._call(self.rt.cudaMalloc(nbytes)))

    def free(self, ptr: int) -> None:
        self._call(self.rt.cudaFree(ptr))

    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self._call(self.rt.cudaMallocHost(nbytes)))
        raw = (ctypes.c_byte * nbytes).from_address(ptr)
        array = np.frombuffer(raw, dtype=dtype).reshape(shape)
        self._pinned[id(array)] = ptr
        return array

    def free_pinned(self, array: np.ndarray) -> None:
        ptr = self._pinned.pop(id(array), None)
        if ptr is not None:
            self._call(self.rt.cudaFreeHost(ptr))

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._call(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream))

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._call(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream))

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._call(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream))

    def memset_async(self, ptr: int, value: int, nbytes: int, stream: Any) -> None:
        self._call(self.rt.cudaMemsetAsync(ptr, value, nbytes, stream))

    def stream_create(self) -> Any:
        return self._call(self.rt.cudaStreamCreate())

    def stream_handle(self, stream: Any) -> int:
        return int(self.native_handle(stream))

    def stream_synchronize(self, stream: Any) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream))

    def stream_destroy(self, stream: Any) -> None:
        self._call(self.rt.cudaStreamDestroy(stream))


def _second(result: Any) -> Any:
    """The value of a cuda-python (error, value) tuple, or None."""
    return result[1] if isinstance(result, tuple) and len(result) > 1 else None


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).split(b"\0")[0].decode(errors="replace")
    return str(value).strip()


class PyCudaApi(CudaApi):
    """pycuda's driver API on the device's primary context (shared with TensorRT)."""

    name = "pycuda"

    def __init__(self, driver: Any) -> None:
        self.drv = driver
        self._allocs: dict[int, Any] = {}  # pointer -> DeviceAllocation (keeps it alive)

    def device_count(self) -> int:
        return int(self.drv.Device.count())

    def compute_capability(self, device: int = 0) -> tuple[int, int]:
        major, minor = self.drv.Device(device).compute_capability()
        return int(major), int(minor)

    def device_name(self, device: int = 0) -> str:
        return str(self.drv.Device(device).name())

    def malloc(self, nbytes: int) -> int:
        alloc = self.drv.mem_alloc(nbytes)
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        alloc = self._allocs.pop(ptr, None)
        if alloc is not None:
            alloc.free()

    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, np.dtype(dtype))

    def free_pinned(self, array: np.ndarray) -> None:
        base = getattr(array, "base", None)
        if base is not None and hasattr(base, "free"):
            base.free()

    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def memcpy_dtod_async(self, dst: int, src: int, nbytes: int, stream: Any) -> None:
        self.drv.memcpy_dtod_async(dst, src, nbytes, stream)

    def memset_async(self, ptr: int, value: int, nbytes: int, stream: Any) -> None:
        self.drv.memset_d8_async(ptr, value, nbytes, stream)

    def stream_create(self) -> Any:
        return self.drv.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def stream_destroy(self, stream: Any) -> None:
        pass  # pycuda frees a Stream when it is collected


def _cuda_python(import_module: Callable[[str], Any]) -> CudaApi:
    """cuda-python through whichever runtime module this version has (ImportError: none)."""
    missing = []
    for name in CUDART_MODULES:
        try:
            cudart = import_module(name)
        except ImportError as e:
            missing.append(str(e))
            continue
        return CudaPythonApi(cudart, _native_handle_getter(import_module))
    raise ImportError("; ".join(missing))


def _native_handle_getter(import_module: Callable[[str], Any]) -> Callable[[Any], int] | None:
    try:
        return import_module(NATIVE_HANDLE_MODULE).get_cuda_native_handle
    except (ImportError, AttributeError):  # bindings before 12.9.1: int() is the way there
        return None


def _pycuda(import_module: Callable[[str], Any]) -> CudaApi:
    driver = import_module("pycuda.driver")
    try:
        import_module("pycuda.autoprimaryctx")  # retains the primary context, which TensorRT uses
    except ImportError:
        raise
    except Exception as e:  # pycuda's own driver errors: no device, no driver
        raise LvtEdgeError(f"pycuda cannot open a CUDA context ({e}); check the NVIDIA driver") from e
    return PyCudaApi(driver)


_FACTORIES = {"cuda-python": _cuda_python, "pycuda": _pycuda}


def cuda_api(prefer: str = "auto", import_module: Callable[[str], Any] = importlib.import_module) -> CudaApi:
    """The CUDA adapter: `prefer` one binding, or "auto" (cuda-python, then pycuda).

    Raises LvtEdgeError when no binding imports, or none can use a CUDA device here (saying why:
    no device, or a binding built for a newer CUDA than the driver's).
    """
    if prefer not in CUDA_APIS:
        raise LvtEdgeError(f"unknown CUDA binding {prefer!r}; choose one of {', '.join(CUDA_APIS)}")
    order = list(_FACTORIES) if prefer == "auto" else [prefer]
    missing, problems = [], []
    for name in order:
        try:
            api = _FACTORIES[name](import_module)
        except ImportError as e:
            missing.append(f"{name} ({e})")
            continue
        except LvtEdgeError as e:
            problems.append(str(e))
            continue
        why = api.problem()
        if why is None:
            return api
        problems.append(why)
    if problems:
        also = f" ({'; '.join(missing)} not importable)" if missing else ""
        raise LvtEdgeError("no CUDA binding can use the GPU here: " + "; ".join(problems) + also
                           + "; or use the onnxruntime backend")
    raise LvtEdgeError(f"no CUDA binding for Python could be imported: {'; '.join(missing)}; {INSTALL_HINT}")
