"""`lvt-edge report`: what each precision costs in accuracy and buys in latency, on your clips."""

from __future__ import annotations

import argparse
import sys

from lvt_edge.cli import EXIT_GATE_FAILED
from lvt_edge.commands.common import add_backend_args, add_renamed, add_workdir_arg, backend_options, precision_list



def register(p: argparse.ArgumentParser) -> None:
    add_workdir_arg(p)
    p.add_argument("--eval", required=True, metavar="CLIPSET", help="labelled clip set: class folders or a manifest")
    p.add_argument("--precision", type=precision_list, default=None,
                   help="comma list, e.g. fp32,int8 (default: every variant the bundle has; fp32 is always the baseline)")
    add_renamed(p, "--precisions", "--precision", "precision", type=precision_list)
    add_backend_args(p)
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="gate: exit 2 when a variant's top-1 is more than this many points below fp32 (default 1.0)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per variant at batch 1 (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs per variant first (default 5)")
    p.add_argument("--batch", type=int, default=8, help="clips per model call, for evaluation and throughput (default 8)")
    p.add_argument("--e2e-clips", type=int, default=8, help="clips timed end to end from their files (default 8)")
    p.add_argument("--metric", choices=("latency", "throughput"), default="latency",
                   help="what decides speed: batch-1 latency (default) or throughput at --batch")
    p.add_argument("--out", default=None, help="output folder (default WORKDIR/report)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lvt_edge.report import ReportSettings, make_report, write_report
    from lvt_edge.report.markdown import summary_rows

    settings = ReportSettings(precisions=args.precision, backend=args.backend, max_drop=args.max_drop,
                              runs=args.runs, warmup=args.warmup, batch=args.batch, e2e_clips=args.e2e_clips,
                              metric=args.metric, options=backend_options(args))
    report = make_report(args.workdir, args.eval, settings)
    out = Path(args.out) if args.out else Path(args.workdir) / "report"
    paths = write_report(report, out)
    if report["untrained"]:
        print(f"*** {report['untrained'].upper()} ***")
    head, rows = summary_rows(report)
    keep = [0, 1, 2, 4, 5, 7, 12, 13]  # the columns that fit a terminal
    widths = [max(len(r[i]) for r in rows + [head]) for i in keep]
    for r in [head] + rows:
        print("  ".join(r[i].ljust(w) for i, w in zip(keep, widths)))
    print()
    for v in report["variants"]:
        print(v["recommendation"]["line"])
    print(report["summary"]["line"])
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    print("wrote " + ", ".join(str(p) for p in paths))
    _closing(args, report, paths)
    gate = report["gate"]
    if not gate["passed"]:
        print(f"lvt-edge report: gate failed: {', '.join(gate['failed'])} drop more than "
              f"{gate['max_drop']:g} pt top-1 below fp32", file=sys.stderr)
        return EXIT_GATE_FAILED
    return 0


def _closing(args: argparse.Namespace, report: dict, paths) -> None:
    import shlex

    from lvt_edge import console
    from lvt_edge.bundle import DEFAULT_WORKDIR

    html = next((p for p in paths if str(p).endswith(".html")), paths[0])
    ship = report["summary"].get("recommended") or "fp32"
    bundle = "" if str(args.workdir) == DEFAULT_WORKDIR else f" --bundle {shlex.quote(str(args.workdir))}"
    console.done(f"report in {html}", f"lvt-edge live{bundle} --precision {ship}   (the recommended precision)")
