"""Sources: how a spec is read, the Jetson pipelines, files paced like a camera, synth schedules."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lvt_edge.errors import LvtEdgeError
from lvt_edge.stream import sources as S
from lvt_edge.stream.sources import SourceOptions, csi_pipeline, open_source, parse_schedule, source_kind


@pytest.mark.parametrize("spec,kind", [
    ("0", "camera"), ("/dev/video2", "camera"), ("rtsp://10.0.0.5:554/stream", "url"),
    ("http://cam.local/video.mjpg", "url"), ("HTTPS://cam/x", "url"), ("synth:", "synth"), ("synth:left=2", "synth"),
    ("videotestsrc ! videoconvert ! appsink", "gstreamer"), ("clip.mp4", "file"), ("my video.avi", "file"),
])
def test_source_kind(spec, kind):
    assert source_kind(spec) == kind


def test_csi_pipeline_is_the_jetson_one():
    p = csi_pipeline(sensor_id=1, width=1920, height=1080, fps=30, flip=2, out_width=960, out_height=540)
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM), width=1920, height=1080, framerate=30/1")
    assert "nvvidconv flip-method=2 ! video/x-raw, width=960, height=540, format=BGRx ! videoconvert" in p
    assert p.endswith("appsink drop=true max-buffers=4 sync=false")
    with pytest.raises(LvtEdgeError, match="flip"):
        csi_pipeline(flip=9)


def test_gstreamer_without_gstreamer_says_what_to_do(monkeypatch):
    monkeypatch.setattr(S, "gstreamer_available", lambda: False)
    for src in (open_source("", csi=True), open_source("videotestsrc ! appsink")):
        with pytest.raises(LvtEdgeError, match="--system-site-packages") as e:
            src.open()
        assert "JetPack" in str(e.value)


def test_pip_opencv_is_detected_as_without_gstreamer():
    import cv2

    assert S.gstreamer_available() == ("GStreamer:                   YES" in cv2.getBuildInformation()
                                       or "GStreamer: YES" in " ".join(cv2.getBuildInformation().split()))


def test_bad_specs_are_refused_with_the_fix():
    with pytest.raises(LvtEdgeError, match="camera index"):
        open_source("no_such_clip.mp4")
    with pytest.raises(LvtEdgeError, match="classes are"):
        parse_schedule("left=2,sideways=3")
    with pytest.raises(LvtEdgeError, match="positive number of seconds"):
        parse_schedule("left=0")
    with pytest.raises(LvtEdgeError, match="--pace"):
        open_source("synth:", SourceOptions(pace=-1))
    assert parse_schedule("left=2, up") == [("left", 2.0), ("up", S.SYNTH_SECONDS)]
    assert len(parse_schedule("")) == 11


def test_synth_source_follows_its_schedule_and_loops():
    src = open_source("synth:left=1,up=0.5", SourceOptions(pace=0, fps=20, loop=True, width=64))
    src.open()
    frames = [src.read() for _ in range(70)]
    assert [f.index for f in frames] == list(range(70))
    np.testing.assert_allclose([f.t for f in frames], np.arange(70) / 20)
    assert frames[0].image.shape == (64, 64, 3)
    assert [src.truth(t) for t in (0.0, 0.99, 1.0, 1.49, 1.5, 2.6)] == ["left", "left", "up", "up", "left", "up"]
    once = open_source("synth:left=1", SourceOptions(pace=0, fps=20))
    once.open()
    assert sum(1 for _ in iter(once.read, None)) == 20 and once.ended


def test_a_paced_source_loses_frames_only_when_its_reader_is_late():
    src = open_source("synth:static=3", SourceOptions(pace=1, fps=50, width=32))
    src.open()
    t0 = time.monotonic()
    for _ in range(10):
        src.read()
    assert src.dropped == 0 and time.monotonic() - t0 >= 9 / 50 - 0.01  # real time
    time.sleep(0.5)  # a reader 25 frames late: a camera's driver keeps only a few
    f = src.read()
    assert src.dropped >= 15 and f.t >= 0.6


def test_a_looped_file_keeps_time_going(tmp_path):
    from lvt_edge.data.synth import write_video

    path = tmp_path / "clip.avi"
    write_video(path, np.zeros((5, 32, 32, 3), np.uint8))  # 15 FPS
    src = open_source(str(path), SourceOptions(pace=0, loop=True))
    src.open()
    times = [src.read().t for _ in range(12)]
    np.testing.assert_allclose(times, np.arange(12) / 15)
    src.close()
    src = open_source(str(path), SourceOptions(pace=0))
    src.open()
    assert sum(1 for _ in iter(src.read, None)) == 5 and src.ended


def test_a_file_whose_name_is_not_utf8_plays(tmp_path):
    import os

    from lvt_edge.data.synth import write_video

    write_video(tmp_path / "a.avi", np.zeros((5, 32, 32, 3), np.uint8))
    name = os.path.join(os.fsencode(tmp_path), b"clip\xff.avi")
    os.rename(os.fsencode(tmp_path / "a.avi"), name)
    src = open_source(os.fsdecode(name), SourceOptions(pace=0))  # OpenCV alone segfaults on it
    src.open()
    assert sum(1 for _ in iter(src.read, None)) == 5
    src.close()
