"""Smoothing by time and events with hysteresis."""

from __future__ import annotations

import numpy as np
import pytest

from lvt_edge.errors import LvtEdgeError
from lvt_edge.stream.smooth import EventDetector, Smoother

LABELS = ("a", "b", "c")


def test_ema_weights_by_elapsed_time_not_by_count():
    fast, slow = Smoother("ema", 1.0), Smoother("ema", 1.0)
    one, two = np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    fast.update(one, 0.0)
    slow.update(one, 0.0)
    for k in range(1, 11):  # ten results 0.1 s apart
        f = fast.update(two, k * 0.1)
    s = slow.update(two, 1.0)  # one result 1 s later
    np.testing.assert_allclose(f, s, atol=1e-6)
    assert s[1] == pytest.approx(1 - np.exp(-1), abs=1e-6)


def test_window_mean_forgets_old_results():
    sm = Smoother("window", 0.5)
    sm.update(np.array([1.0, 0, 0]), 0.0)
    sm.update(np.array([0, 1.0, 0]), 0.3)
    np.testing.assert_allclose(sm.update(np.array([0, 1.0, 0]), 0.6), [0, 1, 0])


def run(detector, seq):
    out = []
    for t, p in seq:
        out += [(e.kind, e.label, round(e.t, 2)) for e in detector.update(LABELS, np.asarray(p), t, int(t * 10))]
    return out


def test_event_starts_after_hold_and_ends_after_release():
    d = EventDetector(threshold=0.6, hold=0.5)
    seq = [(t / 10, [0.8, 0.1, 0.1]) for t in range(0, 10)] + [(t / 10, [0.2, 0.7, 0.1]) for t in range(10, 20)]
    assert run(d, seq) == [("start", "a", 0.5), ("end", "a", 1.5), ("start", "b", 1.5)]


def test_a_label_hovering_at_the_threshold_does_not_flicker():
    d = EventDetector(threshold=0.6, hold=0.3)
    seq = [(t / 10, [0.62 if t % 2 else 0.55, 0.3, 0.08]) for t in range(40)]
    events = run(d, seq)
    assert events == [], events  # never 0.3 s on end above the threshold
    d = EventDetector(threshold=0.6, hold=0.3)
    seq = [(t / 10, [0.7, 0.2, 0.1]) for t in range(5)] + [(t / 10, [0.62 if t % 2 else 0.5, 0.4, 0.1]) for t in range(5, 40)]
    assert run(d, seq) == [("start", "a", 0.3)]  # 0.5 stays above the release level (0.45): no end, no restart


def test_close_ends_the_active_event_and_bad_settings_are_refused():
    d = EventDetector(threshold=0.5, hold=0.0)
    run(d, [(0.0, [0.9, 0.05, 0.05])])
    (ev,) = d.close(2.0, 20)
    assert (ev.kind, ev.label, ev.duration) == ("end", "a", 2.0)
    for kw in ({"threshold": float("nan")}, {"threshold": 1.5}, {"hold": -1}, {"threshold": 0.5, "release": 0.7}):
        with pytest.raises(LvtEdgeError):
            EventDetector(**kw)
    with pytest.raises(LvtEdgeError):
        Smoother("median")
