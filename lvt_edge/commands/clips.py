"""`lvt-edge clips`: make synthetic motion clip sets and inspect clip sets."""

from __future__ import annotations

import argparse
import shlex

from lvt_edge import console


def register(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="clips_action", metavar="ACTION", required=True)
    s = sub.add_parser("synth", help="write a synthetic motion clip set (video files + manifest)",
                       description="Write class-balanced synthetic motion clips: one seed, one set of bytes.")
    s.add_argument("--out", required=True, help="new folder for the clip set")
    s.add_argument("--split", required=True, choices=("train", "val", "calib", "test"),
                   help="part of the random seed: splits made with one --seed differ")
    s.add_argument("--num", type=int, required=True, help="number of clips (spread evenly over the classes)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--frames", type=int, default=None,
                   help="frames per video (default 16: lvt-tiny's 8 frames at stride 2); longer clips continue the motion")
    s.add_argument("--size", type=int, default=None, help="frame side in pixels (default 96, lvt-tiny's input)")
    i = sub.add_parser("info", help="clips per class and the content hash of a clip set (or of a subset)")
    i.add_argument("path", help="clip set: folder per class, manifest (.csv/.jsonl) or folder with a manifest")
    i.add_argument("--size", type=int, default=None, help="describe the class-balanced subset of this many clips")
    i.add_argument("--seed", type=int, default=0, help="seed of the subset (default 0)")


def run(args: argparse.Namespace) -> int:
    if args.clips_action == "synth":
        from lvt_edge.data import synth

        synth.check_arguments(split=args.split, num=args.num, seed=args.seed,
                              frames=synth.DEFAULT_FRAMES if args.frames is None else args.frames,
                              size=synth.DEFAULT_SIZE if args.size is None else args.size)
        manifest = synth.generate(args.out, split=args.split, num=args.num, seed=args.seed,
                                  frames=args.frames, size=args.size)
        print(f"wrote {args.num} clips and {manifest}")
        q = shlex.quote(str(args.out))
        console.done(f"{args.num} {args.split} clips in {args.out}",
                     f"lvt-edge build --calib {q}   (calibrate int8/fp16 on them)" if args.split == "calib" else
                     f"lvt-edge report --eval {q}   (accuracy of a bundle on them)" if args.split in ("val", "test") else
                     f"lvt-edge train --data {q} --val VAL --out runs/NAME")
        return 0
    from lvt_edge.data import open_clipset
    from lvt_edge.errors import LvtEdgeError

    problems = [f"--size must be >= 1 (got {args.size})"] if args.size is not None and args.size < 1 else []
    problems += [f"--seed must be >= 0 (got {args.seed})"] if args.seed < 0 else []
    if problems:
        raise LvtEdgeError("; ".join(problems))
    cs = open_clipset(args.path).subset(args.size, args.seed)
    width = max(len(x) for x in cs.labels)
    print(f"clip set {cs.root} ({cs.layout}): {len(cs)} clips, {len(cs.labels)} labels")
    for label, n in cs.counts().items():
        print(f"  {label.ljust(width)}  {n}")
    print(f"content hash: {cs.content_hash}")
    q = shlex.quote(str(args.path))
    console.done(f"{len(cs)} clips checked", f"lvt-edge build --calib {q}  or  lvt-edge report --eval {q}")
    return 0
