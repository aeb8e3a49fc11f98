"""Stream mode: which carried state each captured frame advances.

A causal model was trained on frames `frame_interval` seconds apart, so the state it carries
must be fed frames that far apart, while a camera delivers them faster (30 FPS against the
demo's 7.5 model frames a second). Stream mode therefore carries K states ("phases"), K the
captured frames per frame interval: frame n feeds the phase that was fed longest ago, which with
a steady camera is phase n mod K, and every captured frame gets a classification from a state
fed at the model's own rate. A phase whose last frame is more than `GAP_FACTOR` intervals back
(dropped frames, a stall) starts over from zeros, as a window with a gap is not classified.
"""

from __future__ import annotations

import math

from lvt_edge.errors import LvtEdgeError

MAX_PHASES = 8  # states carried at most (memory: phases x the bundle's state_bytes)
GAP_FACTOR = 1.5


def phases_for(interval: float, period: float, max_phases: int = MAX_PHASES) -> int:
    """Captured frames per model frame interval (one phase each), 1..max_phases."""
    if not (period > 0 and math.isfinite(period)):
        return 1
    return max(1, min(max_phases, round(interval / period)))


class PhaseScheduler:
    """Assigns captured frames (by capture time) to the K phases. `period`: the camera's frame
    period (default interval / phases); a phase takes a frame up to half a period early."""

    def __init__(self, interval: float, phases: int, period: float | None = None) -> None:
        if not interval > 0:
            raise LvtEdgeError(f"frame interval must be > 0 seconds (got {interval})")
        if phases < 1:
            raise LvtEdgeError(f"phases must be >= 1 (got {phases})")
        self.interval, self.phases = float(interval), int(phases)
        ok = period is not None and math.isfinite(period) and period > 0
        self.tolerance = 0.5 * (period if ok else self.interval / self.phases)
        self._last: list[float | None] = [None] * self.phases

    def reset(self) -> None:
        self._last = [None] * self.phases

    def assign(self, t: float) -> tuple[int, bool] | None:
        """(phase, start over) for a frame captured at `t`, or None when no phase is due yet
        (frames come faster than phases x their interval)."""
        p = min(range(self.phases), key=lambda i: -math.inf if self._last[i] is None else self._last[i])
        last = self._last[p]
        if last is not None and t - last < self.interval - self.tolerance:
            return None
        self._last[p] = t
        return p, last is None or t - last > GAP_FACTOR * self.interval
