"""The `lvt-edge` command line. Each verb lives in lvt_edge/commands/<verb>.py and is imported
only when used, so `lvt-edge --version` and the torch-free verbs stay light."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from typing import Iterator

from lvt_edge import __version__
from lvt_edge.errors import LvtEdgeError

# verb -> (module, one-line help). A module defines `register(parser)` and `run(args) -> int`.
COMMANDS = {
    "checks": ("lvt_edge.commands.checks", "what this machine can run: Python packages, ONNX Runtime, TensorRT, GPU, plugin, OpenCV"),
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


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EPILOG = """exit codes:
  0    success
  1    a problem you can fix (bad input, a mismatched bundle, no space left, a read-only
       folder, a missing optional package); the message says how
  2    bad command-line usage; for `report`, also: the accuracy gate failed (--max-drop)
  130  interrupted (Ctrl-C or SIGTERM); nothing partial is left behind
"""

# import name -> (pip package, lvt-edge extra) of the optional dependencies (pyproject.toml)
OPTIONAL = {
    "torch": ("torch", "export"), "safetensors": ("safetensors", "export"), "onnxscript": ("onnxscript", "export"),
    "onnxslim": ("onnxslim", "export"), "onnxsim": ("onnxsim", "export"),
    "modelopt": ("nvidia-modelopt", "quant"), "onnx_graphsurgeon": ("onnx-graphsurgeon", "quant"),
    "polygraphy": ("polygraphy", "quant"), "onnxconverter_common": ("onnxconverter-common", "quant"),
    "tensorrt": ("tensorrt", "trt"), "cuda": ("cuda-python", "trt"),
    "cv2": ("opencv-python-headless", "video"), "matplotlib": ("matplotlib", "report"),
}


def environment_error(e: BaseException) -> str | None:
    """The one-line message for a fault of the machine rather than of lvt_edge (full disk,
    unwritable folder, optional package not installed), or None: a bug, which keeps its traceback."""
    from lvt_edge.io import os_error_message

    if isinstance(e, ModuleNotFoundError):
        top = (e.name or "").split(".")[0]
        if top in OPTIONAL:
            package, extra = OPTIONAL[top]
            return f"this verb needs {package} ({e.name} is not installed); install it with pip install 'lvt-edge[{extra}]'"
        return None
    if isinstance(e, OSError):
        return os_error_message(e)
    return None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops a verb the way Ctrl-C does (cleanups run, exit code 130). Verbs may install
    their own handler inside (`live` does, to say what stopped it) and restore this one."""
    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _available() -> dict[str, str]:
    return {v: m for v, (m, _) in COMMANDS.items() if importlib.util.find_spec(m) is not None}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvt-edge", description=__doc__.split("\n")[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    verb = verb if verb in COMMANDS else None
    who = f"lvt-edge {verb}" if verb else "lvt-edge"
    try:
        with sigterm_as_interrupt():
            parser = build_parser(verb)  # imports the verb's module: a missing package shows here
            args = parser.parse_args(argv)
            if args.verb is None:
                parser.print_help()
                return EXIT_ERROR
            return int(importlib.import_module(_available()[args.verb]).run(args) or 0)
    except LvtEdgeError as e:
        print(f"{who}: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{who}: interrupted; nothing partial was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (OSError, ModuleNotFoundError) as e:
        message = environment_error(e)
        if message is None:
            raise
        print(f"{who}: error: {message}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
