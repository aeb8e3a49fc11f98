"""The fused FFLA kernel (plugins/ffla/ffla_kernel.cuh) run on the CPU against the reference op.

The CPU executor runs the kernel's phases exactly as written for the GPU, one thread id at a
time in a freshly shuffled order per phase, with shared memory, the workspace and the output
poisoned with NaN. Sweep cases also vary the executor: threads per block (256, 96, 33), blocks
striding over the groups (3, 1, 5), tokens per chunk (the GPU's default, 3, 5, 1: many ragged
chunks and the workspace path) and gate weights staged in shared memory or read from global.

Tolerances (conftest.py): fp32 I/O max abs error < 1e-5 against the float64 reference; fp16 I/O
max |out - ref| / max |ref| < 1e-3 per case, ref computed in float64 from the same
fp16-rounded inputs (the final rounding of out to fp16 alone is up to 4.9e-4 of that scale).
"""

from __future__ import annotations

import concurrent.futures
import ctypes

import numpy as np
import pytest

IOS = ("fp32", "fp16")


def _options(ffla, case, seed: int):
    i = case.index
    if i < 0:  # the layout cases run the executor as the GPU launcher would configure it
        return ffla.CpuOptions(shuffle_seed=seed)
    return ffla.CpuOptions(shuffle_seed=seed, threads=(256, 96, 33)[i % 3], blocks=(3, 1, 5)[(i // 3) % 3],
                           chunk_tokens=(0, 3, 5, 1)[i % 4], global_weights=(i // 2) % 2)


def _run(kernel, ffla, case, io: str, seed: int, options=None) -> tuple[np.ndarray, np.ndarray]:
    """(kernel output, float64 reference) for fresh inputs drawn from `seed`."""
    given = ffla.io_inputs(ffla.inputs(case, seed), io)
    arrays = {n: (None if t is None else np.ascontiguousarray(t.numpy())) for n, t in given.items()}
    out = np.full(case.shape, np.nan, dtype=np.float16 if io == "fp16" else np.float32)
    status = kernel.run(case.params(), io, arrays, out, options or _options(ffla, case, seed))
    assert status == 0, f"ffla_cpu_run_ex returned {status}: {kernel.unsupported(case.params())}"
    return out, ffla.reference(case, given)


@pytest.mark.parametrize("io", IOS)
def test_matches_reference(cpu_kernel, ffla, case, io):
    out, ref = _run(cpu_kernel, ffla, case, io, ffla.seed(case, io))
    err = ffla.error(io, out, ref)
    ffla.record("cpu", io, err, case.name)
    assert err < ffla.tolerance(io), f"{case.name} {io}: error {err:.3g}"


def test_struct_layouts_match_ctypes(cpu_kernel, ffla):
    assert cpu_kernel.lib.ffla_cpu_sizeof_params() == ctypes.sizeof(ffla.Params)
    assert cpu_kernel.lib.ffla_cpu_sizeof_options() == ctypes.sizeof(ffla.CpuOptions)


BAD_PARAMS = {
    "head_dim 0": (dict(head_dim=0), "head_dim"),
    "head_dim 129": (dict(head_dim=129), "head_dim"),
    "no heads": (dict(heads=0), "heads"),
    "no frames": (dict(frames=0), "frames"),
    "grid 0": (dict(grid=0), "grid"),
    "negative batch": (dict(batch=-1), "batch"),
    "axis 2": (dict(axis=2), "axis"),
    "gate_mode 3": (dict(gate_mode=3), "gate_mode"),
    "shift 2": (dict(shift=2), "shift"),
    "official_border 2": (dict(official_border=2), "official_border"),
    "shift_div 1": (dict(axis=1, shift_div=1), "shift_div"),
    "shift_div 0": (dict(axis=1, shift_div=0), "shift_div"),
    "shift_div > channels": (dict(axis=1, shift_div=64), "shift_div"),
    "eps NaN": (dict(eps=float("nan")), "eps"),
    "eps negative": (dict(eps=-1e-6), "eps"),
    "eps inf": (dict(eps=float("inf")), "eps"),
    "too many tokens": (dict(grid=1025), "too large"),
}


def _params(ffla, **changes):
    p = ffla.Case("p", batch=2, frames=8, grid=7, heads=2, head_dim=16, axis="temporal").params()
    for name, value in changes.items():
        setattr(p, name, value)
    return p


@pytest.mark.parametrize("bad", BAD_PARAMS, ids=list(BAD_PARAMS))
def test_unsupported_rejects_bad_params(cpu_kernel, ffla, bad):
    changes, word = BAD_PARAMS[bad]
    params = _params(ffla, **changes)
    why = cpu_kernel.unsupported(params)
    assert why is not None and word in why, why
    # and the run refuses without touching the output
    arrays = {n: np.zeros(1, np.float32) for n in ("q", "k", "v", "gw", "gb")}
    out = np.full(4, np.nan, np.float32)
    assert cpu_kernel.run(params, "fp32", arrays, out, ffla.CpuOptions()) == 1
    assert np.isnan(out).all()


def test_supported_params_pass(cpu_kernel, ffla):
    assert cpu_kernel.unsupported(_params(ffla)) is None
    assert cpu_kernel.unsupported(_params(ffla, axis=1, shift_div=8)) is None
    assert cpu_kernel.unsupported(_params(ffla, shift_div=0)) is None  # unused on the temporal axis
    assert cpu_kernel.unsupported(_params(ffla, head_dim=128, gate_mode=2)) is None


def test_bad_dtype_and_null_pointers_are_refused(cpu_kernel, ffla):
    params = _params(ffla)
    arrays = {n: np.zeros(1, np.float32) for n in ("q", "k", "v", "gw", "gb")}
    out = np.zeros(1, np.float32)
    assert cpu_kernel.lib.ffla_cpu_run_ex(ctypes.byref(params), 7, *[a.ctypes.data for a in arrays.values()],
                                          out.ctypes.data, ctypes.byref(ffla.CpuOptions())) == 2
    arrays["gw"] = None
    assert cpu_kernel.run(params, "fp32", arrays, out, ffla.CpuOptions()) == 3


def test_workspace_only_for_chunked_sequences(cpu_kernel, ffla):
    """q' goes to the workspace (fp32) only when a sequence spans several chunks."""
    base = dict(batch=1, frames=16, grid=17, heads=8, head_dim=64)
    spatial = ffla.Case("s", axis="spatial", **base).params()
    temporal = ffla.Case("t", axis="temporal", **base).params()
    assert cpu_kernel.lib.ffla_cpu_workspace_bytes(ctypes.byref(spatial)) == 16 * 289 * 512 * 4
    assert cpu_kernel.lib.ffla_cpu_workspace_bytes(ctypes.byref(temporal)) == 0


def test_half_conversion_matches_numpy(cpu_kernel):
    lib = cpu_kernel.lib
    bits = np.arange(1 << 16, dtype=np.uint16)
    got = np.empty(bits.shape, np.float32)
    lib.ffla_cpu_half_to_float(bits.ctypes.data, got.ctypes.data, bits.size)
    want = bits.view(np.float16).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[~np.isnan(want)].view(np.uint32), want[~np.isnan(want)].view(np.uint32))

    rng = np.random.default_rng(0)
    edges = np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e9, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0001,
                      2.0**-14, 2.0**-14 * (1 - 2.0**-12), 1 + 2.0**-11, 1 + 3 * 2.0**-11, np.inf, -np.inf],
                     np.float32)
    floats = np.concatenate([edges, rng.integers(0, 1 << 32, 400_000, dtype=np.uint64).astype(np.uint32)
                             .view(np.float32), rng.standard_normal(100_000).astype(np.float32) * 1e-5])
    floats = floats[~np.isnan(floats)]
    halves = np.empty(floats.shape, np.uint16)
    lib.ffla_cpu_float_to_half(floats.ctypes.data, halves.ctypes.data, floats.size)
    with np.errstate(over="ignore"):
        assert np.array_equal(halves, floats.astype(np.float16).view(np.uint16))


# Each broken variant and the cases that must expose it (True) or still pass (False). A missing
# barrier breaks every case, gated or not; a wrong shift offset breaks shifted cases of both axes
# and nothing else.
BREAKS = {
    "FFLA_BREAK_BARRIER": [(dict(axis="spatial"), True), (dict(axis="temporal", gate="none"), True)],
    "FFLA_BREAK_SHIFT": [(dict(axis="spatial"), True), (dict(axis="temporal"), True),
                         (dict(axis="temporal", shift=False), False), (dict(axis="spatial", shift=False), False)],
}


def test_broken_variants_are_caught(ffla, tmp_path):
    """The comparison fails when one barrier is removed or one shift offset is wrong."""
    with concurrent.futures.ThreadPoolExecutor(len(BREAKS)) as pool:
        paths = dict(zip(BREAKS, pool.map(lambda flag: ffla.build_cpu_library(tmp_path, (flag,)), BREAKS)))
    for flag, expectations in BREAKS.items():
        kernel = ffla.CpuKernel(paths[flag])
        for n, (changes, must_fail) in enumerate(expectations):
            case = ffla.Case(f"{flag}-{n}", **{**dict(batch=2, frames=5, grid=5, heads=2, head_dim=16), **changes})
            out, ref = _run(kernel, ffla, case, "fp32", seed=50 + n, options=ffla.CpuOptions(shuffle_seed=3))
            err = ffla.error("fp32", out, ref)
            if must_fail:
                ffla.record_caught(flag, err, case.name)
                assert not err < ffla.FP32_MAX_ABS, f"{flag} went unnoticed on {changes}: error {err:.3g}"
            else:
                assert err < ffla.FP32_MAX_ABS, f"{flag} should not affect {changes}: error {err:.3g}"
