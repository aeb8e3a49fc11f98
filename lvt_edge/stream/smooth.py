"""Smoothing of a stream of class probabilities, and events with hysteresis.

Both work in seconds of capture time, not in counts of classifications, so they behave the
same whatever the camera's rate and the classification stride.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from lvt_edge.errors import LvtEdgeError

SMOOTHING = ("none", "ema", "window")


class Smoother:
    """Probabilities averaged over time.

    "ema": exponential moving average with time constant `seconds` (weight 1 - exp(-dt/seconds)
    for a result dt seconds after the previous one); "window": the mean of the results of the
    last `seconds`; "none": passed through."""

    def __init__(self, mode: str = "ema", seconds: float = 0.5) -> None:
        if mode not in SMOOTHING:
            raise LvtEdgeError(f"unknown smoothing {mode!r}; choose one of {', '.join(SMOOTHING)}")
        if not (math.isfinite(seconds) and seconds > 0):
            raise LvtEdgeError(f"--smooth-seconds must be > 0 (got {seconds})")
        self.mode, self.seconds = mode, float(seconds)
        self._state: np.ndarray | None = None
        self._t: float | None = None
        self._recent: deque[tuple[float, np.ndarray]] = deque()

    def reset(self) -> None:
        self._state, self._t = None, None
        self._recent.clear()

    def update(self, probs: np.ndarray, t: float) -> np.ndarray:
        """Add the probabilities of the window ending at capture time `t`; returns the smoothed ones."""
        probs = np.asarray(probs, np.float32)
        if self.mode == "none":
            return probs
        if self.mode == "window":
            self._recent.append((t, probs))
            while self._recent and self._recent[0][0] <= t - self.seconds:
                self._recent.popleft()
            return np.mean([p for _, p in self._recent], axis=0)
        if self._state is None or self._t is None:
            self._state = probs.copy()
        else:
            w = 1.0 - math.exp(-max(t - self._t, 0.0) / self.seconds)
            self._state += w * (probs - self._state)
        self._t = t
        return self._state.copy()


@dataclass
class Event:
    """A label that stayed on top: `kind` is "start" or "end"."""

    kind: str
    label: str
    t: float
    frame: int
    prob: float
    duration: float | None = None  # for "end": seconds since its start


class EventDetector:
    """"start" when one label stays on top with probability >= `threshold` for `hold` seconds;
    "end" when it has stayed below `release` (or off the top) for `hold` seconds.

    `release` < `threshold` is the hysteresis: a label hovering around the threshold neither
    flickers on and off nor starts twice."""

    def __init__(self, threshold: float = 0.6, hold: float = 0.5, release: float | None = None) -> None:
        release = threshold - 0.15 if release is None else release
        if not (math.isfinite(threshold) and 0 < threshold <= 1):
            raise LvtEdgeError(f"--threshold is a probability in (0, 1] (got {threshold})")
        if not (math.isfinite(hold) and hold >= 0):
            raise LvtEdgeError(f"--hold must be >= 0 seconds (got {hold})")
        if not (math.isfinite(release) and 0 <= release <= threshold):
            raise LvtEdgeError(f"--release must be between 0 and --threshold (got {release}, threshold {threshold})")
        self.threshold, self.hold, self.release = threshold, hold, release
        self.active: str | None = None
        self._active_since = 0.0
        self._candidate: tuple[str, float] | None = None  # label, first time it qualified
        self._low_since: float | None = None
        self._active_prob = 0.0

    def update(self, labels: tuple[str, ...], probs: np.ndarray, t: float, frame: int) -> list[Event]:
        """Events caused by the (smoothed) probabilities of the window ending at time t."""
        top = int(np.argmax(probs))
        label, p = labels[top], float(probs[top])
        events: list[Event] = []
        if label != self.active and p >= self.threshold:
            if self._candidate is None or self._candidate[0] != label:
                self._candidate = (label, t)
        else:
            self._candidate = None
        if self.active is not None:
            p_active = self._active_prob = float(probs[labels.index(self.active)])
            if p_active >= self.release:
                self._low_since = None
            elif self._low_since is None:
                self._low_since = t
            replaced = self._candidate is not None and t - self._candidate[1] >= self.hold
            if replaced or (self._low_since is not None and t - self._low_since >= self.hold):
                events.append(Event("end", self.active, t, frame, p_active, t - self._active_since))
                self.active, self._low_since = None, None
        if self._candidate is not None and t - self._candidate[1] >= self.hold:
            self.active, self._active_since, self._candidate, self._active_prob = label, t, None, p
            events.append(Event("start", label, t, frame, p))
        return events

    def close(self, t: float, frame: int) -> list[Event]:
        """An "end" for the active label when the stream stops."""
        if self.active is None:
            return []
        ev = Event("end", self.active, t, frame, self._active_prob, t - self._active_since)
        self.active = None
        return [ev]
