"""Compare the export simplifiers (and fused vs plain) on one config: node counts and ORT CPU latency.

    python benchmarks/export_simplifier.py [--model lvt-tiny] [--threads 2] [--runs 200]

Variants are timed interleaved (round-robin) because shared machines drift between runs.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch

    from lvt_edge.export import onnx_from_checkpoint
    from lvt_edge.model import create_model
    from lvt_edge.model.checkpoint import contract_for, save_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="lvt-tiny")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp())
    torch.manual_seed(0)
    model = create_model(args.model)
    ckpt = tmp / args.model
    save_checkpoint(ckpt, model, contract_for(model.cfg))
    variants = {"onnxslim": {}, "onnxsim": {"simplifier": "onnxsim"}, "none": {"simplifier": "none"},
                "onnxslim --no-fuse": {"fuse": False}}
    sessions, rows = {}, {}
    for name, kw in variants.items():
        t0 = time.perf_counter()
        path = onnx_from_checkpoint(ckpt, tmp / name.replace(" ", "_"), **kw)
        export_s = time.perf_counter() - t0
        proto = onnx.load(path)
        ops = collections.Counter(n.op_type for n in proto.graph.node)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
        sessions[name] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        rows[name] = {"nodes": len(proto.graph.node), "MatMul": ops["MatMul"], "Gemm": ops["Gemm"],
                      "Transpose": ops["Transpose"], "Reshape": ops["Reshape"], "export_s": export_s, "times": []}
    cfg = model.cfg
    clip = np.random.default_rng(0).uniform(-1, 1, (1, 3, cfg.frames, cfg.img_size, cfg.img_size)).astype(np.float32)
    for s in sessions.values():
        for _ in range(10):
            s.run(None, {"clip": clip})
    for _ in range(args.runs):
        for name, s in sessions.items():
            t0 = time.perf_counter()
            s.run(None, {"clip": clip})
            rows[name]["times"].append((time.perf_counter() - t0) * 1e3)
    print(f"{args.model}, batch 1, ORT {ort.__version__} CPU, {args.threads} threads, {args.runs} interleaved runs")
    print("| variant | top-level nodes | MatMul | Gemm | Transpose | Reshape | export (s) | median ms | p90 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        t = sorted(r["times"])
        print(f"| {name} | {r['nodes']} | {r['MatMul']} | {r['Gemm']} | {r['Transpose']} | {r['Reshape']} | "
              f"{r['export_s']:.1f} | {statistics.median(t):.2f} | {t[int(0.9 * len(t))]:.2f} |")


if __name__ == "__main__":
    main()
