"""The few CUDA calls the TensorRT backend needs, behind one small adapter.

cuda-python (`cuda.bindings`) is the default, as in NVIDIA's TensorRT samples; pycuda is
accepted where it is what the device has (JetPack 6 setups). Both are imported lazily.
Pointers and stream handles are plain ints, host buffers are pinned numpy arrays.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any, Callable

import numpy as np

from lvt_edge.errors import LvtEdgeError

CUDA_APIS = ("auto", "cuda-python", "pycuda")
INSTALL_HINT = "install cuda-python (`pip install cuda-python`), or pycuda where JetPack provides it"


class CudaApi:
    """Device memory, pinned host memory, async copies and one kind of stream."""

    name = ""

    def device_count(self) -> int: raise NotImplementedError
    def compute_capability(self, device: int = 0) -> tuple[int, int]: raise NotImplementedError
    def device_name(self, device: int = 0) -> str: raise NotImplementedError
    def malloc(self, nbytes: int) -> int: raise NotImplementedError
    def free(self, ptr: int) -> None: raise NotImplementedError
    def pinned_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray: raise NotImplementedError
    def free_pinned(self, array: np.ndarray) -> None: raise NotImplementedError
    def memcpy_htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None: raise NotImplementedError
    def memcpy_dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None: raise NotImplementedError
    def stream_create(self) -> Any: raise NotImplementedError
    def stream_handle(self, stream: Any) -> int: raise NotImplementedError
    def stream_synchronize(self, stream: Any) -> None: raise NotImplementedError
    def stream_destroy(self, stream: Any) -> None: raise NotImplementedError


class CudaPythonApi(CudaApi):
    """cuda-python's runtime bindings: every call returns (error, *results)."""

    name = "cuda-python"

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart
        self._pinned: dict[int, int] = {}  # id(array) -> host pointer

    def _call(self, result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if err != self.rt.cudaError_t.cudaSuccess:
            _, msg = self.rt.cudaGetErrorString(err)
            text = msg.decode() if isinstance(msg, bytes) else str(msg)
            raise RuntimeError(f"CUDA error {getattr(err, 'name', err)}: {text}")
        return rest[0] if len(rest) == 1 else (tuple(rest) or None)

    def device_count(self) -> int:
        err, n = self.rt.cudaGetDeviceCount()
        return int(n) if err == self.rt.cudaError_t.cudaSuccess else 0

    def compute_capability(self, device: int = 0) -> tuple[int, int]:
        prop = self._call(self.rt.cudaGetDeviceProperties(device))
        return int(prop.major), int(prop.minor)

    def device_name(self, device: int = 0) -> str:
        name = self._call(self.rt.cudaGetDeviceProperties(device)).name
        return (name.split(b"\0")[0].decode() if isinstance(name, bytes) else str(name)).strip()

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

    def stream_create(self) -> Any:
        return self._call(self.rt.cudaStreamCreate())

    def stream_handle(self, stream: Any) -> int:
        return int(stream)

    def stream_synchronize(self, stream: Any) -> None:
        self._call(self.rt.cudaStreamSynchronize(stream))

    def stream_destroy(self, stream: Any) -> None:
        self._call(self.rt.cudaStreamDestroy(stream))


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

    def stream_create(self) -> Any:
        return self.drv.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def stream_synchronize(self, stream: Any) -> None:
        stream.synchronize()

    def stream_destroy(self, stream: Any) -> None:
        pass  # pycuda frees a Stream when it is collected


def _cuda_python(import_module: Callable[[str], Any]) -> CudaApi:
    return CudaPythonApi(import_module("cuda.bindings.runtime"))


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

    Raises LvtEdgeError when the binding is missing or no CUDA device is usable.
    """
    if prefer not in CUDA_APIS:
        raise LvtEdgeError(f"unknown CUDA binding {prefer!r}; choose one of {', '.join(CUDA_APIS)}")
    order = list(_FACTORIES) if prefer == "auto" else [prefer]
    missing = []
    for name in order:
        try:
            api = _FACTORIES[name](import_module)
        except ImportError as e:
            missing.append(f"{name} ({e})")
            continue
        if api.device_count() < 1:
            raise LvtEdgeError(
                f"{name} sees no CUDA device: check the NVIDIA driver (nvidia-smi / tegrastats) "
                "or use the onnxruntime backend"
            )
        return api
    raise LvtEdgeError(f"no CUDA binding for Python could be imported: {'; '.join(missing)}; {INSTALL_HINT}")
