"""The fused FFLA kernel (plugins/ffla) against the PyTorch decomposition and the memory floor.

    python benchmarks/ffla_kernel.py                      # lvt-base layouts, batch 1, shared gate
    python benchmarks/ffla_kernel.py --batch 4 --gate separate
    python benchmarks/ffla_kernel.py --lib libffla_gpu.so # a library already built (ffla_gpu_test.cu)

For the lvt-base temporal and spatial nodes (16 frames, 17 x 17 tokens, C = 512, 8 heads) at
fp16 and fp32 I/O it times, with CUDA events over back-to-back launches:
- fused: the kernel through its launcher (ffla_launch.h), built here with nvcc for this GPU;
- torch: lvt_edge.model.ffla.ffla on CUDA tensors (the decomposition ONNX Runtime also runs);
- floor: the bytes the op must move (read q, k, v once, write out once) at the copy bandwidth
  measured on this device (a device-to-device tensor copy).
It checks the fused output against torch first, so a broken build is not timed. Needs a CUDA
GPU, PyTorch with CUDA and nvcc; elsewhere it says so and exits 0.
"""

from __future__ import annotations

import argparse
import ctypes
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parents[1] / "plugins" / "ffla"
AXES = {"temporal": 0, "spatial": 1}
GATES = {"shared": 1, "separate": 2}
DTYPES = {"fp16": 1, "fp32": 0}
BASE = dict(frames=16, grid=17, heads=8, head_dim=64)  # lvt-base at 224 px (lvt_edge.model.config)


class Params(ctypes.Structure):
    """plugins/ffla/ffla_params.h: struct Params."""

    _fields_ = [(name, ctypes.c_int32) for name in (
        "batch", "frames", "grid", "heads", "head_dim", "axis", "shift", "shift_div", "gate_mode",
        "official_border")] + [("eps", ctypes.c_float)]


