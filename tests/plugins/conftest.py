"""Shared pieces of the FFLA kernel tests: the shape sweep, the ctypes mirrors of the kernel's
C structs, the CPU library build, the reference and the error measures.

The kernel (plugins/ffla/ffla_kernel.cuh) runs on the CPU through ffla_cpu.cpp, built here
with g++ once per session, and on the GPU through ffla_gpu_test.cu (test_ffla_kernel_gpu.py).
Test modules reach these helpers through the `ffla` fixture (pytest's importlib mode keeps
conftest modules out of reach of `import`).
"""

from __future__ import annotations

import ctypes
import dataclasses
import itertools
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lvt_edge.model.ffla import ffla as reference_ffla

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "ffla"

AXIS = {"temporal": 0, "spatial": 1}  # ffla_params.h: Axis
GATE = {"none": 0, "shared": 1, "separate": 2}  # ffla_params.h: GateMode
IO_DTYPE = {"fp32": 0, "fp16": 1}  # ffla_params.h: DType

# Stated tolerances (plugins/ffla/README.md): fp32 I/O against the float64 reference, max abs;
# fp16 I/O against the float64 reference on the same fp16-rounded inputs, max |a - b| / max |b|
# per case. Rounding the output to fp16 alone costs up to 2^-11 (4.9e-4) of that scale.
FP32_MAX_ABS = 1e-5
FP16_MAX_REL = 1e-3


class Params(ctypes.Structure):
    """ffla_params.h: struct Params (field order and types must match)."""

    _fields_ = [(name, ctypes.c_int32) for name in (
        "batch", "frames", "grid", "heads", "head_dim", "axis", "shift", "shift_div", "gate_mode",
        "official_border")] + [("eps", ctypes.c_float)]


class CpuOptions(ctypes.Structure):
    """ffla_cpu.cpp: struct FflaCpuOptions; zero fields take the defaults."""

    _fields_ = [("shuffle_seed", ctypes.c_uint32), ("threads", ctypes.c_int32), ("blocks", ctypes.c_int32),
                ("chunk_tokens", ctypes.c_int32), ("global_weights", ctypes.c_int32)]


@dataclasses.dataclass(frozen=True)
class Case:
    """One FFLA node: shapes and attributes, as lvt_edge.model.ffla.ffla takes them."""

    name: str
    batch: int
    frames: int
    grid: int
    heads: int
    head_dim: int
    axis: str
    gate: str = "shared"
    shift: bool = True
    shift_div: int = 4
    official_border: bool = False
    index: int = -1  # position in the sweep (picks the CPU executor's variant); -1: defaults

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.batch, self.frames, self.grid * self.grid, self.heads * self.head_dim

    def params(self) -> Params:
        return Params(self.batch, self.frames, self.grid, self.heads, self.head_dim, AXIS[self.axis], int(self.shift),
                      self.shift_div, GATE[self.gate], int(self.official_border), 1e-6)


# (heads, head_dim): head dims that are not multiples of the kernel's 4-wide tiles, channel
# counts whose shift groups straddle heads.
_CHANNELS = ((2, 16), (3, 12), (1, 20), (4, 8), (2, 24))
_GEOMETRIES = tuple(itertools.product((3, 5, 7), (1, 3, 5)))  # (grid, frames)


def sweep_cases() -> list[Case]:
    """Every axis x gate x shift (off, shift_div 4, 8) x official_border x batch (1, 3), sizes cycling."""
    cases = []
    flags = itertools.product(AXIS, GATE, ((False, 4), (True, 4), (True, 8)), (False, True), (1, 3))
    for i, (axis, gate, (shift, div), border, batch) in enumerate(flags):
        grid, frames = _GEOMETRIES[i % len(_GEOMETRIES)]
        heads, d = _CHANNELS[i % len(_CHANNELS)]
        name = (f"{axis[:4]}-{gate}-{'div%d' % div if shift else 'noshift'}{'-ob' if border else ''}"
                f"-b{batch}t{frames}g{grid}h{heads}d{d}")
        cases.append(Case(name, batch, frames, grid, heads, d, axis, gate, shift, div, border, index=i))
    return cases


