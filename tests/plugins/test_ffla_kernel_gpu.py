"""The fused FFLA kernel on the GPU (plugins/ffla/ffla_kernel.cu) against the reference op.

nvcc builds ffla_kernel.cu with the thin C API of ffla_gpu_test.cu for this GPU's architecture
once per module; the kernel then runs through the launcher (ffla_launch.h) on PyTorch CUDA
tensors over the same sweep and with the same tolerances as the CPU test (conftest.py), with
the output and the workspace poisoned with NaN.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.gpu

IOS = ("fp32", "fp16")
CUDA_ERROR_INVALID_VALUE = 1
CUDA_ERROR_INSUFFICIENT_DRIVER = 35


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    if found is None and home and (Path(home) / "bin" / "nvcc").exists():
        found = str(Path(home) / "bin" / "nvcc")
    return found


class GpuKernel:
    """ctypes view of the library built from ffla_kernel.cu + ffla_gpu_test.cu."""

    def __init__(self, path: Path, params_type):
        lib = ctypes.CDLL(str(path))
        p = ctypes.POINTER(params_type)
        lib.ffla_gpu_unsupported.restype = ctypes.c_char_p
        lib.ffla_gpu_unsupported.argtypes = [p]
        lib.ffla_gpu_workspace_bytes.restype = ctypes.c_size_t
        lib.ffla_gpu_workspace_bytes.argtypes = [p]
        lib.ffla_gpu_run.restype = ctypes.c_int
        lib.ffla_gpu_run.argtypes = [p, ctypes.c_int] + [ctypes.c_void_p] * 8
        lib.ffla_gpu_error_string.restype = ctypes.c_char_p
        lib.ffla_gpu_error_string.argtypes = [ctypes.c_int]
        self.lib = lib

    def unsupported(self, params) -> str | None:
        why = self.lib.ffla_gpu_unsupported(ctypes.byref(params))
        return None if why is None else why.decode()

    def workspace_bytes(self, params) -> int:
        return self.lib.ffla_gpu_workspace_bytes(ctypes.byref(params))

    def run(self, params, io_dtype: int, tensors: dict, out: torch.Tensor, workspace: torch.Tensor | None,
            stream: torch.cuda.Stream) -> int:
        ptr = lambda t: None if t is None else t.data_ptr()  # noqa: E731
        return self.lib.ffla_gpu_run(ctypes.byref(params), io_dtype, ptr(tensors["q"]), ptr(tensors["k"]),
                                     ptr(tensors["v"]), ptr(tensors["gw"]), ptr(tensors["gb"]), out.data_ptr(),
                                     ptr(workspace), stream.cuda_stream)

    def error_string(self, err: int) -> str:
        return self.lib.ffla_gpu_error_string(err).decode()


@pytest.fixture(scope="module")
def gpu_kernel(ffla, tmp_path_factory) -> GpuKernel:
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc not found (PATH, CUDA_HOME): the GPU test builds the FFLA kernel with it")
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    out = tmp_path_factory.mktemp("ffla_gpu") / "libffla_gpu.so"
    cmd = [nvcc, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-I", str(ffla.PLUGIN_DIR),
           f"-gencode=arch=compute_{arch},code=[sm_{arch},compute_{arch}]",
           str(ffla.PLUGIN_DIR / "ffla_kernel.cu"), str(ffla.PLUGIN_DIR / "ffla_gpu_test.cu"), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the FFLA GPU library failed:\n{' '.join(cmd)}\n{done.stderr}")
    return GpuKernel(out, ffla.Params)


def _launch(kernel: GpuKernel, ffla, case, io: str, given: dict, stream: torch.cuda.Stream,
            with_workspace: bool = True) -> tuple[int, torch.Tensor]:
    dev = {n: None if t is None else t.to("cuda").contiguous() for n, t in given.items()}
    out = torch.full(case.shape, float("nan"), dtype=dev["q"].dtype, device="cuda")
    params = case.params()
    ws_bytes = kernel.workspace_bytes(params)
    workspace = None
    if ws_bytes and with_workspace:
        workspace = torch.full((ws_bytes // 4,), float("nan"), dtype=torch.float32, device="cuda")
    stream.wait_stream(torch.cuda.current_stream())  # the inputs were made on the current stream
    status = kernel.run(params, ffla.IO_DTYPE[io], dev, out, workspace, stream)
    if status == CUDA_ERROR_INSUFFICIENT_DRIVER:
        pytest.skip("the CUDA driver here is older than the nvcc that built the kernel")
    stream.synchronize()
    return status, out


@pytest.mark.parametrize("io", IOS)
def test_matches_reference(gpu_kernel, ffla, case, io):
    assert gpu_kernel.unsupported(case.params()) is None
    given = ffla.io_inputs(ffla.inputs(case, ffla.seed(case, io)), io)
    status, out = _launch(gpu_kernel, ffla, case, io, given, torch.cuda.current_stream())
    assert status == 0, f"launch failed: {gpu_kernel.error_string(status)}"
    err = ffla.error(io, out.float().cpu().numpy(), ffla.reference(case, given))
    ffla.record("gpu", io, err, case.name)
    assert err < ffla.tolerance(io), f"{case.name} {io}: error {err:.3g}"


def test_side_stream_and_repeat_launches_agree(gpu_kernel, ffla):
    """A non-default stream works, and launching twice gives identical bits (no state kept)."""
    case = ffla.Case("base-spatial", batch=1, frames=16, grid=17, heads=8, head_dim=64, axis="spatial")
    given = ffla.io_inputs(ffla.inputs(case, seed=5), "fp16")
    stream = torch.cuda.Stream()
    first = _launch(gpu_kernel, ffla, case, "fp16", given, stream)
    second = _launch(gpu_kernel, ffla, case, "fp16", given, stream)
    assert first[0] == second[0] == 0
    assert torch.equal(first[1], second[1])


def test_launch_refuses_missing_workspace_and_bad_params(gpu_kernel, ffla):
    chunked = ffla.Case("s", batch=1, frames=2, grid=12, heads=2, head_dim=64, axis="spatial")
    assert gpu_kernel.workspace_bytes(chunked.params()) > 0
    given = ffla.io_inputs(ffla.inputs(chunked, seed=1), "fp32")
    status, out = _launch(gpu_kernel, ffla, chunked, "fp32", given, torch.cuda.current_stream(),
                          with_workspace=False)
    assert status == CUDA_ERROR_INVALID_VALUE
    assert torch.isnan(out).all()

    bad = chunked.params()
    bad.head_dim = 129
    assert "head_dim" in gpu_kernel.unsupported(bad)
    bad = chunked.params()
    bad.shift_div = 1
    assert "shift_div" in gpu_kernel.unsupported(bad)


def test_workspace_rule_matches_cpu(gpu_kernel, cpu_kernel, ffla):
    for case in (ffla.Case("s", 1, 16, 17, 8, 64, "spatial"), ffla.Case("t", 1, 16, 17, 8, 64, "temporal")):
        params = case.params()
        assert gpu_kernel.workspace_bytes(params) == cpu_kernel.lib.ffla_cpu_workspace_bytes(ctypes.byref(params))
