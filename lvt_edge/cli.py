"""The `lvt-edge` command line. Each verb lives in lvt_edge/commands/<verb>.py and is imported
only when used, so `lvt-edge --version` and the torch-free verbs stay light."""

from __future__ import annotations

import argparse
import importlib
import sys

from lvt_edge import __version__
from lvt_edge.errors import LvtEdgeError

# verb -> (module, one-line help). A module defines `register(parser)` and `run(args) -> int`.
COMMANDS = {
    "models": ("lvt_edge.commands.models", "list model configs with parameter counts and FLOPs"),
    "clips": ("lvt_edge.commands.clips", "make and inspect clip sets (synthetic motion clips)"),
    "train": ("lvt_edge.commands.train", "train or fine-tune an LVT model on a clip set"),
    "export": ("lvt_edge.commands.export", "checkpoint -> verified ONNX with fused FFLA nodes"),
    "build": ("lvt_edge.commands.build", "exported ONNX -> fp32/fp16/int8 bundle for ONNX Runtime or TensorRT"),
    "report": ("lvt_edge.commands.report", "accuracy-vs-latency report of a bundle's precisions"),
    "bench": ("lvt_edge.commands.bench", "latency and throughput of a bundle's precisions"),
    "plugin": ("lvt_edge.commands.plugin", "build and locate the TensorRT plugin library for the fused op"),
    "predict": ("lvt_edge.commands.predict", "classify whole videos, frame folders or a URL with a bundle"),
    "live": ("lvt_edge.commands.live", "live classification of a camera, stream, file or synthetic source"),
}


def _available() -> dict[str, str]:
    return {v: m for v, (m, _) in COMMANDS.items() if importlib.util.find_spec(m) is not None}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvt-edge", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"lvt-edge {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, module in _available().items():
        p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])
        if verb in (None, name):  # import only the verb that runs (all of them for --help)
            importlib.import_module(module).register(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 1
    try:
        return int(importlib.import_module(_available()[args.verb]).run(args) or 0)
    except LvtEdgeError as e:
        print(f"lvt-edge {args.verb}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lvt-edge {args.verb}: interrupted; nothing partial was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