def layout_cases() -> list[Case]:
    """The lvt-tiny, lvt-small and lvt-base attention layouts (lvt_edge.model.config)."""
    tiny = dict(batch=2, frames=8, grid=7, heads=2, head_dim=32)
    small = dict(batch=1, frames=8, grid=12, heads=4, head_dim=64)
    base = dict(batch=1, frames=16, grid=17, heads=8, head_dim=64)
    return [
        Case("tiny-temporal", axis="temporal", **tiny),
        Case("tiny-spatial", axis="spatial", **tiny),
        Case("tiny-temporal-separate-ob", axis="temporal", gate="separate", official_border=True, **tiny),
        Case("tiny-spatial-separate-div8", axis="spatial", gate="separate", shift_div=8, **tiny),
        Case("small-temporal", axis="temporal", **small),
        Case("small-spatial-separate", axis="spatial", gate="separate", **small),
        Case("base-temporal", axis="temporal", **base),
        Case("base-spatial", axis="spatial", **base),
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        cases = sweep_cases() + layout_cases()
        metafunc.parametrize("case", cases, ids=[c.name for c in cases])


def build_cpu_library(out_dir: Path, defines: tuple[str, ...] = ()) -> Path:
    """The documented build of ffla_cpu.cpp (its header), plus test-only -D flags."""
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("g++ not found: the CPU build of the FFLA kernel needs it")
    out = out_dir / ("libffla_cpu%s.so" % "".join("_" + d.lower() for d in defines))
    cmd = [compiler, "-O2", "-std=c++17", "-shared", "-fPIC", *("-D" + d for d in defines),
           "-I", str(PLUGIN_DIR), str(PLUGIN_DIR / "ffla_cpu.cpp"), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the FFLA CPU library failed:\n{' '.join(cmd)}\n{done.stderr}")
    return out


class CpuKernel:
    """ctypes view of libffla_cpu.so."""

    def __init__(self, path: Path):
        lib = ctypes.CDLL(str(path))
        lib.ffla_cpu_unsupported.restype = ctypes.c_char_p
        lib.ffla_cpu_unsupported.argtypes = [ctypes.POINTER(Params)]
        lib.ffla_cpu_run_ex.restype = ctypes.c_int
        lib.ffla_cpu_run_ex.argtypes = [ctypes.POINTER(Params), ctypes.c_int] + [ctypes.c_void_p] * 6 + [
            ctypes.POINTER(CpuOptions)]
        lib.ffla_cpu_run.restype = ctypes.c_int
        lib.ffla_cpu_run.argtypes = [ctypes.POINTER(Params), ctypes.c_int] + [ctypes.c_void_p] * 6 + [ctypes.c_uint]
        for name in ("ffla_cpu_workspace_bytes", "ffla_cpu_sizeof_params", "ffla_cpu_sizeof_options"):
            getattr(lib, name).restype = ctypes.c_size_t
        lib.ffla_cpu_workspace_bytes.argtypes = [ctypes.POINTER(Params)]
        for name in ("ffla_cpu_half_to_float", "ffla_cpu_float_to_half"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        self.lib = lib

    def unsupported(self, params: Params) -> str | None:
        why = self.lib.ffla_cpu_unsupported(ctypes.byref(params))
        return None if why is None else why.decode()

    def run(self, params: Params, io: str, arrays: dict[str, np.ndarray | None], out: np.ndarray,
            options: CpuOptions) -> int:
        ptr = lambda a: None if a is None else a.ctypes.data  # noqa: E731
        return self.lib.ffla_cpu_run_ex(ctypes.byref(params), IO_DTYPE[io], ptr(arrays["q"]), ptr(arrays["k"]),
                                        ptr(arrays["v"]), ptr(arrays["gw"]), ptr(arrays["gb"]), ptr(out),
                                        ctypes.byref(options))


class Harness:
    """Inputs, reference and error measures shared by the CPU and GPU kernel tests."""

    PLUGIN_DIR = PLUGIN_DIR
    Case = Case
    Params = Params
    CpuOptions = CpuOptions
    IO_DTYPE = IO_DTYPE
    FP32_MAX_ABS = FP32_MAX_ABS
    FP16_MAX_REL = FP16_MAX_REL
    CpuKernel = CpuKernel
    build_cpu_library = staticmethod(build_cpu_library)

    def __init__(self):
        self.worst: dict[str, tuple[float, str]] = {}  # "backend io" -> (worst error, case)
        self.caught: dict[str, tuple[float, str]] = {}  # broken variant -> (smallest error, case)

    @staticmethod
    def seed(case: Case, io: str) -> int:
        """A different, reproducible, non-zero seed (also the CPU shuffle seed) per case and dtype."""
        return zlib.crc32(f"{case.name}/{io}".encode()) | 1

    @staticmethod
    def inputs(case: Case, seed: int) -> dict[str, torch.Tensor | None]:
        """Fresh N(0, 1) q, k, v; gate weights scaled so the gate's pre-activation is O(1)."""
        gen = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(case.shape, generator=gen) for _ in range(3))
        if case.gate == "none":
            return dict(q=q, k=k, v=v, gw=None, gb=None)
        n, d = (2 if case.gate == "separate" else 1), case.head_dim
        gw = torch.randn(n, d, 3 * d, generator=gen) * (3 * d) ** -0.5
        gb = torch.randn(n, d, generator=gen) * 0.5
        return dict(q=q, k=k, v=v, gw=gw, gb=gb)

    @staticmethod
    def io_inputs(inputs: dict[str, torch.Tensor | None], io: str) -> dict[str, torch.Tensor | None]:
        """What the kernel gets: q, k, v in the I/O dtype (fp16-rounded), gate tensors fp32."""
        dtype = torch.float16 if io == "fp16" else torch.float32
        return {n: (t if t is None or n in ("gw", "gb") else t.to(dtype)) for n, t in inputs.items()}

    @staticmethod
    def reference(case: Case, io_inputs: dict[str, torch.Tensor | None]) -> np.ndarray:
        """lvt_edge.model.ffla.ffla in float64 on exactly the values the kernel was given."""
        t = {n: (None if x is None else x.double()) for n, x in io_inputs.items()}
        out = reference_ffla(t["q"], t["k"], t["v"], t["gw"], t["gb"], heads=case.heads, axis=case.axis,
                             grid=case.grid, shift=case.shift, shift_div=case.shift_div, gate=case.gate,
                             official_border=case.official_border)
        return out.numpy()

    @staticmethod
    def error(io: str, out: np.ndarray, ref: np.ndarray) -> float:
        """fp32: max abs error; fp16: max abs error over max |reference|; NaN if out has any."""
        out = out.astype(np.float64)
        if not np.isfinite(out).all():
            return float("nan")
        err = float(np.abs(out - ref).max())
        return err / float(np.abs(ref).max()) if io == "fp16" else err

    def record(self, backend: str, io: str, err: float, case_name: str) -> None:
        """Keeps the worst error per backend and dtype for the end-of-session summary."""
        key = f"{backend} {io}"
        worst = self.worst.get(key, (-1.0, ""))[0]
        if worst == worst and not err <= worst:  # a NaN, once seen, stays the worst
            self.worst[key] = (err, case_name)

    def record_caught(self, variant: str, err: float, case_name: str) -> None:
        """Keeps the smallest error a deliberately broken kernel variant made, for the summary."""
        if variant not in self.caught or err < self.caught[variant][0]:
            self.caught[variant] = (err, case_name)

    @staticmethod
    def tolerance(io: str) -> float:
        return FP16_MAX_REL if io == "fp16" else FP32_MAX_ABS


_HARNESS = Harness()


@pytest.fixture(scope="session")
def ffla() -> Harness:
    return _HARNESS


@pytest.fixture(scope="session")
def cpu_kernel(tmp_path_factory: pytest.TempPathFactory) -> CpuKernel:
    return CpuKernel(build_cpu_library(tmp_path_factory.mktemp("ffla_cpu")))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    for key, (err, case) in sorted(_HARNESS.worst.items()):
        measure = "max |a-b| / max |ref|" if key.endswith("fp16") else "max abs"
        terminalreporter.write_line(f"FFLA kernel {key}: worst error {err:.3g} ({measure}, {case})")
    for variant, (err, case) in sorted(_HARNESS.caught.items()):
        terminalreporter.write_line(f"FFLA kernel built with -D{variant}: smallest error {err:.3g} ({case}), caught")
