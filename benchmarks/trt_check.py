"""One command that checks the TensorRT path on this machine (a Jetson or any NVIDIA GPU).

    python benchmarks/trt_check.py                     # the demo model: export, calibrate, build, check
    python benchmarks/trt_check.py --bundle work/      # engines for ONNX variants built elsewhere

It builds (or reuses) the fused-op plugin for the installed TensorRT, builds fp32, fp16 and int8
engines with it, runs each engine on held-out clips next to ONNX Runtime on the same precision,
measures batch-1 latency of both, and prints one table. The first form needs the `export` and
`quant` extras (torch, modelopt); the second needs only TensorRT, a CUDA binding and ONNX
Runtime, so a Jetson can check a bundle calibrated on a workstation
(`lvt-edge build work/ --target onnxruntime` there, then copy work/ over).

Exit status: 0 when every engine agrees with ONNX Runtime within its tolerance, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

COLUMNS = ("precision", "plugin layers", "agree %", "max |dlogit|", "top-1 TRT", "top-1 ORT", "TRT ms", "ORT ms", "ok")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=Path("trt-check"),
                   help="folder for the demo model's bundle (default ./trt-check)")
    p.add_argument("--bundle", type=Path, help="build engines for this bundle's ONNX variants instead of the demo model")
    p.add_argument("--precision", default="all", help="fp32, fp16, int8, a comma list, or all (default)")
    p.add_argument("--plugin", type=Path, help="plugin library (default: `lvt-edge plugin build` for this machine)")
    p.add_argument("--no-plugin", action="store_true", help="let TensorRT run the fused op's ONNX function body")
    p.add_argument("--batch-profile", default="1:1:8", metavar="MIN:OPT:MAX", help="engine batch range (default 1:1:8)")
    p.add_argument("--eval", dest="eval_clips", type=Path, help="held-out clip set (default: synthetic test clips)")
    p.add_argument("--eval-size", type=int, default=200, help="held-out clips to compare on (default 200)")
    p.add_argument("--calib-size", type=int, default=64, help="calibration clips for the demo model (default 64)")
    p.add_argument("--rounds", type=int, default=50, help="latency rounds per backend, 0 to skip (default 50)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    args = p.parse_args(argv)
    args.precision = [s for s in args.precision.split(",") if s]
    return args


def machine() -> list[str]:
    """What runs here, as lines for the report; fails early with the fix when TensorRT or CUDA cannot."""
    from lvt_edge.runtime.cuda import cuda_api
    from lvt_edge.runtime.trt import import_tensorrt

    trt = import_tensorrt()
    api = cuda_api()
    major, minor = api.compute_capability()
    return [f"TensorRT {trt.__version__}", f"GPU {api.device_name()} (sm {major}{minor}) via {api.name}"]


def plugin_library(args: argparse.Namespace, log) -> Path | None:
    if args.no_plugin:
        return None
    if args.plugin is not None:
        return args.plugin
    from lvt_edge.variants.plugin import plugin_from_sources

    return plugin_from_sources(log=log).library


def build(args: argparse.Namespace, plugin: Path | None, log) -> tuple[Path, dict[str, Any]]:
    """Engines (and, for the demo model, the ONNX variants) with their checks against ONNX Runtime."""
    from lvt_edge.variants import build_bundle
    from lvt_edge.variants.pipeline import build_engines

    common = dict(plugin=plugin, no_plugin=args.no_plugin, batch=args.batch_profile, eval_clips=args.eval_clips,
                  eval_size=args.eval_size, progress=False, log=log)
    if args.bundle is not None:
        return args.bundle, build_engines(args.bundle, args.precision, **common)
    data = build_bundle(args.workdir, args.precision, target="tensorrt", calib_size=args.calib_size,
                        latency_rounds=0, **common)
    return args.workdir, data


def latency_ms(workdir: Path, precision: str, backend: str, rounds: int) -> float | None:
    """Median batch-1 latency of one backend (after a warm-up), or None when rounds is 0."""
    if rounds <= 0:
        return None
    from lvt_edge.runtime import load_bundle

    with load_bundle(workdir, precision, backend=backend) as clf:
        clip = np.zeros((1, *clf.contract.input_shape), np.float32)
        clf.warmup(runs=5)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            clf.logits(clip)
            times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def rows(workdir: Path, data: dict[str, Any], precisions: list[str], rounds: int) -> list[dict[str, Any]]:
    from lvt_edge.variants.pipeline import parse_precisions

    out = []
    for p in parse_precisions(precisions):
        rec = data["variants"][p].get("tensorrt") or {}
        check = rec.get("verification")
        if check is None:
            continue
        out.append({
            "precision": p, "plugin_layers": rec.get("plugin_layers"), "agreement_pct": check["agreement_pct"],
            "max_abs_logit_diff": check["max_abs_logit_diff"], "top1_tensorrt": check.get("top1"),
            "top1_onnxruntime": check.get("top1_onnxruntime"), "clips": check["clips"],
            "tensorrt_ms": latency_ms(workdir, p, "tensorrt", rounds),
            "onnxruntime_ms": latency_ms(workdir, p, "onnxruntime", rounds),
            "ok": check["within_tolerance"], "min_agreement_pct": check["min_agreement_pct"],
        })
    return out


def table(lines: list[str], results: list[dict[str, Any]]) -> str:
    def cell(v: Any, fmt: str = "{}") -> str:
        return "-" if v is None else fmt.format(v)

    body = [[r["precision"], cell(r["plugin_layers"]), cell(r["agreement_pct"], "{:.1f}"),
             cell(r["max_abs_logit_diff"], "{:.3g}"), cell(r["top1_tensorrt"], "{:.1f}"),
             cell(r["top1_onnxruntime"], "{:.1f}"), cell(r["tensorrt_ms"], "{:.2f}"), cell(r["onnxruntime_ms"], "{:.2f}"),
             "yes" if r["ok"] else f"NO (< {r['min_agreement_pct']}%)"] for r in results]
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    clips = results[0]["clips"] if results else 0
    notes = [f"{clips} held-out clips; agreement = same top-1 class as ONNX Runtime (CPU) on the same precision; "
             "latency: batch 1, median"]
    return "\n".join([*lines, *(fmt.format(*row).rstrip() for row in (COLUMNS, *body)), *notes])


def main(argv: list[str] | None = None) -> int:
    from lvt_edge.errors import LvtEdgeError

    args = parse_args(argv)

    def log(msg: str) -> None:
        print(f"trt_check: {msg}", file=sys.stderr)

    try:
        lines = machine()
        plugin = plugin_library(args, log)
        workdir, data = build(args, plugin, log)
        results = rows(workdir, data, args.precision, args.rounds)
    except LvtEdgeError as e:
        print(f"trt_check: error: {e}", file=sys.stderr)
        return 1
    if not results:
        print("trt_check: error: no engine was checked (--eval-size 0?)", file=sys.stderr)
        return 1
    print(json.dumps(results, indent=2) if args.json else table(lines, results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
