"""`lvt-edge build`: exported ONNX -> fp32 / fp16 / int8 bundle for ONNX Runtime or TensorRT."""

from __future__ import annotations

import argparse
from typing import Any

from lvt_edge import bundle as B


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.variants.clips import DEFAULT_CALIB_SIZE, DEFAULT_EVAL_SIZE, MIN_CALIB_CLIPS
    from lvt_edge.variants.targets import TARGET_CHOICES
    from lvt_edge.commands.common import add_renamed, add_workdir_arg

    add_workdir_arg(p, "; without DIR the bundled demo model is exported into it first if it has no model.onnx")
    p.set_defaults(workdir=None)  # None: DIR not given, the only case that may export the demo model
    p.add_argument("--checkpoint", metavar="CKPT", default=None,
                   help="export CKPT into DIR first (export and build in one step); refused when DIR already "
                        "holds a model.onnx exported from another checkpoint. `demo` and `demo-causal` name the "
                        "bundled models (demo-causal: a causal bundle for `live --mode stream`)")
    p.add_argument("--precision", action="append", default=None, metavar="fp32|fp16|int8|all",
                   help="precision(s) to build; repeat or comma-separate (default all)")
    p.add_argument("--calib", metavar="CLIPSET", default=None,
                   help="clip set to calibrate on (default: generated synthetic motion clips)")
    p.add_argument("--calib-size", type=int, default=DEFAULT_CALIB_SIZE, metavar="N",
                   help=f"calibration clips, a class-balanced subset (default {DEFAULT_CALIB_SIZE}; "
                        f"warns below {MIN_CALIB_CLIPS})")
    p.add_argument("--method", choices=("entropy", "max"), default="entropy", help="INT8 calibration method")
    p.add_argument("--exclude", action="append", default=[], metavar="REGEX",
                   help="keep nodes whose name matches in float (repeatable)")
    p.add_argument("--op-types", default=None, metavar="OP[,OP...]",
                   help="op types INT8 quantizes (default: the measured best, MatMul,Gemm)")
    p.add_argument("--target", choices=TARGET_CHOICES, default="auto",
                   help="auto = tensorrt where TensorRT imports, else onnxruntime")
    p.add_argument("--plugin", metavar="LIB", default=None,
                   help="fused-op plugin library (tensorrt target; default: the one `lvt-edge plugin build` made "
                        "for this TensorRT, see `lvt-edge plugin locate`)")
    p.add_argument("--no-plugin", action="store_true",
                   help="tensorrt target: build without the plugin (TensorRT runs the op's ONNX function)")
    p.add_argument("--batch-profile", default="1:1:8", metavar="MIN:OPT:MAX",
                   help="tensorrt target: the batch sizes the engine accepts (min, the one it is tuned for, max)")
    add_renamed(p, "--batch", "--batch-profile", "batch_profile")
    p.add_argument("--force", action="store_true", help="recalibrate even when the cache holds this calibration")
    p.add_argument("--eval", dest="eval_clips", metavar="CLIPSET", default=None,
                   help="held-out clips to verify on (default: synthetic test clips, or the unused part of --calib)")
    p.add_argument("--eval-size", type=int, default=DEFAULT_EVAL_SIZE, metavar="N",
                   help=f"held-out clips to verify on (default {DEFAULT_EVAL_SIZE}; 0 skips verification)")


def run(args: argparse.Namespace) -> int:
    from lvt_edge.variants import build_bundle

    precisions = [p.strip() for item in (args.precision or ["all"]) for p in item.split(",") if p.strip()]
    data = build_bundle(
        args.workdir or B.DEFAULT_WORKDIR, precisions, checkpoint=args.checkpoint, export_demo=args.workdir is None,
        calib=args.calib, calib_size=args.calib_size, method=args.method,
        exclude=args.exclude, target=args.target, plugin=args.plugin, no_plugin=args.no_plugin,
        batch=args.batch_profile, force=args.force, eval_clips=args.eval_clips, eval_size=args.eval_size,
        op_types=args.op_types.split(",") if args.op_types else None,
    )
    print(summary_table(data))
    _closing(args.workdir or B.DEFAULT_WORKDIR, data)
    return 0


