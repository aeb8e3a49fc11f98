"""Stream mode: every captured frame advances one carried state at the model's frame interval."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier
from lvt_edge.stream import FrameRing, LiveStream, SourceOptions, StreamSettings, open_source
from lvt_edge.stream.phases import PhaseScheduler, phases_for

CONTRACT = ClipContract(frames=4, size=32, resize=32, labels=("dark", "bright"), frame_interval=0.1)


class FakeStep(Classifier):
    """A step classifier that records which frame times each state saw; says "bright" when the
    frame is bright."""

    backend = "fake"

    def __init__(self) -> None:
        super().__init__(CONTRACT, precision="fp32")
        self.seen: dict[int, list[float]] = {}
        self.resets: list[int] = []
        self.streams = 1

    def reset(self, streams=None, *, stream=None):
        if stream is not None:
            self.resets.append(stream)
        elif streams is not None:
            self.streams = streams

    def step(self, frame, *, stream=None):
        assert frame.shape == (3, 32, 32) and 0 <= stream < self.streams
        self.seen.setdefault(stream, []).append(float(frame.mean()))
        bright = frame.mean() > 0
        return np.array([0.1, 0.9] if bright else [0.9, 0.1], np.float32)


# -- the schedule ----------------------------------------------------------------------------

def test_a_steady_camera_feeds_every_frame_round_robin():
    interval, fps = 0.1, 40
    k = phases_for(interval, 1 / fps)
    assert k == 4
    sched = PhaseScheduler(interval, k)
    got = [sched.assign(i / fps) for i in range(40)]
    assert [g[0] for g in got] == [i % 4 for i in range(40)]
    assert [g[1] for g in got] == [True] * 4 + [False] * 36  # each state starts once, then carries on


def test_a_gap_restarts_the_phase_that_spans_it():
    sched = PhaseScheduler(0.1, 1, period=0.025)  # a 40 FPS camera, one state
    assert sched.assign(0.0) == (0, True)
    assert sched.assign(0.05) is None  # not due yet: one phase takes one frame per interval
    assert sched.assign(0.1) == (0, False)
    assert sched.assign(0.5) == (0, True)  # 0.4 s since its last frame: it starts over


def test_phases_are_bounded():
    assert phases_for(0.133, 1 / 1000) == 8 and phases_for(0.133, 1.0) == 1 and phases_for(0.1, 0.0) == 1


def test_ring_frames_keep_their_numbers_when_the_ring_grows():
    ring = FrameRing(CONTRACT, capacity=4)
    for i in range(20):
        ring.push(np.full((32, 32, 3), i, np.uint8), t=i * 0.05, index=i)
    assert ring.pushed == 20
    data, t, index = ring.frame(19)
    assert index == 19 and t == pytest.approx(0.95)
    assert ring.frame(20) is None and ring.frame(19 - len(ring)) is None
    assert ring.frame(20 - len(ring))[2] == 20 - len(ring)
    ring.clear()
    assert ring.pushed == 0 and ring.frame(0) is None


# -- the live stream -------------------------------------------------------------------------

def test_every_captured_frame_is_classified_from_a_state_fed_at_the_model_interval():
    clf = FakeStep()
    source = open_source("synth:static=2", SourceOptions(pace=1, fps=30, width=32))  # a camera's pace
    times: dict[int, list[float]] = {}
    with LiveStream(clf, source, StreamSettings(mode="stream", frame_interval=0.1)) as stream:
        messages = []
        end = time.monotonic() + 10
        while not stream.finished and time.monotonic() < end:
            messages += stream.poll(0.05)[0]
    results = [m for m in messages if m["type"] == "classification"]
    assert clf.streams == 3  # 30 FPS, 0.1 s between model frames
    assert len(results) == stream.stats()["frames"] == 60
    for m in results:
        times.setdefault(m["phase"], []).append(m["time"])
    for phase, ts in times.items():
        assert np.allclose(np.diff(ts), 0.1, atol=1e-6), phase  # each state sees the model's spacing
    assert sorted(clf.resets) == [0, 1, 2]


def test_a_window_classifier_is_refused_in_stream_mode():
    class Window(Classifier):
        backend = "fake"

    with pytest.raises(LvtEdgeError, match="step model"):
        LiveStream(Window(CONTRACT, precision="fp32"), settings=StreamSettings(mode="stream"))
    with pytest.raises(LvtEdgeError, match="--phases"):
        StreamSettings(mode="stream", phases=0).check()


@pytest.fixture(scope="module")
def causal_bundle(tmp_path_factory):
    pytest.importorskip("torch")
    from lvt_edge.export import onnx_from_checkpoint
    from lvt_edge.export.pipeline import random_init_checkpoint

    out = tmp_path_factory.mktemp("causal-live")
    onnx_from_checkpoint(random_init_checkpoint("lvt-tiny-causal"), out)
    return out


def test_live_app_stream_mode_runs_the_step_model(causal_bundle, tmp_path, capsys):
    from lvt_edge.commands.live import main

    out = tmp_path / "out.jsonl"
    rc = main(["--bundle", str(causal_bundle), "--mode", "stream", "--source", "synth:left=1,right=1",
               "--headless", "--jsonl", str(out)])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    results = [r for r in rows if r["type"] == "classification"]
    final = rows[-1]
    assert final["final"] and final["frames"] == 60 and len(results) == 60
    assert {r["phase"] for r in results} == {0, 1, 2, 3}  # 30 FPS, the demo's 2/15 s model frames
    assert "frames classified 60" in capsys.readouterr().err
    rc = main(["--bundle", str(causal_bundle), "--mode", "stream", "--backend", "tensorrt", "--source", "synth:left=1",
               "--headless"])
    err = capsys.readouterr().err
    assert rc == 1 and "no fp32 TensorRT engine" in err and f"lvt-edge build {causal_bundle} --target tensorrt" in err
    rc = main(["--bundle", str(causal_bundle), "--mode", "stream", "--backend", "torch", "--source", "synth:left=1",
               "--headless"])
    assert rc == 1 and "classifies windows only" in capsys.readouterr().err