def build_library(out_dir: Path, arch: str) -> Path:
    """The build documented in plugins/ffla/ffla_gpu_test.cu, for one architecture."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        sys.exit("nvcc not found on PATH: build the library yourself (see plugins/ffla/ffla_gpu_test.cu) "
                 "and pass it with --lib")
    out = out_dir / "libffla_gpu.so"
    cmd = [nvcc, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC", "-I", str(PLUGIN_DIR),
           f"-gencode=arch=compute_{arch},code=[sm_{arch},compute_{arch}]",
           str(PLUGIN_DIR / "ffla_kernel.cu"), str(PLUGIN_DIR / "ffla_gpu_test.cu"), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"nvcc failed:\n{' '.join(cmd)}\n{done.stderr}")
    return out


def load_library(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.ffla_gpu_run.restype = ctypes.c_int
    lib.ffla_gpu_run.argtypes = [ctypes.POINTER(Params), ctypes.c_int] + [ctypes.c_void_p] * 8
    lib.ffla_gpu_workspace_bytes.restype = ctypes.c_size_t
    lib.ffla_gpu_workspace_bytes.argtypes = [ctypes.POINTER(Params)]
    lib.ffla_gpu_unsupported.restype = ctypes.c_char_p
    lib.ffla_gpu_unsupported.argtypes = [ctypes.POINTER(Params)]
    lib.ffla_gpu_error_string.restype = ctypes.c_char_p
    return lib


def time_us(fn, iters: int) -> float:
    """Mean microseconds per call of `fn` over `iters` back-to-back calls, after a warm-up."""
    import torch

    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    best = float("inf")
    for _ in range(3):  # the best of three rounds: the least disturbed by other work
        start.record()
        for _ in range(iters):
            fn()
        stop.record()
        stop.synchronize()
        best = min(best, start.elapsed_time(stop) * 1e3 / iters)
    return best


def copy_bandwidth() -> float:
    """Bytes per second of a device-to-device copy (read + write) of 256 MiB, well past any L2."""
    import torch

    src = torch.empty(64 << 20, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    seconds = time_us(lambda: dst.copy_(src), iters=10) * 1e-6
    return 2 * src.numel() * src.element_size() / seconds


def bench_node(lib, axis: str, io: str, batch: int, gate: str, iters: int, bandwidth: float) -> dict:
    import torch

    from lvt_edge.model.ffla import ffla

    dtype = torch.float16 if io == "fp16" else torch.float32
    b, t, s, c, d = batch, BASE["frames"], BASE["grid"] ** 2, BASE["heads"] * BASE["head_dim"], BASE["head_dim"]
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(b, t, s, c, generator=gen, device="cuda").to(dtype) for _ in range(3))
    gates = GATES[gate]
    gw = torch.randn(gates, d, 3 * d, generator=gen, device="cuda") * (3 * d) ** -0.5
    gb = torch.randn(gates, d, generator=gen, device="cuda") * 0.5
    out = torch.empty_like(q)
    params = Params(b, t, BASE["grid"], BASE["heads"], d, AXES[axis], 1, 4, gates, 0, 1e-6)
    why = lib.ffla_gpu_unsupported(ctypes.byref(params))
    if why:
        sys.exit(f"the kernel refuses {axis} {io}: {why.decode()}")
    ws_bytes = lib.ffla_gpu_workspace_bytes(ctypes.byref(params))
    workspace = torch.empty(max(ws_bytes, 1), dtype=torch.uint8, device="cuda")
    stream = torch.cuda.current_stream().cuda_stream

    def fused():
        err = lib.ffla_gpu_run(ctypes.byref(params), DTYPES[io], q.data_ptr(), k.data_ptr(), v.data_ptr(),
                               gw.data_ptr(), gb.data_ptr(), out.data_ptr(), workspace.data_ptr(), stream)
        if err:
            sys.exit(f"launch failed: {lib.ffla_gpu_error_string(err).decode()}")

    gw_t, gb_t = gw.to(dtype), gb.to(dtype)  # F.linear wants one dtype

    def decomposed():
        return ffla(q, k, v, gw_t, gb_t, heads=BASE["heads"], axis=axis, grid=BASE["grid"], gate=gate)

    fused()
    want = ffla(q.double(), k.double(), v.double(), gw.double(), gb.double(), heads=BASE["heads"], axis=axis,
                grid=BASE["grid"], gate=gate)
    err = ((out.double() - want).abs().max() / want.abs().max()).item()
    if not err < 1e-3:
        sys.exit(f"fused {axis} {io} disagrees with the reference (relative error {err:.3g}); not timing it")
    moved = 4 * q.numel() * q.element_size()
    return dict(node=f"lvt-base {axis}", io=io, fused=time_us(fused, iters), torch=time_us(decomposed, iters),
                floor=moved / bandwidth * 1e6, mbytes=moved / 1e6, err=err)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--gate", choices=sorted(GATES), default="shared")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--lib", type=Path, help="a libffla_gpu.so already built (else built here with nvcc)")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: the FFLA kernel benchmark needs it with CUDA; nothing measured.")
        return 0
    if not torch.cuda.is_available():
        print("No CUDA GPU here: the FFLA kernel benchmark needs one; nothing measured.")
        return 0

    major, minor = torch.cuda.get_device_capability()
    with tempfile.TemporaryDirectory() as tmp:
        lib = load_library(args.lib or build_library(Path(tmp), f"{major}{minor}"))
        bandwidth = copy_bandwidth()
        rows = [bench_node(lib, axis, io, args.batch, args.gate, args.iters, bandwidth)
                for axis in AXES for io in DTYPES]

    print(f"{torch.cuda.get_device_name()}, copy bandwidth {bandwidth / 1e9:.0f} GB/s, batch {args.batch}, "
          f"{args.gate} gate; microseconds per node (mean of {args.iters} back-to-back launches, best of 3)")
    print()
    print("| node | I/O | MB moved | floor | fused | torch | fused / floor | torch / fused | rel. error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['node']} | {r['io']} | {r['mbytes']:.1f} | {r['floor']:.1f} | {r['fused']:.1f} | "
              f"{r['torch']:.1f} | {r['fused'] / r['floor']:.2f}x | {r['torch'] / r['fused']:.2f}x | {r['err']:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
