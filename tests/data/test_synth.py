"""Synthetic motion clips: deterministic bytes, split-dependent, readable, motion-only classes."""

from __future__ import annotations

import numpy as np
import pytest

from lvt_edge.data import decode_clips, open_clipset
from lvt_edge.data import synth
from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import get_config
from lvt_edge.model.checkpoint import contract_for


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_split_other_bytes(tmp_path):
    kw = dict(num=11, seed=7, frames=8, size=48, progress=False)
    a = synth.generate(tmp_path / "a", split="train", **kw).parent
    b = synth.generate(tmp_path / "b", split="train", **kw).parent
    c = synth.generate(tmp_path / "c", split="val", **kw).parent
    assert _files(a) == _files(b)
    assert open_clipset(a).content_hash == open_clipset(b).content_hash != open_clipset(c).content_hash
    videos = [k for k in _files(a) if k.suffix == ".avi"]
    assert len(videos) == 11 and all(_files(a)[k] != _files(c)[k.parent / k.name.replace("train", "val")] for k in videos)


def test_generated_set_reads_with_every_label_and_length(tmp_path):
    manifest = synth.generate(tmp_path / "s", split="calib", num=22, seed=0, frames=20, size=64, progress=False)
    cs = open_clipset(manifest)
    assert cs.labels == synth.LABELS and len(synth.LABELS) >= 10
    assert set(cs.counts().values()) == {2}
    assert open_clipset(manifest.parent).content_hash == cs.content_hash  # folder with manifest
    import cv2

    cap = cv2.VideoCapture(str(cs.clips[0].path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 64
    cap.release()
    contract = contract_for(get_config("lvt-tiny"), cs.labels)
    d = decode_clips(cs, contract, progress=False)
    assert d.frames.shape == (22, 8, 96, 96, 3) and d.skipped == []


def test_classes_differ_only_in_motion():
    """Time-reversed pairs: reversing a 'left' clip gives a 'right'-like clip, so single frames
    carry no class information; the static class does not move at all apart from noise."""
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    left = synth.render_clip("left", rng(), frames=12, size=64).astype(np.float32)
    static = synth.render_clip("static", rng(), frames=12, size=64).astype(np.float32)
    moved = np.abs(left[-1] - left[0]).mean()
    still = np.abs(static[-1] - static[0]).mean()
    assert moved > still + 1.0
    cw = synth.render_clip("rotate_cw", rng(), frames=12, size=64)
    ccw = synth.render_clip("rotate_ccw", rng(), frames=12, size=64)
    assert np.abs(cw[0].astype(int) - ccw[0].astype(int)).mean() < 8  # same start (up to noise)
    assert np.abs(cw[-1].astype(int) - ccw[-1].astype(int)).mean() > np.abs(cw[0].astype(int) - ccw[0].astype(int)).mean()


def test_refuses_a_non_empty_folder_and_bad_arguments(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(LvtEdgeError, match="not empty"):
        synth.generate(tmp_path / "x", split="train", num=2, seed=0, progress=False)
    with pytest.raises(LvtEdgeError, match="unknown split"):
        synth.generate(tmp_path / "y", split="holdout", num=2, seed=0, progress=False)
    assert not (tmp_path / "y").exists()


def test_clips_cli_synth_and_info(tmp_path, capsys):
    from lvt_edge.cli import main

    assert main(["clips", "synth", "--out", str(tmp_path / "s"), "--split", "val", "--num", "11",
                 "--seed", "1", "--frames", "8", "--size", "48"]) == 0
    assert main(["clips", "info", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "11 clips, 11 labels" in out and "content hash: " + open_clipset(tmp_path / "s").content_hash in out
    assert main(["clips", "info", str(tmp_path / "nothing")]) == 1


def test_bad_arguments_are_named_before_anything_is_written(tmp_path):
    for kw, why in ((dict(num=0), "--num must be a whole number >= 1"), (dict(seed=-1), "--seed must be"),
                    (dict(frames=1), "--frames must be"), (dict(size=8), "--size must be"),
                    (dict(frames=100000, size=1024), "GB")):
        args = dict(split="train", num=2, seed=0, progress=False) | kw
        with pytest.raises(LvtEdgeError, match=why):
            synth.generate(tmp_path / "s", **args)
    assert list(tmp_path.iterdir()) == []
    from lvt_edge.cli import main

    assert main(["clips", "synth", "--out", str(tmp_path / "s"), "--split", "val", "--num", "3", "--seed", "-2"]) == 1
    assert main(["clips", "info", str(tmp_path), "--seed", "-1"]) == 1
    assert list(tmp_path.iterdir()) == []


def test_temporary_folders_are_unique_and_a_finished_twin_is_reused(tmp_path, monkeypatch):
    """Two runs into one folder: each writes its own temporary folder; the one that finishes
    second finds the first's complete, identical set and keeps it."""
    kw = dict(split="val", num=3, seed=5, frames=4, size=32, progress=False)
    out = tmp_path / "s"
    real = synth.write_video
    seen = []

    def write_and_race(path, frames):
        tmp = path.parent.parent
        seen.append(tmp)
        if len(seen) == 1:  # meanwhile another run starts, and finishes, into the same folder
            synth.generate(out, **kw)
            assert tmp.exists() and seen[1] != tmp
        real(path, frames)

    monkeypatch.setattr(synth, "write_video", write_and_race)
    first_done = synth.generate(out, **kw)
    assert first_done == out / "manifest.csv" and len(open_clipset(first_done)) == 3
    assert all(not p.exists() for p in seen)  # no temporary folder left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    monkeypatch.setattr(synth, "write_video", real)
    assert synth.generate(out, **kw) == out / "manifest.csv"  # same arguments again: reused
    with pytest.raises(LvtEdgeError, match="not empty"):
        synth.generate(out, **(kw | {"seed": 6}))


def test_a_different_set_finished_first_is_an_error(tmp_path, monkeypatch):
    out = tmp_path / "s"
    real = synth.write_video
    raced = []

    def write_and_race(path, frames):
        if not raced:
            raced.append(path)
            synth.generate(out, split="val", num=2, seed=9, frames=4, size=32, progress=False)
        real(path, frames)

    monkeypatch.setattr(synth, "write_video", write_and_race)
    with pytest.raises(LvtEdgeError, match="not empty"):
        synth.generate(out, split="val", num=3, seed=5, frames=4, size=32, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    assert len(open_clipset(out)) == 2


def test_stale_temporary_folders_of_ours_are_swept(tmp_path):
    import os
    import time

    old, fresh, foreign = tmp_path / ".x.partial-1", tmp_path / ".y.partial-2", tmp_path / ".z.partial-3"
    for d in (old, fresh, foreign):
        (d / "left").mkdir(parents=True)
    for d in (old, fresh):
        (d / synth.PARTIAL_MARK).touch()
    long_ago = time.time() - 2 * 24 * 3600
    for p in (old, old / "left", old / synth.PARTIAL_MARK, foreign, foreign / "left"):
        os.utime(p, (long_ago, long_ago))
    synth.generate(tmp_path / "s", split="val", num=1, seed=0, frames=4, size=32, progress=False)
    assert not old.exists() and fresh.exists() and foreign.exists()
