"""Windows by capture time: the same span at any camera rate, each frame preprocessed once."""

from __future__ import annotations

import numpy as np
import pytest

from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.stream.window import FrameRing, pick_frames, window_times

CONTRACT = ClipContract(frames=8, size=32, resize=32, labels=("a",), frame_interval=2 / 15)


def grey(i: int) -> np.ndarray:
    return np.full((48, 64, 3), i % 256, np.uint8)


def frame_ids(clip: np.ndarray) -> list[int]:
    """The grey level (= frame number) of each frame of a preprocessed window."""
    return [int(round((clip[0, k, 0, 0] * 0.5 + 0.5) * 255)) for k in range(clip.shape[1])]


@pytest.mark.parametrize("fps", [15, 30, 60, 24])
def test_a_window_spans_the_trained_time_at_any_camera_rate(fps):
    ring = FrameRing(CONTRACT)
    for i in range(3 * fps):
        ring.push(grey(i), i / fps, i)
    clip, newest = ring.window()
    ids = frame_ids(clip)
    times = np.asarray(ids) / fps
    assert newest == ids[-1] == 3 * fps - 1
    targets = window_times(times[-1], 8, 2 / 15)
    assert np.max(np.abs(times - targets)) <= 0.5 / fps + 1e-9  # the frame nearest to each target time


def test_dropped_and_jittered_frames_still_give_the_nearest_times():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.025, 0.045, 200))  # ~30 FPS with jitter
    keep = np.sort(rng.choice(200, 150, replace=False))  # a quarter of the frames lost
    ring = FrameRing(CONTRACT)
    for i in keep:
        ring.push(grey(i), t[i], int(i))
    clip, _ = ring.window()
    targets = window_times(t[keep[-1]], 8, 2 / 15)
    want = keep[pick_frames(t[keep], targets)]
    assert frame_ids(clip) == [int(i) % 256 for i in want]
    assert np.max(np.abs(t[want] - targets)) < 0.05


def test_each_frame_is_preprocessed_once_on_arrival(monkeypatch):
    calls = []
    real = ClipContract.resize_crop
    monkeypatch.setattr(ClipContract, "resize_crop", lambda self, f: calls.append(1) or real(self, f))
    ring = FrameRing(CONTRACT)
    for i in range(90):
        ring.push(grey(i), i / 30, i)
        ring.window()
    assert len(calls) == 90


def test_the_ring_grows_to_hold_a_window_then_stops():
    ring = FrameRing(CONTRACT, capacity=10)
    for i in range(600):
        ring.push(grey(i), i / 120, i)  # 120 FPS: one window is ~112 frames
    assert 112 <= ring.capacity <= 256
    assert ring.window() is not None


def test_short_history_and_gaps_give_no_window():
    ring = FrameRing(CONTRACT)
    for i in range(20):  # 0.63 s of a 0.93 s window
        ring.push(grey(i), i / 30, i)
    assert ring.window() is None
    for i in range(20, 60):
        ring.push(grey(i), i / 30 + (2.0 if i >= 50 else 0.0), i)  # a 2 s gap inside the last window
    assert ring.window() is None
    ring.clear()
    assert ring.window() is None and len(ring) == 0


def test_preprocessing_matches_the_contract():
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for _ in range(8)]
    ring = FrameRing(CONTRACT)
    for i, f in enumerate(frames):
        ring.push(f, i * 2 / 15, i)
    clip, _ = ring.window()
    np.testing.assert_allclose(clip, CONTRACT.preprocess(frames, order="BGR"), atol=1e-6)


def test_floor_sampling_of_one_window_is_the_contracts_uniform_sampling():
    fps, interval, n = 15, 2 / 15, 16
    targets = (np.arange(8) + 0.5) * interval
    idx = pick_frames(np.arange(n) / fps, targets, mode="floor")
    np.testing.assert_array_equal(idx, CONTRACT.sample_indices(n))


def test_unknown_frame_interval_asks_for_it():
    with pytest.raises(LvtEdgeError, match="--frame-interval"):
        FrameRing(CONTRACT.replace(frame_interval=None))
    assert FrameRing(CONTRACT.replace(frame_interval=None), frame_interval=0.1).interval == 0.1
    with pytest.raises(LvtEdgeError, match="frame_interval"):
        CONTRACT.replace(frame_interval=float("nan"))
