"""Live classification: capture, inference and output decoupled.

    with LiveStream(clf, open_source("0"), StreamSettings(stride=0.25)) as stream:
        while not stream.finished:
            messages, frames = stream.poll(0.1)

A capture thread reads the source and `push`es each frame: it is preprocessed once into the
ring and the capture goes on; it never waits for inference. An inference thread classifies the
window ending at the newest frame whenever one is due (every `stride` seconds of capture time);
when it falls behind, the windows it could not run are skipped and counted, never frames, so the
newest frame is at most one inference old when its window is classified. Results, events, status
changes and periodic stats come out of `poll` as dicts (the JSON lines of the live app); with
`frames_out` the captured frames come out too, for display and saving.

Stream mode (`StreamSettings(mode="stream")`, a causal bundle's step classifier from
`lvt_edge.runtime.load_step`): no windows; every captured frame advances one of the carried
states (`lvt_edge.stream.phases`) and is classified from it, at the cost of one step. When
inference falls behind by more than the ring holds, the lost frames are counted as skipped and
the phases they belonged to start over.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier
from lvt_edge.stream.metrics import StreamMetrics
from lvt_edge.stream.phases import MAX_PHASES, PhaseScheduler, phases_for
from lvt_edge.stream.smooth import EventDetector, Smoother
from lvt_edge.stream.sources import Frame, Source
from lvt_edge.stream.window import FrameRing

FRAME_QUEUE = 64  # frames waiting for display/saving before output drops them (capture never waits)
MODES = ("window", "stream")
RATE_PROBE = 5  # frames whose spacing sets the number of phases in stream mode (unless given)


@dataclass(frozen=True)
class StreamSettings:
    """How a live stream classifies. Times are seconds of capture time."""

    stride: float | None = None  # between classifications; None: the model's frame interval
    frame_interval: float | None = None  # overrides the bundle contract's
    smoothing: str = "ema"
    smooth_seconds: float = 0.5
    threshold: float = 0.6
    hold: float = 0.5
    release: float | None = None  # None: threshold - 0.15
    topk: int = 3
    stall_timeout: float = 5.0  # a live source silent this long is reported stalled and reopened
    backoff_max: float = 10.0  # longest wait between reopen attempts
    stats_every: float = 5.0
    frames_out: bool = False
    mode: str = "window"  # "stream": one classification per captured frame from a causal step model
    phases: int | None = None  # stream mode: states carried; None: captured frames per model frame

    def check(self) -> None:
        for name in ("stride", "frame_interval"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise LvtEdgeError(f"--{name.replace('_', '-')} must be > 0 seconds (got {v})")
        for name in ("stall_timeout", "backoff_max", "stats_every"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise LvtEdgeError(f"--{name.replace('_', '-')} must be > 0 seconds (got {v})")
        if self.topk < 1:
            raise LvtEdgeError(f"--topk must be >= 1 (got {self.topk})")
        if self.mode not in MODES:
            raise LvtEdgeError(f"--mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if self.phases is not None and not 1 <= self.phases <= MAX_PHASES:
            raise LvtEdgeError(f"--phases must be 1..{MAX_PHASES} (got {self.phases})")


class LiveStream:
    """A classifier fed by a source (or by `push`), in two threads of its own."""

    def __init__(self, classifier: Classifier, source: Source | None = None,
                 settings: StreamSettings | None = None) -> None:
        self.clf, self.source = classifier, source
        self.settings = s = settings or StreamSettings()
        s.check()
        if s.mode == "stream" and not callable(getattr(classifier, "step", None)):
            raise LvtEdgeError("stream mode needs the step model of a causal bundle (lvt_edge.runtime.load_step); "
                               f"this is a {classifier.backend} window classifier: use --mode window, or export "
                               "a causal model (e.g. lvt-tiny-causal)")
        self.scheduler: PhaseScheduler | None = None
        self.ring = FrameRing(classifier.contract, frame_interval=s.frame_interval)
        self.stride = s.stride or self.ring.interval
        self.smoother = Smoother(s.smoothing, s.smooth_seconds)
        self.events = EventDetector(s.threshold, s.hold, s.release)
        self.metrics = StreamMetrics()
        self._labels = tuple(classifier.labels)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._source_done = threading.Event()
        self._messages: queue.Queue = queue.Queue()
        self._frames: queue.Queue = queue.Queue(maxsize=FRAME_QUEUE)
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._t0: float | None = None  # capture time of the first frame
        self._newest: tuple[float, int] | None = None  # arrival (wall) time and index of the newest frame
        self._last_arrival = time.monotonic()
        self._stalled = False
        self._generation = 0  # bumped when the ring is cleared: the schedule of due windows restarts
        self._last_result: tuple[float, int] = (0.0, 0)
        self.frames_not_shown = 0

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "LiveStream":
        """Open the source (its error, if any, is raised here) and start the threads."""
        if self.source is not None:
            self.source.open()
            self._emit({"type": "status", "status": "opened", "source": self.source.describe()})
        self._last_arrival = time.monotonic()
        self._spawn(self._infer_stream if self.settings.mode == "stream" else self._infer, "lvt-infer")
        if self.source is not None:
            self._spawn(self._capture, "lvt-capture")
        return self

    def stop(self) -> None:
        """Stop both threads and close the source; the active event (if any) ends."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=self.settings.stall_timeout + 2.0)
        if self.source is not None and not any(t.is_alive() for t in self._threads):
            self.source.close()
        t, frame = self._last_result
        for ev in self.events.close(t, frame):
            self._emit(self._event_message(ev))

    def end_of_input(self) -> None:
        """For `push` users: no more frames will come; the stream finishes once drained."""
        self._source_done.set()
        with self._cond:
            self._cond.notify_all()

    @property
    def finished(self) -> bool:
        """The source ended (or the stream stopped) and every message was taken (a thread's error
        is raised by the next `poll` first)."""
        if self._error is not None:
            return False
        done = self._stop.is_set() or not any(t.is_alive() for t in self._threads)
        return done and self._messages.empty() and self._frames.empty()

    def __enter__(self) -> "LiveStream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- input ------------------------------------------------------------------------------
    def push(self, image: np.ndarray, t: float | None = None, *, wall: float | None = None,
             index: int | None = None) -> None:
        """Add one captured BGR frame (cheap: it is preprocessed into the ring; never blocks on
        inference). `t` is its capture time in seconds (default: now)."""
        wall = time.monotonic() if wall is None else wall
        t = wall if t is None else t
        with self._cond:
            index = self.metrics.frames if index is None else index
            if self._t0 is None:
                self._t0 = t
            self.ring.push(image, t, index)
            self._newest = (wall, index)
            self._cond.notify_all()
        self.metrics.add(frames=1)
        self._last_arrival = time.monotonic()
        if self.settings.frames_out:
            try:
                self._frames.put_nowait(Frame(image, t - self._t0, wall, index))
            except queue.Full:
                self.frames_not_shown += 1

    # -- output -----------------------------------------------------------------------------
    def poll(self, timeout: float = 0.1) -> tuple[list[dict], list[Frame]]:
        """Messages and frames ready now (waiting up to `timeout` for the first of either)."""
        if self._error is not None:
            err, self._error = self._error, None
            raise err
        messages, frames = [], []
        deadline = time.monotonic() + timeout
        while True:
            try:
                while True:
                    messages.append(self._messages.get_nowait())
            except queue.Empty:
                pass
            try:
                while True:
                    frames.append(self._frames.get_nowait())
            except queue.Empty:
                pass
            if messages or frames or time.monotonic() >= deadline or self.finished:
                return messages, frames
            time.sleep(0.005)

    def stats(self) -> dict:
        return {"type": "stats", **self.metrics.snapshot(), "not_shown": self.frames_not_shown}

    # -- threads ----------------------------------------------------------------------------
    def _spawn(self, target, name: str) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as e:  # surfaced by poll() in the caller's thread
                self._error = e
                self._stop.set()
                with self._cond:
                    self._cond.notify_all()

        t = threading.Thread(target=guarded, name=name, daemon=True)
        self._threads.append(t)
        t.start()

    def _capture(self) -> None:
        src = self.source
        try:
            while not self._stop.is_set():
                frame = src.read()
                self.metrics.dropped, self.metrics.bad_frames = src.dropped, src.bad_frames
                if frame is not None:
                    self._stalled = False
                    self.push(frame.image, frame.t, wall=frame.wall, index=frame.index)
                    continue
                if src.ended or not src.live:
                    break
                self._report_stall("the source stopped answering or closed the stream")
                if not self._reopen():
                    break
        finally:
            self._source_done.set()
            with self._cond:
                self._cond.notify_all()

    def _reopen(self) -> bool:
        """Reopen a live source with exponential back-off until it answers or the stream stops."""
        delay = 0.5
        while not self._stop.is_set():
            self.source.close()
            try:
                self.source.open()
            except LvtEdgeError as e:
                self._emit({"type": "status", "status": "reconnecting", "source": self.source.describe(),
                            "reason": str(e), "retry_in_s": delay})
                self._stop.wait(delay)
                delay = min(2 * delay, self.settings.backoff_max)
                continue
            with self._cond:
                self.ring.clear()  # a window must not span the gap
                self._generation += 1
            self.metrics.add(reconnects=1)
            self._emit({"type": "status", "status": "reconnected", "source": self.source.describe()})
            return True
        return False

    def _infer(self) -> None:
        next_due: float | None = None
        generation = self._generation
        last_stats = time.monotonic()
        while True:
            with self._cond:
                while not self._stop.is_set():
                    if generation != self._generation:
                        generation, next_due = self._generation, None
                    newest = self.ring.newest_time
                    if next_due is None and newest is not None:
                        next_due = self.ring.oldest_time + self.ring.span
                    if newest is not None and next_due is not None and newest >= next_due:
                        break
                    if self._source_done.is_set():
                        break
                    self._cond.wait(0.1)
                    last_stats = self._tick(last_stats)
                if self._stop.is_set():
                    return
                newest = self.ring.newest_time
                if newest is None or next_due is None or newest < next_due:
                    return  # the source ended and nothing more is due
                due = int(math.floor((newest - next_due) / self.stride + 1e-9)) + 1
                next_due += due * self.stride
                got = self.ring.window()
                wall, index = self._newest
            self.metrics.add(skipped=due - 1)
            if got is None:
                self.metrics.add(incomplete=1)
                continue
            self._classify(got[0], newest, wall, index)
            last_stats = self._tick(last_stats)

    def _infer_stream(self) -> None:
        done = 0  # frames of the ring's history (since its last clear) already handled
        generation = self._generation
        last_stats = time.monotonic()
        while True:
            with self._cond:
                while not self._stop.is_set():
                    if generation != self._generation:  # reconnected: every phase starts over
                        generation, done, self.scheduler = self._generation, 0, None
                    pushed = self.ring.pushed
                    rate_known = (self.scheduler is not None or self.settings.phases is not None
                                  or pushed >= RATE_PROBE or self._source_done.is_set())
                    if (pushed > done and rate_known) or (self._source_done.is_set() and pushed <= done):
                        break
                    self._cond.wait(0.1)
                    last_stats = self._tick(last_stats)
                if self._stop.is_set():
                    return
                pushed = self.ring.pushed
                if pushed <= done:
                    return  # the source ended and every frame was handled
                if self.scheduler is None:
                    self.scheduler = self._new_scheduler(pushed)
                frames = [self.ring.frame(n) for n in range(done, pushed)]
                done = pushed
                wall, _ = self._newest
            lost = sum(f is None for f in frames)
            if lost:
                self.metrics.add(skipped=lost)
            for f in frames:
                if f is None:
                    continue
                data, t, index = f
                slot = self.scheduler.assign(t)
                if slot is None:
                    continue
                phase, restart = slot
                if restart:
                    self.clf.reset(stream=phase)
                t0 = time.perf_counter()
                probs = self.clf.step(data, stream=phase)
                self._publish(probs, (time.perf_counter() - t0) * 1e3, t, wall, index, phase=phase)
            last_stats = self._tick(last_stats)

    def _new_scheduler(self, pushed: int) -> PhaseScheduler:
        """Phases from the settings, or from the spacing of the first frames; the classifier
        carries one state per phase."""
        times = [f[1] for f in (self.ring.frame(n) for n in range(min(pushed, RATE_PROBE))) if f is not None]
        period = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
        phases = self.settings.phases or phases_for(self.ring.interval, period)
        self.clf.reset(phases)
        return PhaseScheduler(self.ring.interval, phases, period or None)

    def _classify(self, clip: np.ndarray, t: float, wall: float, index: int) -> None:
        t0 = time.perf_counter()
        probs = self.clf.predict(clip)
        self._publish(probs, (time.perf_counter() - t0) * 1e3, t, wall, index)

    def _publish(self, probs: np.ndarray, latency: float, t: float, wall: float, index: int, **extra) -> None:
        smooth = self.smoother.update(probs, t)
        rel = t - (self._t0 or 0.0)
        events = self.events.update(self._labels, smooth, rel, index)
        e2e = (time.monotonic() - wall) * 1e3
        self.metrics.record(latency, e2e)
        k = min(self.settings.topk, len(self._labels))
        top = np.argsort(-smooth)[:k]
        raw = int(np.argmax(probs))
        self._last_result = (rel, index)
        self._emit({
            "type": "classification", "frame": index, "time": round(rel, 4),
            "label": self._labels[top[0]], "prob": round(float(smooth[top[0]]), 4),
            "topk": [[self._labels[i], round(float(smooth[i]), 4)] for i in top],
            "raw_label": self._labels[raw], "raw_prob": round(float(probs[raw]), 4),
            "latency_ms": round(latency, 3), "e2e_ms": round(e2e, 3), "unix_time": round(time.time(), 3), **extra,
        })
        for ev in events:
            self._emit(self._event_message(ev))

    def _tick(self, last_stats: float) -> float:
        """Periodic work of the inference thread: the stall watchdog and the stats line."""
        now = time.monotonic()
        if (self.source is not None and self.source.live and not self._stalled
                and now - self._last_arrival > self.settings.stall_timeout):
            self._report_stall(f"no frame for {now - self._last_arrival:.1f} s")
        if now - last_stats >= self.settings.stats_every:
            self._emit({"type": "stats", **self.metrics.snapshot(interval=True), "not_shown": self.frames_not_shown})
            return now
        return last_stats

    def _report_stall(self, reason: str) -> None:
        """One status line and one count per stall, whoever notices it first."""
        if not self._stalled:
            self._stalled = True
            self.metrics.add(stalls=1)
            self._emit({"type": "status", "status": "stalled", "source": self.source.describe(), "reason": reason})

    def _event_message(self, ev) -> dict:
        msg = {"type": "event", "event": ev.kind, "label": ev.label, "time": round(ev.t, 4), "frame": ev.frame,
               "prob": round(ev.prob, 4)}
        if ev.duration is not None:
            msg["duration_s"] = round(ev.duration, 3)
        return msg

    def _emit(self, message: dict) -> None:
        self._messages.put(message)
