"""`lvt-edge live` (and apps/live_camera.py): live classification of a camera, a stream, a file
or the synthetic source, with an on-screen overlay, a saved video and JSON lines."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections import deque


def positive(kind=float):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            v = None
        if v is None or not v > 0 or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {'number' if kind is float else 'integer'} (got {text!r})")
        return v
    return parse


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.commands.common import add_bundle_args

    add_bundle_args(p)
    src = p.add_argument_group("source")
    src.add_argument("--source", default="0",
                     help="camera index or /dev/videoN, video file, rtsp:// or http(s):// URL, GStreamer pipeline "
                          "(with '!'), or synth:CLASS=SECONDS,... for synthetic motion (default 0)")
    src.add_argument("--csi", action="store_true", help="Jetson CSI camera (nvarguscamerasrc) instead of --source")
    src.add_argument("--sensor-id", type=int, default=0, help="CSI sensor id (default 0)")
    src.add_argument("--flip", type=int, default=0, help="CSI nvvidconv flip-method 0-7 (default 0)")
    src.add_argument("--width", type=positive(int), default=None, help="capture width (cameras, CSI; synth: side)")
    src.add_argument("--height", type=positive(int), default=None, help="capture height (cameras, CSI)")
    src.add_argument("--fps", type=positive(), default=None, help="capture rate of CSI and synth sources (default 30)")
    src.add_argument("--loop", action="store_true", help="play a file (or a synth schedule) again at its end")
    src.add_argument("--pace", type=float, default=1.0,
                     help="speed of files and synth: 1 = their own rate like a camera, 0 = as fast as they decode (default 1)")
    src.add_argument("--open-timeout", type=positive(), default=10.0, help="seconds to wait for a URL to answer (default 10)")
    src.add_argument("--stall-timeout", type=positive(), default=5.0,
                     help="seconds without a frame before a live source is reopened (default 5)")
    cls = p.add_argument_group("classification")
    cls.add_argument("--mode", choices=("window", "stream"), default="window",
                     help="window: classify a window of frames every --stride; stream: a causal bundle's step model "
                          "classifies every captured frame from a carried state (onnxruntime, or tensorrt where "
                          "`lvt-edge build --target tensorrt` made a step engine; default window)")
    cls.add_argument("--phases", type=positive(int), default=None,
                     help="stream mode: states carried, each fed frames one model frame interval apart "
                          "(default: captured frames per model frame, so every frame is classified)")
    cls.add_argument("--stride", type=positive(), default=None,
                     help="window mode: seconds between classifications (default: the model's frame interval)")
    cls.add_argument("--smooth", choices=("ema", "window", "none"), default="ema", help="probability smoothing (default ema)")
    cls.add_argument("--smooth-seconds", type=positive(), default=0.5, help="smoothing time constant / window (default 0.5)")
    cls.add_argument("--threshold", type=float, default=0.6, help="event start: probability on top (default 0.6)")
    cls.add_argument("--hold", type=float, default=0.5, help="seconds a label must hold to start or end an event (default 0.5)")
    cls.add_argument("--release", type=float, default=None, help="event end: probability below this (default threshold - 0.15)")
    cls.add_argument("--topk", type=positive(int), default=3, help="labels shown and logged (default 3)")
    out = p.add_argument_group("output")
    out.add_argument("--save", default=None, metavar="OUT.mp4", help="save the annotated video")
    out.add_argument("--jsonl", default=None, metavar="FILE", help="one JSON line per classification, event and stats; - for stdout")
    out.add_argument("--headless", action="store_true", help="no window, even where a display exists")
    out.add_argument("--max-frames", type=positive(int), default=None, help="stop after this many captured frames")
    out.add_argument("--duration", type=positive(), default=None, help="stop after this many seconds")
    out.add_argument("--stats-every", type=positive(), default=5.0, help="seconds between stats lines (default 5)")


def run(args: argparse.Namespace) -> int:
    from lvt_edge.commands.common import backend_options
    from lvt_edge.runtime import load_bundle
    from lvt_edge.stream import LiveStream, SourceOptions, StreamSettings, open_source
    from lvt_edge.stream.output import Display, JsonLines, VideoSaver

    settings = StreamSettings(
        stride=args.stride, frame_interval=args.frame_interval, smoothing=args.smooth,
        smooth_seconds=args.smooth_seconds, threshold=args.threshold, hold=args.hold, release=args.release,
        topk=args.topk, stall_timeout=args.stall_timeout, stats_every=args.stats_every,
        mode=args.mode, phases=args.phases,
    )
    settings.check()
    if args.mode == "stream" and args.backend == "torch":
        from lvt_edge.errors import LvtEdgeError

        raise LvtEdgeError("--mode stream runs the step model on onnxruntime or tensorrt; the torch backend classifies "
                           "windows only (--mode window), so pass --backend auto, onnxruntime or tensorrt")
    options = SourceOptions(loop=args.loop, pace=args.pace, fps=args.fps, width=args.width, height=args.height,
                            open_timeout=args.open_timeout, read_timeout=args.stall_timeout)
    source = open_source(args.source, options, csi=args.csi, sensor_id=args.sensor_id, flip=args.flip)
    display = None if args.headless else Display()
    if display is not None and not display.ok:
        print(f"lvt-edge live: {display.reason}; running headless", file=sys.stderr)
        display = None
    # Outputs are checked before the model loads or the camera opens: a typo costs nothing.
    jsonl = JsonLines(args.jsonl) if args.jsonl else None
    saver = VideoSaver(args.save, 0.0) if args.save else None
    settings = StreamSettings(**{**settings.__dict__, "frames_out": bool(display or saver)})
    if args.mode == "stream":
        from lvt_edge.runtime import load_step

        clf = load_step(args.bundle, args.precision, backend=args.backend,
                        **{k: v for k, v in backend_options(args).items() if k != "checkpoint"})
    else:
        clf = load_bundle(args.bundle, args.precision, args.backend, **backend_options(args))
    with clf:
        stream = LiveStream(clf, source, settings)
        return _loop(stream, source, jsonl, saver, display, args)


def log(line: str) -> None:
    """Human-readable progress goes to stderr, so `--jsonl -` keeps stdout pure JSON."""
    print(line, file=sys.stderr, flush=True)


def _loop(stream, source, jsonl, saver, display, args) -> int:
    from lvt_edge.stream.output import OverlayState, annotate

    stopped_by = []

    def on_signal(signum, frame):
        stopped_by.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, on_signal)
    state = OverlayState()
    arrivals: deque[float] = deque(maxlen=30)  # the overlay's FPS: over the last second or so
    started = time.monotonic()
    try:
        stream.start()
        if saver is not None:
            saver.fps = source.fps or saver.fps
        if args.mode == "stream":
            log(f"lvt-edge live: {source.describe()} -> {stream.clf.backend} {stream.clf.precision} step model, "
                f"a classification per captured frame, each from a state fed every {stream.ring.interval:.3f} s")
        else:
            log(f"lvt-edge live: {source.describe()} -> {stream.clf.backend} {stream.clf.precision}, "
                f"window {stream.ring.interval * stream.clf.contract.frames:.2f} s, "
                f"a classification every {stream.stride:.3f} s")
        while not stream.finished:
            messages, frames = stream.poll(0.05)
            for m in messages:
                _handle(m, state, jsonl)
            for f in frames:
                arrivals.append(f.wall)
                if len(arrivals) > 1:
                    state.fps = (len(arrivals) - 1) / max(arrivals[-1] - arrivals[0], 1e-6)
                shown = annotate(f.image, state) if (saver or display) else None
                if saver is not None:
                    saver.write(shown)
                if display is not None and not display.show(shown):
                    raise KeyboardInterrupt
            if args.max_frames and stream.metrics.frames >= args.max_frames:
                break
            if args.duration and time.monotonic() - started >= args.duration:
                break
    except KeyboardInterrupt:
        stopped_by.append(stopped_by.pop() if stopped_by else "Ctrl-C")
    finally:
        signal.signal(signal.SIGTERM, old)
        stream.stop()
        messages, frames = stream.poll(0.0)
        for m in messages:
            _handle(m, state, jsonl)
        for f in frames:
            if saver is not None:
                saver.write(annotate(f.image, state))
        final = {**stream.stats(), "final": True}
        if jsonl is not None:
            jsonl.write(final)
            jsonl.close()
        saved = saver.close() if saver is not None else None
        if display is not None:
            display.close()
    why = f"stopped by {stopped_by[0]}" if stopped_by else "source ended" if source.ended else "limit reached"
    log(_summary(final, why, saved, args.jsonl, "frames" if args.mode == "stream" else "windows"))
    return 0


def _handle(m: dict, state, jsonl) -> None:
    if jsonl is not None:
        jsonl.write(m)
    kind = m["type"]
    if kind == "classification":
        state.topk, state.latency_ms, state.e2e_ms = m["topk"], m["latency_ms"], m["e2e_ms"]
    elif kind == "event":
        state.event = m["label"] if m["event"] == "start" else None
        log(f"  {m['time']:8.2f} s  {m['event']:5}  {m['label']} ({m['prob']:.2f})")
    elif kind == "status":
        state.status = None if m["status"] in ("opened", "reconnected") else m["status"]
        log(f"  status: {m['status']} {m.get('reason', '')}".rstrip())
    elif kind == "stats":
        log(f"  {m['elapsed_s']:8.1f} s  {m['capture_fps']:.1f} FPS  {m['classifications_per_s']:.1f} cls/s  "
            f"infer p50 {_ms(m['latency_ms']['p50'])}  e2e p95 {_ms(m['e2e_ms']['p95'])}  "
            f"dropped {m['dropped']}  skipped {m['skipped']}")


def _ms(v) -> str:
    return "-" if v is None else f"{v:.1f} ms"


def _summary(s: dict, why: str, saved, jsonl_target, classified: str = "windows") -> str:
    lines = [
        f"lvt-edge live: {why} after {s['elapsed_s']:.1f} s",
        f"  frames {s['frames']} at {s['capture_fps']:.1f} FPS, dropped by capture {s['dropped']}, "
        f"undecodable {s['bad_frames']}, stalls {s['stalls']}, reconnects {s['reconnects']}",
        f"  {classified} classified {s['windows']} ({s['classifications_per_s']:.2f}/s), skipped {s['skipped']}, "
        f"incomplete {s['incomplete']}",
        f"  inference p50 {_ms(s['latency_ms']['p50'])} p95 {_ms(s['latency_ms']['p95'])}; "
        f"end-to-end p50 {_ms(s['e2e_ms']['p50'])} p95 {_ms(s['e2e_ms']['p95'])}",
    ]
    if saved:
        lines.append(f"  annotated video: {saved}")
    if jsonl_target and jsonl_target != "-":
        lines.append(f"  JSON lines: {jsonl_target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of apps/live_camera.py: the same as `lvt-edge live`."""
    from lvt_edge.cli import main as cli_main

    return cli_main(["live", *(sys.argv[1:] if argv is None else argv)])
