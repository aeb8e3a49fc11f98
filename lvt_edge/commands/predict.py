"""`lvt-edge predict SOURCE...`: classify whole videos, frame folders or a stream with a bundle."""

from __future__ import annotations

import argparse
import json
import sys

from lvt_edge.commands.common import add_bundle_args, add_json_arg, add_renamed, backend_options


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="video files, folders (searched recursively for videos and folders of frames) or URLs")
    add_bundle_args(p)
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS",
                   help="seconds between window starts in videos longer than a window (default: half a window)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of folders of frames (default: none; each folder is then one window)")
    p.add_argument("--duration", type=float, default=10.0, metavar="SECONDS",
                   help="seconds read from a URL or camera before classifying it (default 10)")
    p.add_argument("--batch", type=int, default=8, help="clips per model call: windows of the videos (default 8)")
    p.add_argument("--topk", type=int, default=3, help="classes listed per video (default 3)")
    p.add_argument("--windows", action="store_true", help="also print each video's windows (start-end s, label, prob)")
    add_json_arg(p, "the results")
    add_renamed(p, "--no-progress", "-q/--quiet", "verbosity", nargs=0, const=0)


def run(args: argparse.Namespace) -> int:
    from lvt_edge.errors import LvtEdgeError
    from lvt_edge.runtime import load_bundle
    from lvt_edge.stream.video import PredictSettings, find_videos, folder_accuracy, predict_videos

    settings = PredictSettings(hop=args.hop, batch=args.batch, frame_interval=args.frame_interval,
                               fps=args.fps, duration=args.duration)
    if args.topk < 1:
        raise LvtEdgeError(f"--topk must be >= 1 (got {args.topk})")
    items = find_videos(args.sources)
    to_stdout = args.json == "-"
    with load_bundle(args.bundle, args.precision, args.backend, **backend_options(args)) as clf:
        labels = clf.labels
        results = list(predict_videos(clf, items, settings, progress=not to_stdout))
        backend = clf.backend
    accuracy = folder_accuracy(results, labels)
    failed = [r for r in results if r.error is not None]
    if args.json is not None:
        doc = {"bundle": str(args.bundle), "precision": args.precision, "backend": backend,
               "videos": [r.to_dict(labels, args.topk) for r in results], "accuracy": accuracy}
        if to_stdout:
            json.dump(doc, sys.stdout, indent=2)
            print()
        else:
            from lvt_edge.io import write_json_atomic

            write_json_atomic(args.json, doc)
    if not to_stdout:
        _print_table(results, labels, args.topk, args.windows)
    print(_closing_line(results, failed, accuracy, args, backend), file=sys.stderr if to_stdout else sys.stdout)
    return 1 if failed else 0


def _print_table(results, labels, k: int, windows: bool) -> None:
    head = ["file", "label", "prob", f"top-{k}", "windows", "duration s"]
    rows = {}
    for r in results:
        if r.error is None:
            top = r.topk(labels, k)
            rows[id(r)] = [r.path, top[0][0], f"{top[0][1]:.3f}", ", ".join(f"{lab} {p:.2f}" for lab, p in top),
                           str(len(r.windows)), "" if r.duration_s is None else f"{r.duration_s:.2f}"]
    widths = [max(len(row[i]) for row in [*rows.values(), head, *([r.path] for r in results)]
                  if i < len(row)) for i in range(len(head))]
    print("  ".join(c.ljust(w) for c, w in zip(head, widths)).rstrip())
    for r in results:
        if r.error is not None:
            print(f"{r.path.ljust(widths[0])}  FAILED: {r.error}")
            continue
        print("  ".join(c.ljust(w) for c, w in zip(rows[id(r)], widths)).rstrip())
        for w in r.windows if windows else []:
            i = int(w.probs.argmax())
            span = f"{w.start:.2f}-{'end' if w.end is None else f'{w.end:.2f}'} s"
            print(f"    {span:<16}{labels[i]}  {w.probs[i]:.3f}")


def _closing_line(results, failed, accuracy, args, backend: str) -> str:
    ok = len(results) - len(failed)
    line = f"classified {ok} of {len(results)} videos with {args.bundle} ({args.precision}, {backend})"
    if failed:
        line += f"; {len(failed)} failed (reasons in the {'JSON' if args.json == '-' else 'table'})"
    if accuracy is not None:
        line += (f"; top-1 against the folder names: {accuracy['correct']} of {accuracy['total']} "
                 f"({accuracy['top1']:.1f} %)")
    if args.json is not None:
        line += "; JSON to stdout" if args.json == "-" else f"; wrote {args.json}"
    return line
