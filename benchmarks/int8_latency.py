"""Side-by-side ONNX Runtime CPU latency at batch 1: fp32 vs int8 vs fp16 of one bundle, and
(--sweep) int8 quantized with different op-type sets, all measured interleaved in one run.

    python benchmarks/int8_latency.py lvt-bundle                 # the bundle's built variants
    python benchmarks/int8_latency.py lvt-bundle --sweep         # which op types to quantize
    python benchmarks/int8_latency.py lvt-bundle --profile int8  # ORT op-type time shares

Prints median latency per model and its ratio to fp32. Interleaving matters: the same fp32
model varies by 30 % across runs on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

SWEEP = {
    "int8 MatMul,Gemm": ("MatMul", "Gemm"),
    "int8 MatMul,Gemm,Conv": ("MatMul", "Gemm", "Conv"),
    "int8 modelopt default": (),
}


def session(path: Path, threads: int, profile: bool = False):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.enable_profiling = profile
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def side_by_side(models: dict[str, Path], clip: np.ndarray, *, rounds: int, threads: int) -> dict[str, float]:
    sessions = {name: session(path, threads) for name, path in models.items()}
    feeds = {name: {s.get_inputs()[0].name: clip} for name, s in sessions.items()}
    for name, s in sessions.items():
        for _ in range(5):
            s.run(None, feeds[name])
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, feeds[name])
            times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t) * 1e3) for name, t in times.items()}


def op_profile(path: Path, clip: np.ndarray, *, runs: int, threads: int) -> dict[str, float]:
    """Share of kernel time per op type (ORT profiling)."""
    s = session(path, threads, profile=True)
    feed = {s.get_inputs()[0].name: clip}
    for _ in range(runs):
        s.run(None, feed)
    trace_file = Path(s.end_profiling())
    trace = json.loads(trace_file.read_text())
    trace_file.unlink()
    per_op: dict[str, float] = defaultdict(float)
    for ev in trace:
        if ev.get("cat") == "Node" and ev["name"].endswith("_kernel_time"):
            per_op[ev["args"]["op_name"]] += ev["dur"]
    total = sum(per_op.values())
    return dict(sorted(((k, v / total * 100) for k, v in per_op.items()), key=lambda kv: -kv[1]))


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
    ap.add_argument("--profile", metavar="PRECISION", default=None, help="print ORT op-type time shares")
    args = ap.parse_args(argv)

    from lvt_edge import bundle as B

    workdir = Path(args.workdir)
    data = B.read_bundle(workdir)
    contract = B.bundle_contract(data)
    rng = np.random.default_rng(0)
    clip = rng.uniform(-1, 1, (1, *contract.input_shape)).astype(np.float32)
    models = {p: workdir / data["variants"][p]["onnx"] for p in B.PRECISIONS if p in data["variants"]}
    with tempfile.TemporaryDirectory() as tmp:
        if args.sweep:
            calib = rng.uniform(-1, 1, (args.calib_clips, *contract.input_shape)).astype(np.float32)
            models.update(sweep_models(workdir, Path(tmp), calib))
        lat = side_by_side(models, clip, rounds=args.rounds, threads=args.threads)
    print(f"ONNX Runtime CPU, batch 1, {args.threads} threads, median of {args.rounds} interleaved rounds")
    for name, ms in lat.items():
        print(f"  {name:24s} {ms:8.2f} ms   {lat['fp32'] / ms:5.2f}x vs fp32")
    if args.profile:
        shares = op_profile(models[args.profile], clip, runs=args.rounds, threads=args.threads)
        print(f"\n{args.profile}: share of kernel time by op type")
        for op, share in list(shares.items())[:12]:
            print(f"  {op:24s} {share:5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
