"""The stream's threads: capture never waits for inference; windows, not frames, are skipped."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier
from lvt_edge.stream import LiveStream, Source, SourceOptions, StreamSettings, open_source

CONTRACT = ClipContract(frames=4, size=32, resize=32, labels=("a", "b"), frame_interval=0.1)


class Slow(Classifier):
    """A classifier that takes `delay` seconds per call and says "b" when the newest frame is bright."""

    backend = "fake"

    def __init__(self, delay: float, fail_after: int | None = None) -> None:
        super().__init__(CONTRACT, precision="fp32")
        self.delay, self.fail_after, self.calls = delay, fail_after, 0

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("backend exploded")
        time.sleep(self.delay)
        bright = batch[:, :, -1].mean(axis=(1, 2, 3)) > 0
        return np.stack([~bright, bright], 1).astype(np.float32) * 4


def drain(stream: LiveStream, seconds: float) -> list[dict]:
    out, end = [], time.monotonic() + seconds
    while time.monotonic() < end and not stream.finished:
        out += stream.poll(0.05)[0]
    return out


def test_slow_inference_skips_windows_never_frames():
    clf = Slow(delay=0.25)
    source = open_source("synth:static=2.5", SourceOptions(pace=1, fps=30, width=48))
    with LiveStream(clf, source, StreamSettings(stride=0.05)) as stream:
        messages = drain(stream, 6)
    s = stream.stats()
    assert s["frames"] == 75 and s["dropped"] == 0
    assert s["skipped"] >= 10  # a window was due every 0.05 s, inference takes 0.25 s
    results = [m for m in messages if m["type"] == "classification"]
    assert 5 <= len(results) <= 10
    assert max(m["e2e_ms"] for m in results) < 250 + 2 * 50 + 150  # bounded: one inference + a stride + slack


def test_push_api_classifies_when_a_window_is_ready():
    with LiveStream(Slow(delay=0.0), settings=StreamSettings(smoothing="none", hold=0.0, threshold=0.9)) as stream:
        for i in range(30):
            stream.push(np.full((40, 40, 3), 255 if i >= 15 else 0, np.uint8), t=i * 0.05)
            time.sleep(0.02)
        stream.end_of_input()
        messages = drain(stream, 5)
    results = [m for m in messages if m["type"] == "classification"]
    # The first window is due once 0.3 s of history exist (frame 6), then one every 0.1 s; a window
    # the inference thread was too late for is skipped, and counted.
    assert {m["frame"] for m in results} <= set(range(6, 30, 2)) and len(results) >= 6
    assert len(results) + stream.stats()["skipped"] == 12
    assert all(m["label"] == ("b" if m["frame"] >= 15 else "a") for m in results)
    events = [(m["event"], m["label"]) for m in messages if m["type"] == "event"]
    assert events[0] == ("start", "a") and ("start", "b") in events


def test_an_inference_error_surfaces_in_the_callers_thread():
    source = open_source("synth:static=3", SourceOptions(pace=0, fps=30, width=32))
    stream = LiveStream(Slow(delay=0.0, fail_after=2), source).start()
    with pytest.raises(RuntimeError, match="exploded"):
        drain(stream, 5)
    stream.stop()


def test_bad_settings_are_refused():
    for kw in ({"stride": 0.0}, {"stride": float("nan")}, {"topk": 0}, {"stall_timeout": -1.0}):
        with pytest.raises(LvtEdgeError):
            LiveStream(Slow(0.0), settings=StreamSettings(**kw))


class Flaky(Source):
    """A live source that delivers frames, goes silent, refuses twice to reopen, then comes back."""

    kind, live = "camera", True

    def __init__(self) -> None:
        super().__init__("flaky", SourceOptions())
        self.opens = self.reads = 0

    def open(self) -> None:
        self.opens += 1
        if self.opens in (2, 3):
            raise LvtEdgeError("camera unplugged")

    def read(self):
        self.reads += 1
        time.sleep(0.01)
        if self.reads == 40:
            return None  # the stream breaks
        if self.reads > 120:
            self.ended = True
            return None
        return self._frame(np.zeros((24, 24, 3), np.uint8), time.monotonic())


def test_a_lost_source_is_reopened_with_back_off_and_no_thread_is_left_behind():
    import threading

    before = threading.active_count()
    source = Flaky()
    with LiveStream(Slow(delay=0.0), source, StreamSettings(backoff_max=0.5)) as stream:
        messages = drain(stream, 10)
    statuses = [m["status"] for m in messages if m["type"] == "status"]
    assert statuses == ["opened", "stalled", "reconnecting", "reconnecting", "reconnected"]
    waits = [m["retry_in_s"] for m in messages if m.get("status") == "reconnecting"]
    assert waits == [0.5, 0.5]  # doubled, capped by backoff_max
    s = stream.stats()
    assert (s["reconnects"], s["stalls"], s["frames"]) == (1, 1, 119)
    assert s["windows"] > 0 and source.opens == 4
    assert threading.active_count() == before
