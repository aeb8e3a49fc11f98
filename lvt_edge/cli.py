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


EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_GATE_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EPILOG = """exit codes:
  0    success
  1    a problem you can fix (bad input, a mismatched bundle, no space left, a read-only
       folder, a missing optional package); the message says how
  2    bad command-line usage (the message suggests the nearest verb or option)
  3    `report`: the accuracy gate failed (a variant lost more than --max-drop points)
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


DESCRIPTION = """\
lvt-edge: the Linear Video Transformer with feature fixation, from PyTorch to real-time video
classification with ONNX Runtime (CPU, the default) or TensorRT (Jetson, desktop GPUs).

The usual path:
  lvt-edge checks                        what this machine can run, and what to install
  lvt-edge build                         the bundled demo model -> fp32/fp16/int8 bundle in lvt-bundle/
  lvt-edge report --eval CLIPSET         accuracy vs latency of each precision, and which to ship
  lvt-edge live --precision int8         classify a camera (--source synth:... needs no camera)

Your own model: clips synth|info -> train -> export -> build -> report. Run
`lvt-edge VERB --help` for a verb's options; every option shows its default."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and adds "(default: X)" to every option that has one
    and does not already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (not action.option_strings and action.nargs not in ("?", "*")) or "default" in text.lower():
            return text
        if action.nargs == 0 or default in (None, argparse.SUPPRESS) or default == []:  # flags; nothing to show
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class Parser(argparse.ArgumentParser):
    """argparse with "did you mean" for mistyped verbs, options and choices."""

    def error(self, message: str):  # type: ignore[override]
        hint = _suggestion(message, self)
        super().error(message + (f"; did you mean {hint}?" if hint else ""))


def _suggestion(message: str, parser: argparse.ArgumentParser) -> str | None:
    import difflib
    import re

    m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if m:
        choices = re.findall(r"'([^']*)'", m.group(2)) or [c.strip() for c in m.group(2).split(",")]
        close = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
        return repr(close[0]) if close else None
    m = re.search(r"unrecognized arguments: (.*)", message)
    if m:
        known = [o for a in _verb_actions(parser) for o in a.option_strings if o.startswith("--")]
        hints = []
        for word in m.group(1).split():
            if word.startswith("--"):
                close = difflib.get_close_matches(word.split("=")[0], known, n=1, cutoff=0.6)
                if close:
                    hints.append(close[0])
        return " / ".join(hints) or None
    return None


def _verb_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The visible options of the parser and of the verb (and sub-verb) being parsed."""
    actions = [a for a in parser._actions if a.help is not argparse.SUPPRESS]
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name in getattr(parser, "verbs_seen", ()):
                if name in a.choices:
                    actions += _verb_actions(a.choices[name])
    return actions


def _add_verbosity(p: argparse.ArgumentParser, top: bool) -> None:
    from lvt_edge import console

    g = p.add_mutually_exclusive_group()
    default = console.NORMAL if top else argparse.SUPPRESS  # after the verb, only when given
    g.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=console.VERBOSE, default=default,
                   help="also show third-party warnings and logs (exporter, ONNX Runtime, ModelOpt, cmake)")
    g.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=console.QUIET, default=default,
                   help="no progress bars, notes or closing line; warnings and errors only")


def build_parser(verb: str | None = None, argv: list[str] = ()) -> argparse.ArgumentParser:
    parser = Parser(prog="lvt-edge", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"lvt-edge {__version__}")
    _add_verbosity(parser, top=True)
    parser.verbs_seen = tuple(argv)
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    for name, module in _available().items():
        p = sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1], formatter_class=HelpFormatter)
        p.verbs_seen = tuple(argv)
        _add_verbosity(p, top=False)
        if verb in (None, name):  # import only the verb that runs (all of them for --help)
            importlib.import_module(module).register(p)
            for action in p._actions:  # sub-verbs (plugin build|locate) share the formatter and flags
                if isinstance(action, argparse._SubParsersAction):
                    for child in {id(c): c for c in action.choices.values()}.values():  # aliases share one
                        child.formatter_class = HelpFormatter
                        child.verbs_seen = tuple(argv)
                        _add_verbosity(child, top=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from lvt_edge import console

    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    verb = verb if verb in COMMANDS else None
    who = f"lvt-edge {verb}" if verb else "lvt-edge"
    try:
        with sigterm_as_interrupt():
            parser = build_parser(verb, argv)  # imports the verb's module: a missing package shows here
            args = parser.parse_args(argv)
            if args.verb is None:
                parser.print_help()
                return EXIT_USAGE
            with console.verbosity(args.verbosity):
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
