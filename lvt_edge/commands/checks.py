"""`lvt-edge checks`: what this machine can run (packages, ONNX Runtime, TensorRT, GPU, plugin,
OpenCV) and, per verb, what is missing with the command that installs it. Informational: exits 0
unless --strict and a verb is unusable."""

from __future__ import annotations

import argparse


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.commands.common import add_json_arg

    add_json_arg(p, "the report")
    p.add_argument("--strict", action="store_true", help="exit 1 when any verb is unusable here")


def run(args: argparse.Namespace) -> int:
    import json

    from lvt_edge.checks import as_json, render, run_checks

    from lvt_edge import console
    from lvt_edge.io import write_json_atomic

    checks, verbs, elapsed = run_checks()
    doc = {**as_json(checks, verbs), "elapsed_s": round(elapsed, 2)}
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    else:
        print(render(checks, verbs, elapsed))
        if args.json:
            write_json_atomic(args.json, doc)
    unusable = [v for v in verbs if not v.usable]
    console.done(f"{len(verbs) - len(unusable)} of {len(verbs)} verbs usable here",
                 *(["the install lines above make the others usable"] if unusable else []),
                 "lvt-edge build   (the bundled demo model -> fp32/fp16/int8 bundle in lvt-bundle/)")
    return 1 if args.strict and unusable else 0
