"""Cost per token of the same network with FFLA, plain linear and softmax attention, as the clip
grows: frames 8 -> 64 at 112 px, then 112 -> 448 px at 8 frames (ONNX Runtime CPU, batch 1).

    python benchmarks/scaling.py                       # the default sweep, a few minutes
    python benchmarks/scaling.py --rounds 40 --threads 2

The network is lvt-tiny's (width 64, 2 heads, depth 3) with random weights, one export per
shape and attention (only the batch axis is dynamic), each with the fused FFLinearAttention
nodes the toolkit exports (linear: the same node without gate and shift). Exports are cached
under --work by config; the current function body is put into each one when it is loaded.

For every shape the three variants run interleaved, so load on the machine hits them alike:
the table gives the median cost per token (latency / (T x S) tokens) and the median and range
of the per-round ratios. Peak memory: the peak resident set of a separate process that loads
the model and runs it, minus that of the same process without the model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_latency import fmt_ratio, interleaved_ms, machine_summary, ratio_stats, session  # noqa: E402

ATTENTIONS = ("ffla", "linear", "softmax")
BASE_MODEL = "lvt-tiny"
FRAMES = (8, 16, 32, 64)  # at 112 px
SIZES = (112, 224, 336, 448)  # at 8 frames


def shapes(frames=FRAMES, sizes=SIZES) -> list[tuple[int, int]]:
    out = [(t, 112) for t in frames]
    out += [(8, px) for px in sizes if (8, px) not in out]
    return out


def export(attention: str, frames: int, size: int, work: Path, seed: int = 0) -> Path:
    """model.onnx of the base network at this shape and attention (cached by config)."""
    import torch

    from lvt_edge import __version__
    from lvt_edge.export.simplify import simplified_onnx
    from lvt_edge.export.torch_export import onnx_from_model
    from lvt_edge.model import create_model

    path = work / f"{BASE_MODEL}-{attention}-{frames}x{size}-s{seed}-v{__version__}-t{torch.__version__}.onnx"
    if not path.exists():
        torch.manual_seed(seed)
        model = create_model(BASE_MODEL, attention=attention, frames=frames, img_size=size).eval()
        proto = simplified_onnx(onnx_from_model(model))
        work.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(proto.SerializeToString())
        tmp.replace(path)
    return path


def with_current_body(path: Path) -> bytes:
    """The cached export with today's FFLinearAttention function body (the graph around it is the same)."""
    import onnx

    from lvt_edge.export.torch_export import add_ffla_function, count_ffla_nodes

    proto = onnx.load(str(path))
    if count_ffla_nodes(proto):
        add_ffla_function(proto)
    return proto.SerializeToString()


def tokens(frames: int, size: int) -> int:
    from lvt_edge.model import get_config

    return frames * get_config(BASE_MODEL, img_size=size).tokens_per_frame


