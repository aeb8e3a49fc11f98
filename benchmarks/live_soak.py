"""Soak of the live app: a 30 FPS synthetic camera for 10,000+ frames, memory sampled throughout.

    python benchmarks/live_soak.py lvt-bundle --precision int8 --frames 10000 [--save] [--out FILE.md]

Runs apps/live_camera.py headless as a child process (as a user would), samples its resident
memory every second, then reads its JSON lines. Prints: sustained capture FPS, frames dropped by
capture, windows skipped, classifications per second, inference and end-to-end latency
percentiles over every classification, RSS after warm-up and at the end, and the settled top-1
against the synthetic source's own truth (per class).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SETTLE = 1.6  # seconds after a change of class before a classification counts (window + smoothing)


def rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundle", nargs="?", default="lvt-bundle")
    ap.add_argument("--precision", default="int8")
    ap.add_argument("--frames", type=int, default=10_000)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--source", default="synth:", help="a synth: schedule (looped)")
    ap.add_argument("--warmup", type=float, default=60.0, help="seconds before the RSS baseline (default 60)")
    ap.add_argument("--save", action="store_true", help="also save the annotated video (then deleted)")
    ap.add_argument("--out", default=None, help="also write the summary (Markdown) here")
    args = ap.parse_args()

    from lvt_edge.stream.sources import SourceOptions, open_source

    with tempfile.TemporaryDirectory() as tmp:
        jsonl = Path(tmp) / "soak.jsonl"
        cmd = [sys.executable, str(ROOT / "apps" / "live_camera.py"), "--bundle", args.bundle, "--precision",
               args.precision, "--source", args.source, "--loop", "--fps", str(args.fps), "--headless",
               "--max-frames", str(args.frames), "--jsonl", str(jsonl), "--stats-every", "10"]
        if args.save:
            cmd += ["--save", str(Path(tmp) / "soak.mp4")]
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        samples = []
        while proc.poll() is None:
            r = rss_mib(proc.pid)
            if r is not None:
                samples.append((time.monotonic() - t0, r))
            time.sleep(1.0)
        err = proc.stderr.read()
        if proc.returncode != 0:
            print(err, file=sys.stderr)
            return proc.returncode
        lines = [json.loads(x) for x in jsonl.read_text().splitlines()]

    final = lines[-1]
    results = [m for m in lines if m["type"] == "classification"]
    truth = open_source(args.source, SourceOptions(pace=0, fps=args.fps, loop=True))
    bounds = truth._bounds
    per_class: dict[str, list[bool]] = defaultdict(list)
    for m in results:
        within = m["time"] % truth.period
        if min(abs(within - b) for b in bounds[:-1]) < 1e-9 or any(b <= within < b + SETTLE for b in bounds[:-1]):
            continue
        per_class[truth.truth(m["time"])].append(m["label"] == truth.truth(m["time"]))
    warm = [r for t, r in samples if t >= args.warmup]
    base, end, peak = (warm[0], warm[-1], max(warm)) if warm else (None, None, None)
    lat = np.asarray([m["latency_ms"] for m in results])
    e2e = np.asarray([m["e2e_ms"] for m in results])
    settled = [ok for v in per_class.values() for ok in v]
    rows = [
        ("machine", f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"),
        ("command", " ".join(["python apps/live_camera.py", *cmd[2:]]).replace(str(jsonl), "soak.jsonl")
         .replace(str(Path(str(jsonl)).with_name("soak.mp4")), "soak.mp4")),
        ("frames captured", f"{final['frames']} in {final['elapsed_s']:.1f} s"),
        ("sustained capture FPS", f"{final['frames'] / final['elapsed_s']:.2f} (source {args.fps:g})"),
        ("frames dropped by capture", str(final["dropped"])),
        ("undecodable frames", str(final["bad_frames"])),
        ("windows classified / skipped / incomplete", f"{final['windows']} / {final['skipped']} / {final['incomplete']}"),
        ("classifications per second", f"{final['windows'] / final['elapsed_s']:.2f}"),
        ("inference latency p50 / p95 / max", f"{np.percentile(lat, 50):.2f} / {np.percentile(lat, 95):.2f} / {lat.max():.2f} ms"),
        ("end-to-end latency p50 / p95 / max", f"{np.percentile(e2e, 50):.2f} / {np.percentile(e2e, 95):.2f} / {e2e.max():.2f} ms"),
        ("RSS after warm-up / at end / peak", f"{base:.1f} / {end:.1f} / {peak:.1f} MiB" if warm else "n/a"),
        ("RSS growth after warm-up", f"{100 * (end - base) / base:+.2f} %" if warm else "n/a"),
        ("settled top-1 (vs the source's truth)", f"{100 * np.mean(settled):.1f} % of {len(settled)}"),
    ]
    out = ["| measure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    out += ["", "| class | settled top-1 | classifications |", "|---|---|---|"]
    out += [f"| {c} | {100 * np.mean(v):.1f} % | {len(v)} |" for c, v in sorted(per_class.items())]
    text = "\n".join(out)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
