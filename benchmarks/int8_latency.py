"""Side-by-side ONNX Runtime CPU latency at batch 1: fp32 vs int8 vs fp16 of one bundle, and
(--sweep) int8 quantized with different op-type sets, all measured interleaved in one run.

    python benchmarks/int8_latency.py lvt-bundle                 # the bundle's built variants
    python benchmarks/int8_latency.py lvt-bundle --sweep         # which op types to quantize
    python benchmarks/int8_latency.py lvt-bundle --profile int8  # where the time goes
    python benchmarks/int8_latency.py lvt-bundle --against old-bundle --profile fp32  # before/after

Prints median latency per model and its ratio to fp32 (median and range of the per-round
ratios). Interleaving matters: the same fp32 model varies by 30 % across runs on a shared
2-core machine. The helpers at the top (sessions, interleaved rounds, ratio statistics, the
machine line) are shared by benchmarks/precision.py and benchmarks/scaling.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

SWEEP = {
    "int8 MatMul,Gemm": ("MatMul", "Gemm"),
    "int8 MatMul,Gemm,Conv": ("MatMul", "Gemm", "Conv"),
    "int8 modelopt default": (),
}


def session(model: str | os.PathLike | bytes, threads: int):
    """An ONNX Runtime CPU session as the bundle runtime makes it (ENABLE_ALL), `threads` intra-op."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts,
                                providers=["CPUExecutionProvider"])


def interleaved_ms(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 3,
                   rewarm: int = 0) -> dict[str, np.ndarray]:
    """Milliseconds per call of each function, round i of every one before round i+1 of any
    (`rewarm` untimed calls before each timed one: see lvt_edge.report.timing)."""
    from lvt_edge.report.timing import time_interleaved

    return {k: np.asarray(v) for k, v in time_interleaved(fns, rounds, warmup=warmup, rewarm=rewarm,
                                                          progress=False).items()}


def ratio_stats(num: np.ndarray, den: np.ndarray) -> tuple[float, float, float]:
    """Median, min and max of the per-round ratios num[i] / den[i] (same rounds, interleaved)."""
    r = np.asarray(num) / np.asarray(den)
    return float(np.median(r)), float(r.min()), float(r.max())


def fmt_ratio(stats: tuple[float, float, float]) -> str:
    return f"{stats[0]:.2f}x ({stats[1]:.2f}-{stats[2]:.2f})"


def machine_summary(threads: int | str) -> str:
    """One line: CPU model, logical CPUs, OS, Python, ONNX Runtime, threads used."""
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, onnxruntime {ort.__version__}; {threads} intra-op thread(s)")


def side_by_side(models: dict[str, Path], clip: np.ndarray, *, rounds: int, threads: int) -> dict[str, np.ndarray]:
    """Per-round milliseconds of each model on `clip`, interleaved."""
    sessions = {name: session(path, threads) for name, path in models.items()}
    feeds = {name: {s.get_inputs()[0].name: clip} for name, s in sessions.items()}
    return interleaved_ms({name: (lambda s=s, f=feeds[name]: s.run(None, f)) for name, s in sessions.items()},
                          rounds, warmup=5)


def sweep_models(workdir: Path, tmp: Path, clips: np.ndarray) -> dict[str, Path]:
    from lvt_edge.variants.quantize import qdq_onnx_from_onnx

    out = {}
    for name, ops in SWEEP.items():
        path = tmp / (name.replace(" ", "_").replace(",", "-") + ".onnx")
        qdq_onnx_from_onnx(workdir / "model.onnx", path, clips, op_types=ops)
        out[name] = path
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workdir", nargs="?", default="lvt-bundle")
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sweep", action="store_true", help="also quantize with each op-type set of SWEEP")
    ap.add_argument("--calib-clips", type=int, default=64, help="random-normal calibration clips for --sweep")
    ap.add_argument("--profile", metavar="PRECISION", default=None,
                    help="print where ONNX Runtime spends that variant's time (op types, fused nodes)")
    ap.add_argument("--against", metavar="DIR", default=None,
                    help="a second bundle of the same model (e.g. built by an older lvt_edge): its variants "
                         "run in the same rounds, labelled 'PRECISION @DIR'")
    args = ap.parse_args(argv)

    from lvt_edge import bundle as B

    workdir = Path(args.workdir)
    data = B.read_bundle(workdir)
    contract = B.bundle_contract(data)
    rng = np.random.default_rng(0)
    clip = rng.uniform(-1, 1, (1, *contract.input_shape)).astype(np.float32)
    models = {p: workdir / data["variants"][p]["onnx"] for p in B.PRECISIONS if p in data["variants"]}
    if args.against:
        other = B.read_bundle(args.against)
        models.update({f"{p} @{args.against}": Path(args.against) / other["variants"][p]["onnx"]
                       for p in B.PRECISIONS if p in other["variants"]})
    with tempfile.TemporaryDirectory() as tmp:
        if args.sweep:
            calib = rng.uniform(-1, 1, (args.calib_clips, *contract.input_shape)).astype(np.float32)
            models.update(sweep_models(workdir, Path(tmp), calib))
        ms = side_by_side(models, clip, rounds=args.rounds, threads=args.threads)
    print(f"ONNX Runtime CPU, batch 1, median of {args.rounds} interleaved rounds; {machine_summary(args.threads)}")
    for name, t in ms.items():
        line = f"  {name:24s} {np.median(t):8.2f} ms   {fmt_ratio(ratio_stats(ms['fp32'], t))} vs fp32"
        before = f"{name.split()[0]} @{args.against}"
        if args.against and before in ms and before != name:
            line += f"   {fmt_ratio(ratio_stats(ms[before], t))} vs {before}"
        print(line)
    if args.profile:
        from lvt_edge.report.profile import format_profile, profile_models

        labels = [args.profile] + ([f"{args.profile} @{args.against}"] if args.against else [])
        feeds = {session(models[args.profile], args.threads).get_inputs()[0].name: clip}
        profs = profile_models({k: (models[k], feeds) for k in labels}, runs=args.rounds, threads=args.threads)
        for prof in profs.values():
            print()
            print(format_profile(prof))
    return 0


if __name__ == "__main__":
    sys.exit(main())