def peak_rss_mb(model: Path | None, frames: int, size: int, threads: int, runs: int = 3) -> float:
    """Peak resident set (MB) of a fresh process that loads `model` and runs it `runs` times.

    Read from /proc/self/status (VmHWM) where there is one: on Linux, getrusage's maximum also
    counts the parent's pages the child had between fork and exec.
    """
    code = (
        "import resource, sys, numpy as np\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from int8_latency import session\n"
        f"x = np.zeros((1, 3, {frames}, {size}, {size}), np.float32)\n"
        + (f"s = session(open({str(model)!r}, 'rb').read(), {threads})\n"
           f"for _ in range({runs}): s.run(None, {{s.get_inputs()[0].name: x}})\n" if model else
           "import onnxruntime\n")
        + "try:\n"
        "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]\n"
        "except (OSError, IndexError):\n"
        "    hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(hwm)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024  # KiB


def measure(work: Path, rounds: int, threads: int, memory: bool, frames, sizes) -> list[dict]:
    rows = []
    for t, px in shapes(frames, sizes):
        paths = {a: export(a, t, px, work) for a in ATTENTIONS}
        sessions = {a: session(with_current_body(p), threads) for a, p in paths.items()}
        x = np.random.default_rng(0).uniform(-1, 1, (1, 3, t, px, px)).astype(np.float32)
        name = sessions["ffla"].get_inputs()[0].name
        ms = interleaved_ms({a: (lambda s=s: s.run(None, {name: x})) for a, s in sessions.items()}, rounds)
        del sessions
        n = tokens(t, px)
        row = {"frames": t, "size": px, "tokens": n,
               "us_per_token": {a: float(np.median(ms[a])) * 1e3 / n for a in ATTENTIONS},
               "ffla_vs_linear": ratio_stats(ms["ffla"], ms["linear"]),
               "softmax_vs_ffla": ratio_stats(ms["softmax"], ms["ffla"])}
        if memory:
            with_body = {}
            for a, p in paths.items():
                tmp = work / f".current-{a}.onnx"
                tmp.write_bytes(with_current_body(p))
                with_body[a] = tmp
            base = peak_rss_mb(None, t, px, threads)
            row["peak_mb"] = {a: peak_rss_mb(p, t, px, threads) - base for a, p in with_body.items()}
            for p in with_body.values():
                p.unlink()
        rows.append(row)
        print(f"  {t:3d} x {px:3d} px: {table_row(row)}", file=sys.stderr)
    return rows


def table_row(r: dict) -> str:
    us = r["us_per_token"]
    cells = [f"{r['frames']} x {r['size']}", f"{r['tokens']}", f"{us['ffla']:.3f}", f"{us['linear']:.3f}",
             f"{us['softmax']:.3f}", fmt_ratio(r["ffla_vs_linear"]), fmt_ratio(r["softmax_vs_ffla"])]
    if "peak_mb" in r:
        cells.append(" / ".join(f"{r['peak_mb'][a]:.0f}" for a in ATTENTIONS))
    return " | ".join(cells)


def report(rows: list[dict], rounds: int, threads: int) -> str:
    mem = "peak_mb" in rows[0]
    head = ["clip (T x px)", "tokens", "ffla us/token", "linear us/token", "softmax us/token",
            "ffla / linear", "softmax / ffla"] + (["peak MB ffla / linear / softmax"] if mem else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + table_row(r) + " |" for r in rows]
    notes = []
    axes = (("frames at 112 px", lambda r: r["size"] == 112), ("size at 8 frames", lambda r: r["frames"] == 8))
    for label, sel in axes:
        axis = [r for r in rows if sel(r)]
        over = next((r for r in axis if r["softmax_vs_ffla"][0] > 1.0), None)
        last = axis[-1]
        where = f"first at {over['frames']} x {over['size']}" if over else "not within this sweep"
        notes.append(f"- {label}: softmax costs more per token than ffla {where}; at {last['frames']} x "
                     f"{last['size']} softmax / ffla = {fmt_ratio(last['softmax_vs_ffla'])}.")
    worst = max(rows, key=lambda r: r["ffla_vs_linear"][0])
    notes.append(f"- ffla / linear per token: medians {min(r['ffla_vs_linear'][0] for r in rows):.2f}x to "
                 f"{worst['ffla_vs_linear'][0]:.2f}x (highest at {worst['frames']} x {worst['size']}).")
    return "\n".join([f"{machine_summary(threads)}; batch 1; {rounds} interleaved rounds per shape. "
                      "Ratios: median (min-max) of the per-round ratios.", "", *lines, "", *notes])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lvt-edge-bench" / "scaling",
                    help="export cache (default %(default)s)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds per shape (default %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default %(default)s)")
    ap.add_argument("--frames", type=lambda s: tuple(int(x) for x in s.split(",")), default=FRAMES,
                    help="frame counts at 112 px (default 8,16,32,64)")
    ap.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=SIZES,
                    help="input sizes at 8 frames (default 112,224,336,448)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    rows = measure(args.work, args.rounds, args.threads, not args.no_memory, args.frames, args.sizes)
    print(report(rows, args.rounds, args.threads))
    print(f"\n({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
