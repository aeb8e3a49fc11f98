"""Counters and latency percentiles of a live stream, in constant memory."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

KEEP = 2048  # latest latencies kept for percentiles (memory stays flat over hours)


def percentiles(values, qs=(50, 95)) -> dict[str, float | None]:
    v = np.asarray(values, np.float64)
    return {f"p{q}": (round(float(np.percentile(v, q)), 3) if len(v) else None) for q in qs}


@dataclass
class StreamMetrics:
    """What a stream counts. Updated by the capture and inference threads, read by anyone."""

    started: float = field(default_factory=time.monotonic)
    frames: int = 0  # captured and preprocessed
    dropped: int = 0  # lost by capture (the source's count: late reader, gaps in a camera's clock)
    bad_frames: int = 0  # undecodable frames skipped
    windows: int = 0  # classified
    skipped: int = 0  # whole windows not classified because inference was behind
    incomplete: int = 0  # due windows without enough history (start, after a reconnect)
    reconnects: int = 0
    stalls: int = 0
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=KEEP))  # inference only
    e2e_ms: deque = field(default_factory=lambda: deque(maxlen=KEEP))  # newest frame's arrival -> result
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _last: tuple[float, int, int] = (0.0, 0, 0)  # time, frames, windows at the last interval snapshot

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def record(self, latency_ms: float, e2e_ms: float) -> None:
        with self._lock:
            self.windows += 1
            self.latency_ms.append(latency_ms)
            self.e2e_ms.append(e2e_ms)

    def snapshot(self, interval: bool = False) -> dict:
        """Totals, rates since the start (or since the last interval snapshot) and percentiles."""
        with self._lock:
            now = time.monotonic()
            t0, f0, w0 = self._last if interval and self._last[0] else (self.started, 0, 0)
            if interval:
                self._last = (now, self.frames, self.windows)
            elapsed = max(now - t0, 1e-9)
            return {
                "elapsed_s": round(now - self.started, 3),
                "frames": self.frames, "dropped": self.dropped, "bad_frames": self.bad_frames,
                "windows": self.windows, "skipped": self.skipped, "incomplete": self.incomplete,
                "reconnects": self.reconnects, "stalls": self.stalls,
                "capture_fps": round((self.frames - f0) / elapsed, 2),
                "classifications_per_s": round((self.windows - w0) / elapsed, 2),
                "latency_ms": percentiles(self.latency_ms), "e2e_ms": percentiles(self.e2e_ms),
            }
