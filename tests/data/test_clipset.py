"""Clip-set layouts, manifests, subsets and content hashes."""

from __future__ import annotations

import json
import os
import shutil
import numpy as np
import pytest

from lvt_edge.data import load_clips, open_clipset
from lvt_edge.errors import LvtEdgeError



def test_class_folders_read_videos_and_frame_folders(class_folders, contract):
    cs = open_clipset(class_folders)
    assert cs.layout == "folders" and cs.labels == ("a", "b", "c") and len(cs) == 7
    assert cs.counts() == {"a": 2, "b": 2, "c": 3}
    loaded = load_clips(cs, contract, progress=False)
    assert loaded.clips.shape == (7, 3, 4, 40, 40) and loaded.clips.dtype == np.float32
    assert sorted(loaded.labels.tolist()) == [0, 0, 1, 1, 2, 2, 2]
    assert loaded.skipped == []
    assert -1.0 <= loaded.clips.min() and loaded.clips.max() <= 1.0


def test_csv_manifest_with_ranges_and_frames(tmp_path, contract, files):
    files.video(tmp_path / "videos" / "x.avi", 20)
    files.frame_folder(tmp_path / "frames" / "y", 8)
    (tmp_path / "list.csv").write_text("path,label,start,end\nvideos/x.avi,a,4,12\nframes/y,b,,\n")
    cs = open_clipset(tmp_path / "list.csv")
    assert cs.layout == "manifest" and cs.labels == ("a", "b") and cs.root == tmp_path
    clip = next(c for c in cs if c.label == "a")
    assert (clip.start, clip.end) == (4, 12)
    from lvt_edge.data import decode_clip

    # 8 frames [4, 12) in 4 uniform segments: middles 1, 3, 5, 7 -> source frames 5, 7, 9, 11
    assert files.frame_ids(decode_clip(clip, contract)) == [5, 7, 9, 11]
    frames_clip = next(c for c in cs if c.label == "b")
    assert frames_clip.is_frames and files.frame_ids(decode_clip(frames_clip, contract)) == [1, 3, 5, 7]


def test_jsonl_manifest_and_folder_with_manifest(tmp_path, files):
    files.video(tmp_path / "x.avi", 10)
    files.video(tmp_path / "z.avi", 10)
    (tmp_path / "manifest.jsonl").write_text(
        json.dumps({"path": "x.avi", "label": "b"}) + "\n\n" + json.dumps({"path": "z.avi", "label": "a", "start": 1}) + "\n")
    cs = open_clipset(tmp_path)  # the folder's manifest wins over reading it as class folders
    assert cs.layout == "manifest" and cs.labels == ("a", "b") and len(cs) == 2


def test_labels_txt_fixes_label_order(class_folders):
    (class_folders / "labels.txt").write_text("c\nb\na\nd\n")
    assert open_clipset(class_folders).labels == ("c", "b", "a", "d")


def test_unknown_labels_are_named(class_folders, contract):
    with pytest.raises(LvtEdgeError, match="not in the label list: c"):
        open_clipset(class_folders, labels=("a", "b"))
    cs = open_clipset(class_folders)
    with pytest.raises(LvtEdgeError, match="does not know: c"):
        load_clips(cs, contract.replace(labels=("a", "b")), progress=False)


@pytest.mark.parametrize("rel", ["../outside.avi", "sub/../../outside.avi", "/etc/passwd", "link/outside.avi"])
def test_manifest_paths_escaping_the_root_are_refused(tmp_path, rel, files):
    root = tmp_path / "root"
    root.mkdir()
    files.video(tmp_path / "outside.avi", 10)
    os.symlink(tmp_path, root / "link")
    (root / "m.csv").write_text(f"{rel},a\n")
    with pytest.raises(LvtEdgeError, match="outside the clip-set root|absolute path"):
        open_clipset(root / "m.csv")


def test_bad_manifest_rows(tmp_path):
    (tmp_path / "m.csv").write_text("x.avi,a,5,2\n")
    with pytest.raises(LvtEdgeError, match="end .* greater than start"):
        open_clipset(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("x.avi\n")
    with pytest.raises(LvtEdgeError, match="columns"):
        open_clipset(tmp_path / "m.csv")
    with pytest.raises(LvtEdgeError, match="not found"):
        open_clipset(tmp_path / "missing")


def test_subset_is_deterministic_and_class_balanced(tmp_path):
    rows = []
    for i in range(30):
        label = "abc"[i % 3] if i < 24 else "a"  # a: 14, b: 8, c: 8
        rows.append(f"v{i}.avi,{label}")
        (tmp_path / f"v{i}.avi").write_bytes(b"clip %d" % i)
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    cs = open_clipset(tmp_path / "m.csv")
    sub = cs.subset(9, seed=3)
    assert sub.counts() == {"a": 3, "b": 3, "c": 3}
    assert sub.clips == cs.subset(9, seed=3).clips
    assert sub.clips != cs.subset(9, seed=4).clips
    assert sorted(cs.subset(20, seed=0).counts().values()) == [6, 7, 7]
    assert cs.subset(29, seed=0).counts() == {"a": 13, "b": 8, "c": 8}  # b and c run out, a fills
    assert cs.subset(100, seed=0) is cs


def test_content_hash_covers_bytes_and_labels_not_order_or_place(tmp_path):
    for name in ("x", "y"):
        (tmp_path / f"{name}.avi").write_bytes(name.encode() * 10)
    (tmp_path / "m.csv").write_text("x.avi,a\ny.avi,b\n")
    h = open_clipset(tmp_path / "m.csv").content_hash
    (tmp_path / "m.csv").write_text("y.avi,b\nx.avi,a\n")
    assert open_clipset(tmp_path / "m.csv").content_hash == h
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("moved"))
    assert open_clipset(moved / "m.csv").content_hash == h
    (tmp_path / "m.csv").write_text("x.avi,b\ny.avi,b\n")
    assert open_clipset(tmp_path / "m.csv").content_hash != h
    (tmp_path / "m.csv").write_text("x.avi,a,0,5\ny.avi,b\n")
    assert open_clipset(tmp_path / "m.csv").content_hash != h
    (tmp_path / "m.csv").write_text("x.avi,a\ny.avi,b\n")
    (tmp_path / "y.avi").write_bytes(b"changed")
    assert open_clipset(tmp_path / "m.csv").content_hash != h


def test_clip_set_without_clips_is_an_error(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("no videos")
    with pytest.raises(LvtEdgeError, match="no clips"):
        open_clipset(tmp_path)


def test_dense_contract_takes_the_middle_window(tmp_path, contract, files):
    from lvt_edge.data import decode_clip

    files.video(tmp_path / "a" / "v.avi", 12)
    dense = contract.replace(sampling="dense", stride=2)  # needs 7 frames; 12 -> start (12 - 7) // 2 = 2
    clip = open_clipset(tmp_path).clips[0]
    assert files.frame_ids(decode_clip(clip, dense)) == [2, 4, 6, 8]