def _closing(workdir, data: dict[str, Any]) -> None:
    import shlex

    from lvt_edge import console

    built = [p for p in B.PRECISIONS if p in data["variants"]]
    q = shlex.quote(str(workdir))
    bundle = "" if str(workdir) == B.DEFAULT_WORKDIR else f" --bundle {q}"
    fastest = built[-1]
    console.done(f"bundle {workdir}/ ({', '.join(built)}; bundle.json says what each is)",
                 f"lvt-edge report {q} --eval CLIPS   (accuracy vs latency on your clips; which precision to ship)",
                 f"lvt-edge live{bundle} --precision {fastest}{' --mode stream' if data.get('step') else ''} "
                 "--source synth:   (a synthetic camera; --source 0 for yours)")


def summary_table(data: dict[str, Any]) -> str:
    """precision, held-out top-1, batch-1 latency and size of every built variant."""
    from lvt_edge.bundle import untrained_note

    head = ("precision", "top-1 %", "vs fp32", "latency b1 ms", "speed-up", "size MB", "calibration", "engine")
    rows = []
    for p in B.PRECISIONS:
        v = data["variants"].get(p)
        if not v:
            continue
        h = v.get("heldout") or {}
        cal = v.get("calibration")
        rows.append((
            p,
            f"{h['top1']:.2f}" if "top1" in h else "-",
            f"{-h['drop_pt'] + 0.0:+.2f}" if "drop_pt" in h else "",  # + 0.0: no "-0.00"
            f"{h['latency_ms_b1']:.2f}" if "latency_ms_b1" in h else "-",
            f"{h['speedup_vs_fp32']:.2f}x" if "speedup_vs_fp32" in h else "-",
            f"{v['size_bytes'] / 1e6:.2f}" if v.get("size_bytes") else "-",
            ("reused" if cal["reused"] else "new") if cal else "",
            (v.get("tensorrt") or {}).get("engine", ""),
        ))
    lines = _columns(head, rows)
    clips = next((v["heldout"]["clipset"]["clips"] for v in data["variants"].values() if v.get("heldout")), None)
    skipped = next((v["heldout"]["accuracy_skipped"] for v in data["variants"].values()
                    if (v.get("heldout") or {}).get("accuracy_skipped")), None)
    if skipped:
        lines.append(f"top-1 not checked: {skipped}; pass clips labelled like the model with --eval")
    elif clips:
        lines.append(f"top-1 on {clips} held-out clips; latency: ONNX Runtime CPU, batch 1, median of interleaved runs")
    lines += step_summary(data)
    note = untrained_note(data)
    if note:
        lines.append(note)
    return "\n".join(lines)


def step_summary(data: dict[str, Any]) -> list[str]:
    """A causal bundle's step models: precision, final-frame agreement with the fp32 step model
    frame by frame, the carried state's size per stream, file size and engine (none for a window model)."""
    step = data.get("step")
    if not step:
        return []
    head = ("step model", "agreement %", "max logit diff", "state KB", "size MB", "engine")
    engines = step.get("engines") or {}
    rows = [("fp32", "ref", "", f"{step['state_bytes_fp32'] / 1024:.1f}" if step.get("state_bytes_fp32") else "-",
             f"{step['size_bytes'] / 1e6:.2f}" if step.get("size_bytes") else "-",
             (engines.get("fp32") or {}).get("engine", ""))]
    for p in B.PRECISIONS[1:]:
        v = (step.get("variants") or {}).get(p)
        if not v:
            continue
        check = v.get("verification") or {}
        rows.append((
            p,
            f"{check['agreement_pct']:.1f}" if "agreement_pct" in check else "-",
            f"{check['max_abs_logit_diff']:.3g}" if "max_abs_logit_diff" in check else "",
            f"{v['state_bytes'] / 1024:.1f}" if v.get("state_bytes") else "-",
            f"{v['size_bytes'] / 1e6:.2f}" if v.get("size_bytes") else "-",
            (engines.get(p) or {}).get("engine", ""),
        ))
    clips = next((v["verification"]["clips"] for v in (step.get("variants") or {}).values()
                  if (v.get("verification") or {}).get("clips")), None)
    lines = ["", *_columns(head, rows)]
    if clips:
        lines.append(f"agreement: top-1 at the final frame with the fp32 step model on {clips} held-out clips fed frame "
                     "by frame (ONNX Runtime); state: carried per stream")
    return lines


def _columns(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
