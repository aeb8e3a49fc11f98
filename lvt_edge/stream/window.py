"""Windows by time: which captured frames make one model input, and the ring they come from.

A model was trained on frames `contract.frame_interval` seconds apart. A camera may deliver
15, 30 or 60 frames a second and drop some, so a window is chosen by capture time: for a
window ending at time t, frame k (0 = oldest) is the captured frame nearest to
t - (T - 1 - k) * frame_interval. Frames are preprocessed once, when they arrive, into a ring
that grows until it holds one window's span of history at the camera's actual rate.
"""

from __future__ import annotations

import numpy as np

from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError

MAX_RING = 4096  # frames; one window of lvt-base at 224 px and 120 FPS needs ~240


def window_times(t_end: float, frames: int, interval: float) -> np.ndarray:
    """Target capture times of a window's frames, oldest first; the last one is `t_end`."""
    return t_end - interval * np.arange(frames - 1, -1, -1, dtype=np.float64)


def pick_frames(times: np.ndarray, targets: np.ndarray, *, mode: str = "nearest") -> np.ndarray:
    """Index into ascending `times` of the frame chosen for each target time.

    "nearest": the frame captured closest to the target (live streams, where timestamps jitter);
    "floor": the latest frame at or before it, i.e. the frame on screen at that time (whole
    videos, where a frame's time is its start; with targets at segment middles this equals the
    contract's uniform sampling)."""
    times = np.asarray(times, np.float64)
    right = np.searchsorted(times, targets, side="right")
    floor = np.clip(right - 1, 0, len(times) - 1)
    if mode == "floor":
        return floor
    if mode != "nearest":
        raise ValueError(f"unknown mode {mode!r}")
    nxt = np.clip(right, 0, len(times) - 1)
    return np.where(np.abs(times[nxt] - targets) < np.abs(times[floor] - targets), nxt, floor)


class FrameRing:
    """Preprocessed frames with their capture times, newest overwriting oldest.

    Frames are stored as the model sees them (float32, normalised, channel order of the
    contract) in a 3 x N x size x size array, so a window is one gather along N. Not thread-safe:
    the caller serialises `push` and `window`."""

    def __init__(self, contract: ClipContract, *, frame_interval: float | None = None, capacity: int = 32) -> None:
        interval = frame_interval if frame_interval is not None else contract.frame_interval
        if interval is None:
            raise LvtEdgeError(
                "the bundle's clip contract does not say how far apart in time the model's frames are "
                "(made before lvt_edge recorded it); pass --frame-interval SECONDS, e.g. 0.133 when the "
                "model's 8 frames cover about 1 s of video"
            )
        if not interval > 0:
            raise LvtEdgeError(f"frame interval must be > 0 seconds (got {interval})")
        self.contract = contract
        self.interval = float(interval)
        self.span = (contract.frames - 1) * self.interval
        s = contract.size
        capacity = max(capacity, contract.frames + 2)
        self._data = np.zeros((3, capacity, s, s), np.float32)
        self._times = np.zeros(capacity, np.float64)
        self._index = np.zeros(capacity, np.int64)
        self._count = 0  # frames held since the last clear, renumbered when the ring grows
        self._serial = 0  # frames pushed since the last clear, never renumbered
        self._mean = np.asarray(contract.mean, np.float32).reshape(3, 1, 1) * 255.0
        self._scale = 1.0 / (np.asarray(contract.std, np.float32).reshape(3, 1, 1) * 255.0)

    @property
    def capacity(self) -> int:
        return len(self._times)

    def __len__(self) -> int:
        return min(self._count, self.capacity)

    @property
    def newest_time(self) -> float | None:
        return float(self._times[(self._count - 1) % self.capacity]) if self._count else None

    @property
    def oldest_time(self) -> float | None:
        return float(self._times[(self._count - len(self)) % self.capacity]) if self._count else None

    def clear(self) -> None:
        """Forget the history (after a reconnect: a window must not span the gap)."""
        self._count = self._serial = 0

    @property
    def pushed(self) -> int:
        """Frames pushed since the last clear; frame n (0-based) of them is `frame(n)`."""
        return self._serial

    def frame(self, n: int) -> tuple[np.ndarray, float, int] | None:
        """The n-th frame pushed since the last clear: (preprocessed 3 x size x size, a copy;
        capture time; index), or None once the ring has overwritten it."""
        age = self._serial - 1 - n
        if not 0 <= age < len(self):
            return None
        slot = (self._count - 1 - age) % self.capacity
        return self._data[:, slot].copy(), float(self._times[slot]), int(self._index[slot])

    def push(self, image: np.ndarray, t: float, index: int, order: str = "BGR") -> None:
        """Preprocess one captured H x W x 3 uint8 frame (channel `order`) and store it."""
        newest = self.newest_time
        if newest is not None and t < newest:
            raise ValueError(f"frame times must not go back (got {t} after {newest})")
        if self._count >= self.capacity and self.capacity < MAX_RING:
            oldest = self._times[self._count % self.capacity]
            if oldest > t - self.span - self.interval:  # the ring holds less than a window: grow
                self._grow()
        crop = self.contract.resize_crop(image)
        if order != self.contract.channel_order:
            crop = crop[..., ::-1]
        slot = self._count % self.capacity
        np.multiply(np.subtract(crop.transpose(2, 0, 1), self._mean, dtype=np.float32), self._scale,
                    out=self._data[:, slot])
        self._times[slot], self._index[slot] = t, index
        self._count += 1
        self._serial += 1

    def window(self, t_end: float | None = None) -> tuple[np.ndarray, int] | None:
        """The clip (3 x T x size x size, a copy) of the window ending at `t_end` (default: the
        newest frame) and the index of its newest frame; None while the history is shorter than
        a window or has a gap wider than the frame interval inside it."""
        n = len(self)
        if n == 0:
            return None
        order = (np.arange(n) + (self._count - n)) % self.capacity
        times = self._times[order]
        t_end = times[-1] if t_end is None else float(t_end)
        targets = window_times(t_end, self.contract.frames, self.interval)
        if targets[0] < times[0] - 0.5 * self.interval:
            return None
        idx = pick_frames(times, targets)
        period = float(np.median(np.diff(times))) if n > 1 else 0.0
        if np.max(np.abs(times[idx] - targets)) > max(self.interval, 1.5 * period):
            return None
        slots = order[idx]
        return self._data[:, slots], int(self._index[slots[-1]])

    def _grow(self) -> None:
        n, cap = len(self), min(2 * self.capacity, MAX_RING)
        order = (np.arange(n) + (self._count - n)) % self.capacity
        data = np.zeros((3, cap, *self._data.shape[2:]), np.float32)
        data[:, :n] = self._data[:, order]
        times, index = np.zeros(cap, np.float64), np.zeros(cap, np.int64)
        times[:n], index[:n] = self._times[order], self._index[order]
        self._data, self._times, self._index, self._count = data, times, index, n
