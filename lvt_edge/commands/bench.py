"""`lvt-edge bench`: latency and throughput of a bundle's precisions, interleaved (no accuracy)."""

from __future__ import annotations

import argparse
import json
import shlex


def int_list(text: str) -> tuple[int, ...]:
    try:
        items = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        items = ()
    if not items or min(items) < 1:
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, e.g. 1,8 (got {text!r})")
    return items


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.commands.common import add_backend_args, add_json_arg, add_workdir_arg, precision_list

    add_workdir_arg(p)
    p.add_argument("--precision", type=precision_list, default=None,
                   help="comma list, e.g. fp32,int8 (default: every variant the bundle has)")
    p.add_argument("--batch", type=int_list, default=(1,), help="clips per model call; a comma list times each (default 1)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per variant and batch (default 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    add_backend_args(p)
    add_json_arg(p, "the numbers")
    p.add_argument("--profile", action="store_true",
                   help="instead of timing: where ONNX Runtime (CPU) spends each variant's time, by op type and "
                        "by fused FFLA node (--runs profiled runs per variant and batch)")


def bench(workdir, precisions, batches, runs, warmup, backend, options, progress=True) -> list[dict]:
    """Rows of latency stats per (batch, precision); variants interleaved within each batch."""
    import contextlib

    import numpy as np

    from lvt_edge import bundle as B
    from lvt_edge.report.evaluate import options_for, rate
    from lvt_edge.report.metrics import latency_stats
    from lvt_edge.report.timing import time_interleaved
    from lvt_edge.runtime import load_bundle

    data = B.read_bundle(workdir)
    precisions = precisions or tuple(p for p in B.PRECISIONS if p in data.get("variants", {}))
    contract = B.bundle_contract(data)
    rows = []
    with contextlib.ExitStack() as stack:
        clfs = {}
        for p in precisions:
            name, opts = options_for(data, p, backend, options)
            clfs[p] = stack.enter_context(load_bundle(workdir, p, name, **opts))
        rng = np.random.default_rng(0)
        for batch in batches:
            x = rng.standard_normal((batch, *contract.input_shape)).astype(np.float32)
            ms = time_interleaved({p: (lambda c=c: c.predict(x)) for p, c in clfs.items()}, runs,
                                  warmup=warmup, desc=f"batch {batch}", progress=progress)
            for p, c in clfs.items():
                s = latency_stats(ms[p])
                rows.append({"precision": p, "backend": c.backend, "batch": batch, **s,
                             "clips_per_s": rate(batch, s["p50"])})
    return rows


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse bad numbers before anything is loaded (--batch is checked by its type)."""
    from lvt_edge.errors import LvtEdgeError
    from lvt_edge.report.evaluate import number_problems

    problems = number_problems({"--runs": (args.runs, 1, None, True), "--warmup": (args.warmup, 0, None, True),
                                "--threads": (args.threads, 1, None, True)})
    if problems:
        raise LvtEdgeError("; ".join(problems))


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "-" if x is None else format(x, spec) + suffix


def run(args: argparse.Namespace) -> int:
    from lvt_edge.commands.common import backend_options
    from lvt_edge.io import write_json_atomic

    check_numbers(args)
    if args.profile:
        from lvt_edge.report.profile import profile_report

        print(profile_report(args.workdir, args.precision, args.batch, runs=args.runs, warmup=args.warmup,
                             threads=args.threads, backend=args.backend, device=args.device))
        return 0
    rows = bench(args.workdir, args.precision, args.batch, args.runs, args.warmup, args.backend, backend_options(args))
    base: dict[int, float] = {}
    for r in rows:  # the first precision of each batch is the reference
        base.setdefault(r["batch"], r["p50"])
    head = ("precision", "backend", "batch", "mean ms", "p50 ms", "p90 ms", "p99 ms", "clips/s", "speed-up")
    table = [(r["precision"], r["backend"], str(r["batch"]), f"{r['mean']:.2f}", f"{r['p50']:.2f}", f"{r['p90']:.2f}",
              f"{r['p99']:.2f}", _fmt(r["clips_per_s"], ".1f"),
              _fmt(base[r["batch"]] / r["p50"] if r["p50"] > 0 else None, ".2f", "x")) for r in rows]
    doc = {"runs": args.runs, "warmup": args.warmup, "rows": rows}
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    else:
        widths = [max(len(t[i]) for t in table + [head]) for i in range(len(head))]
        for t in [head] + table:
            print("  ".join(c.ljust(w) for c, w in zip(t, widths)))
        print(f"\n{args.runs} runs per row after {args.warmup} warm-up, variants interleaved; "
              f"speed-up vs {rows[0]['precision']} at the same batch (p50).")
    if args.json and args.json != "-":
        write_json_atomic(args.json, doc)
    from lvt_edge import console

    console.done(f"{len(rows)} rows" + (f", numbers in {args.json}" if args.json and args.json != "-" else ""),
                 f"lvt-edge report {shlex.quote(str(args.workdir))} --eval CLIPS   (what each precision costs in accuracy)")
    return 0
