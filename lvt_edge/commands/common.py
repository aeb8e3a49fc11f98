"""Arguments that several verbs share: each flag is defined once, here."""

from __future__ import annotations

import argparse

from lvt_edge.bundle import DEFAULT_WORKDIR, PRECISIONS


def add_workdir_arg(p: argparse.ArgumentParser, extra_help: str = "") -> None:
    p.add_argument("workdir", nargs="?", default=DEFAULT_WORKDIR,
                   help=f"bundle folder (default {DEFAULT_WORKDIR}){extra_help}")


def precision_list(text: str) -> tuple[str, ...]:
    """argparse type: a comma list of precisions."""
    items = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in items if p not in PRECISIONS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"precisions are a comma list of {', '.join(PRECISIONS)} (got {text!r})")
    return items


def add_backend_args(p: argparse.ArgumentParser) -> None:
    """The runtime backend and its options (report, bench)."""
    from lvt_edge.runtime import BACKEND_CHOICES

    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="auto: tensorrt where the variant has an engine and TensorRT imports, else onnxruntime")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (onnxruntime, torch); default: the library's")
    p.add_argument("--device", default=None, help="onnxruntime: cpu, cuda or auto; torch: a torch device")
    p.add_argument("--plugin", default=None, help="tensorrt: plugin library to load instead of the bundle's")
    p.add_argument("--checkpoint", default=None, help="torch: the source checkpoint, if not where bundle.json says")


def backend_options(args: argparse.Namespace) -> dict:
    return {"threads": args.threads, "device": args.device, "plugin": args.plugin, "checkpoint": args.checkpoint}


def add_bundle_args(p: argparse.ArgumentParser) -> None:
    """The bundle variant a verb runs, the backend and the model's frame spacing (live, predict)."""
    p.add_argument("--bundle", default=DEFAULT_WORKDIR, metavar="DIR", help=f"bundle folder (default {DEFAULT_WORKDIR})")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bundle variant to run (default fp32)")
    add_backend_args(p)
    p.add_argument("--frame-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between the model's frames (default: the bundle's clip contract)")


def add_json_arg(p: argparse.ArgumentParser, what: str, *, default_file: bool = False) -> None:
    """`--json [FILE]`, the same in every verb: without FILE (or with -) the JSON goes to stdout
    instead of the table; with FILE it is written there (atomically) as well as the table."""
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help=f"{what} as JSON: to stdout instead of the table, or to FILE as well")


class RenamedOption(argparse.Action):
    """An old spelling kept working for a while: stores into the new option's dest and says so."""

    def __init__(self, option_strings, dest, new: str, **kw):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        print(f"{parser.prog}: note: {option_string} is now spelled {self.new}; the old spelling will go away",
              file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_renamed(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kw) -> None:
    """Accept `old` as a hidden alias of `new` (same dest and type)."""
    p.add_argument(old, action=RenamedOption, dest=dest, new=new, default=argparse.SUPPRESS, **kw)
