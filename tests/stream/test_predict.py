"""`lvt-edge predict`: window sampling by time, agreement with the report path, timelines, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lvt_edge.cli import main
from lvt_edge.contract import ClipContract
from lvt_edge.data import clip_window, synth
from lvt_edge.errors import LvtEdgeError
from lvt_edge.stream.video import PredictSettings, WindowCutter, predict_videos, window_frame_indices

INTERVAL = 2 / 15  # the demo model's frame interval
CONTRACT = ClipContract(frames=8, size=4, resize=4, labels=synth.LABELS, frame_interval=INTERVAL)
W = CONTRACT.window_seconds


def write_video(path: Path, frames, fps: float) -> Path:
    import cv2

    writer = None
    for image in frames:
        if writer is None:
            h, w = image.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
        writer.write(image)
    writer.release()
    return path


def schedule_frames(spec: str, fps: float):
    from lvt_edge.stream.sources import SourceOptions, open_source

    with open_source(spec, SourceOptions(pace=0, fps=fps)) as source:
        while (frame := source.read()) is not None:
            yield frame.image


def predict_json(tmp_path: Path, *args: str) -> tuple[int, dict]:
    out = tmp_path / "predict.json"
    rc = main(["predict", *map(str, args), "--json", str(out), "-q"])
    return rc, json.loads(out.read_text())


def cut(n: int, fps: float, hop: float | None = None) -> tuple[list, list[int]]:
    """Push n frames whose pixels hold their index; (windows with their frame indices, frames held after each push)."""
    cutter = WindowCutter(CONTRACT, fps, INTERVAL, hop)
    out, held = [], []
    for i in range(n):
        out += cutter.push(i / fps, np.full((1, 1, 3), i, np.int32))
        held.append(len(cutter))
    out += cutter.finish()
    return [(w, clip[:, 0, 0, 0].tolist()) for w, clip in out], held


@pytest.mark.parametrize("fps", [15, 25, 29.97, 30, 60])
def test_a_video_one_window_long_sampled_by_time_is_the_contracts_uniform_sampling(fps):
    for n in range(8, 200):
        times = np.arange(n) / fps
        idx = window_frame_indices(times, 0.0, 8, n / fps / 8)
        assert idx.tolist() == clip_window(CONTRACT, n).tolist(), (n, fps)


@pytest.mark.parametrize("n,fps", [(8, 15), (16, 15), (20, 15), (39, 30), (40, 30), (100, 90)])
def test_short_videos_are_one_window_with_clip_window_frames(n, fps):
    windows, _ = cut(n, fps)
    assert n / fps <= W + W / 4
    assert len(windows) == 1
    w, frames = windows[0]
    assert frames == clip_window(CONTRACT, n).tolist()
    assert (w.start, w.end) == (0.0, pytest.approx(n / fps))


def test_long_videos_are_cut_by_time_as_frames_arrive_with_a_bounded_buffer():
    fps, n = 30, 600  # 20 s
    windows, held = cut(n, fps)
    hop = W / 2
    assert len(windows) == int((n / fps - W) / hop + 1e-9) + 1 == 36
    for k, (w, frames) in enumerate(windows):
        assert w.start == pytest.approx(k * hop) and w.end == pytest.approx(k * hop + W)
        # the frame on screen at each segment middle: 4 frames apart at 30 FPS, the first 2 in
        assert frames == [int(np.floor((w.start + (j + 0.5) * INTERVAL) * fps + 1e-6)) for j in range(8)]
    assert max(held) <= (W + hop) * fps + 2 < 0.1 * n


def test_windows_come_out_as_soon_as_they_are_complete():
    fps = 30
    cutter = WindowCutter(CONTRACT, fps, INTERVAL, 0.5)
    ready_at = {}
    for i in range(150):
        for w, _ in cutter.push(i / fps, np.zeros((1, 1, 3), np.uint8)):
            ready_at[round(w.start, 6)] = i / fps
    assert set(ready_at) == {0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5}  # the ones that fit in 5 s
    for start, t in ready_at.items():
        assert start + W <= t + 1e-9 < max(start + W + 1 / fps, W + 0.25 + 1 / fps) + 1e-9
    assert cutter.finish() == []


def test_predict_reproduces_the_report_top1_on_synthetic_clips(demo_bundle, tmp_path):
    from lvt_edge.data import load_clips, open_clipset
    from lvt_edge.runtime import load_bundle

    clips = tmp_path / "clips"
    synth.generate(clips, split="test", num=44, seed=4242, progress=False)
    rc, doc = predict_json(tmp_path, clips, "--bundle", demo_bundle)
    assert rc == 0
    with load_bundle(demo_bundle) as clf:
        loaded = load_clips(open_clipset(clips, labels=clf.labels), clf.contract, progress=False)
        probs = np.concatenate([clf.predict(loaded.clips[i : i + 8]) for i in range(0, len(loaded), 8)])
        labels = clf.labels
    report = {str(Path(p).resolve()): labels[i] for p, i in zip(loaded.paths, probs.argmax(1))}
    videos = {str(Path(v["path"]).resolve()): v for v in doc["videos"]}
    assert {p: v["label"] for p, v in videos.items()} == report
    for p, prob in zip(loaded.paths, probs.max(1)):
        assert videos[str(Path(p).resolve())]["prob"] == pytest.approx(float(prob), abs=1e-5)
    correct = int((probs.argmax(1) == loaded.labels).sum())
    assert doc["accuracy"] == {"correct": correct, "total": 44, "top1": pytest.approx(100 * correct / 44)}
    assert correct >= 38  # the demo model: ~93 % here
    assert all(len(v["windows"]) == 1 and v["error"] is None and v["fps"] == 15 for v in doc["videos"])


def test_a_long_video_gives_a_timeline_that_follows_the_schedule(demo_bundle, tmp_path, capsys):
    # left then right: the sign of the motion, which reversed or shuffled frames would flip
    video = write_video(tmp_path / "left_right.avi", schedule_frames("synth:left=3,right=3", 30), 30)
    rc, doc = predict_json(tmp_path, video, "--bundle", demo_bundle, "--windows")
    assert rc == 0
    (v,) = doc["videos"]
    assert v["duration_s"] == pytest.approx(6.0) and v["fps"] == 30
    windows = v["windows"]
    assert len(windows) == 10  # starts 0, W/2, ... while they fit in 6 s
    starts = np.array([w["start"] for w in windows])
    assert starts[0] == 0 and np.allclose(np.diff(starts), W / 2)
    assert all(w["end"] - w["start"] == pytest.approx(W) for w in windows) and windows[-1]["end"] <= 6.0
    first = [w for w in windows if w["end"] <= 3.0]
    second = [w for w in windows if w["start"] >= 3.0]
    assert len(first) == len(second) == 4
    assert all(w["label"] == "left" and w["prob"] > 0.6 for w in first)  # measured: 0.81-0.86
    assert all(w["label"] == "right" and w["prob"] > 0.6 for w in second)  # measured: 0.95-0.96
    timeline = re.findall(r"^ +(\d+\.\d\d)-(\d+\.\d\d) s +(\w+) +0\.\d{3}$", capsys.readouterr().out, re.M)
    assert timeline[1] == ("0.53", "1.60", "left") and len(timeline) == 10


def test_frame_folders_bad_files_and_the_exit_code(demo_bundle, tmp_path, capsys):
    import cv2

    root = tmp_path / "set"
    frames = synth.render_clip("left", np.random.default_rng([4242, 1]), frames=16, size=96)
    (root / "left" / "frames").mkdir(parents=True)
    write_video(root / "left" / "clip.avi", frames, 15)
    for i, f in enumerate(frames):
        cv2.imwrite(str(root / "left" / "frames" / f"{i:04d}.png"), f)
    (root / "right").mkdir()
    (root / "right" / "garbage.mp4").write_bytes(b"not a video" * 100)
    (root / "right" / "empty.avi").write_bytes(b"")
    rc, doc = predict_json(tmp_path, root, "--bundle", demo_bundle)
    assert rc == 1
    by_name = {Path(v["path"]).name: v for v in doc["videos"]}
    assert list(by_name) == ["clip.avi", "frames", "empty.avi", "garbage.mp4"]
    assert by_name["clip.avi"]["label"] == by_name["frames"]["label"] == "left"
    assert by_name["frames"]["fps"] is None and len(by_name["frames"]["windows"]) == 1
    for bad in ("empty.avi", "garbage.mp4"):
        assert by_name[bad]["label"] is None and "re-encode" in by_name[bad]["error"]
    assert doc["accuracy"] == {"correct": 2, "total": 2, "top1": 100.0}
    assert "classified 2 of 4 videos" in capsys.readouterr().out

    # with a frame rate the frame folder has a time axis: 16 frames at 5 FPS are 3.2 s, 5 windows
    rc, doc = predict_json(tmp_path, root / "left" / "frames", "--bundle", demo_bundle, "--fps", "5")
    assert rc == 0
    (v,) = doc["videos"]
    assert v["fps"] == 5 and v["duration_s"] == pytest.approx(3.2) and len(v["windows"]) == 5


@pytest.mark.parametrize("args,message", [
    (["--hop", "0"], "--hop must be a positive number"),
    (["--batch", "0"], "--batch must be >= 1"),
    (["--topk", "0"], "--topk must be >= 1"),
    (["--duration", "-1"], "--duration must be a positive number"),
    (["--frame-interval", "nan"], "--frame-interval must be a positive number"),
])
def test_bad_arguments_exit_1_with_the_reason(tmp_path, capsys, args, message):
    (tmp_path / "v.avi").write_bytes(b"")
    assert main(["predict", str(tmp_path / "v.avi"), "--bundle", str(tmp_path / "none"), *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_sources_and_empty_folders_are_named(tmp_path, capsys):
    assert main(["predict", str(tmp_path / "nope.mp4"), "--bundle", str(tmp_path)]) == 1
    assert "nope.mp4 not found" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--bundle", str(tmp_path)]) == 1
    assert "holds no videos" in capsys.readouterr().err


class FakeClassifier:
    """What predict_videos needs of a Classifier; remembers its batch sizes."""

    def __init__(self, contract: ClipContract) -> None:
        self.contract, self.labels, self.batches = contract, contract.labels, []

    def predict(self, clips: np.ndarray) -> np.ndarray:
        assert clips.shape[1:] == self.contract.input_shape and clips.dtype == np.float32
        self.batches.append(len(clips))
        return np.full((len(clips), len(self.labels)), 1 / len(self.labels), np.float32)


def test_an_unknown_frame_interval_asks_for_frame_interval(tmp_path):
    video = write_video(tmp_path / "v.avi", schedule_frames("synth:left=1", 15), 15)
    clf = FakeClassifier(CONTRACT.replace(frame_interval=None))
    with pytest.raises(LvtEdgeError, match="--frame-interval SECONDS"):
        list(predict_videos(clf, [str(video)], PredictSettings()))
    (r,) = predict_videos(clf, [str(video)], PredictSettings(frame_interval=INTERVAL))
    assert r.error is None and len(r.windows) == 1


def test_live_sources_are_read_for_duration_seconds_in_shared_batches(monkeypatch):
    import lvt_edge.stream.video as video
    from lvt_edge.stream.sources import SourceOptions, open_source

    def endless(spec, options):  # a URL that never ends, as fast as it decodes
        source = open_source("synth:up=2", SourceOptions(pace=0, fps=20, loop=True, width=64))
        source.live = True
        return source

    monkeypatch.setattr(video, "open_source", endless)
    clf = FakeClassifier(CONTRACT)
    results = list(predict_videos(clf, ["http://camera/a", "http://camera/b"], PredictSettings(duration=3, batch=4)))
    for r in results:
        assert r.error is None and r.fps == 20 and r.duration_s == pytest.approx(3.0)
        assert [w.start for w in r.windows] == pytest.approx([k * W / 2 for k in range(4)])
    assert clf.batches == [4, 4]  # windows of consecutive videos share batches


def test_the_predict_modules_never_import_torch():
    code = textwrap.dedent("""
        import sys
        class NoTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is blocked")
        sys.meta_path.insert(0, NoTorch())
        import lvt_edge.stream.video, lvt_edge.commands.predict
        from lvt_edge.cli import build_parser
        build_parser("predict")
        bad = [m for m in sys.modules if m.split(".")[0] == "torch" or m.startswith(("lvt_edge.model", "lvt_edge.export"))]
        assert not bad, bad
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
