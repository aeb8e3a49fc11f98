"""`lvt-edge checks`: what this machine can run (packages, ONNX Runtime, TensorRT, GPU, plugin,
OpenCV) and, per verb, what is missing with the command that installs it. Informational: exits 0
unless --strict and a verb is unusable."""

from __future__ import annotations

import argparse


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--strict", action="store_true", help="exit 1 when any verb is unusable here")


def run(args: argparse.Namespace) -> int:
    import json

    from lvt_edge.checks import as_json, render, run_checks

    checks, verbs, elapsed = run_checks()
    if args.json:
        print(json.dumps({**as_json(checks, verbs), "elapsed_s": round(elapsed, 2)}, indent=2))
    else:
        print(render(checks, verbs, elapsed))
    return 1 if args.strict and not all(v.usable for v in verbs) else 0
