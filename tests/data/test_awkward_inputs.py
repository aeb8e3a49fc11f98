"""Clip sets as people really have them: classes without usable clips, file names that are not
UTF-8, spreadsheet-saved manifests, ffmpeg's unpadded frame names."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from lvt_edge.data import BadClipWarning, decode_clip, decode_clips, open_clipset
from lvt_edge.errors import LvtEdgeError


# -- 1. a class never silently drops out of the label list --------------------------------------

def test_class_folder_with_only_unknown_files_is_an_error_naming_it(class_folders):
    (class_folders / "d").mkdir()
    (class_folders / "d" / "clip.mpg").write_bytes(b"\0" * 100)
    (class_folders / "d" / "notes.txt").write_text("x")
    with pytest.raises(LvtEdgeError, match=r"class folder .*/d has no clips: it holds 2 item\(s\).*\.mpg.*\.txt"):
        open_clipset(class_folders)


def test_empty_class_folder_is_an_error(class_folders):
    (class_folders / "d").mkdir()
    with pytest.raises(LvtEdgeError, match=r"/d has no clips: it holds nothing"):
        open_clipset(class_folders)
    (class_folders / "d").rename(class_folders / ".d")  # a leading dot leaves it out
    assert open_clipset(class_folders).labels == ("a", "b", "c")


def test_class_whose_clips_are_all_undecodable_is_an_error_naming_it(class_folders, contract, files):
    for i in range(40):  # plenty of good clips: 2 bad of 42 is under the 5 % allowed
        files.video(class_folders / "ab"[i % 2] / f"more{i}.avi", 6)
    (class_folders / "d").mkdir()
    (class_folders / "d" / "x.mp4").write_text("not a video")
    (class_folders / "d" / "y.mp4").write_text("not a video either")
    cs = open_clipset(class_folders)
    assert cs.labels == ("a", "b", "c", "d")
    with pytest.warns(BadClipWarning), pytest.raises(LvtEdgeError, match=r"class 'd' in .*/d has no usable clip: all 2"):
        decode_clips(cs, contract.replace(labels=cs.labels), max_bad_fraction=0.5, progress=False)


# -- 2. file names that are not UTF-8, manifest encodings ----------------------------------------

NON_UTF8 = b"clip\xff\xfe.avi"


def test_video_with_a_non_utf8_name_decodes(tmp_path, contract, files):
    good = files.video(tmp_path / "a" / "v.avi", 8)
    os.rename(os.fsencode(good), os.fsencode(tmp_path / "a") + b"/" + NON_UTF8)
    files.video(tmp_path / "b" / "w.avi", 8)
    cs = open_clipset(tmp_path, labels=contract.labels)
    clip = next(c for c in cs if c.label == "a")
    assert os.fsencode(clip.path.name) == NON_UTF8
    assert files.frame_ids(decode_clip(clip, contract)) == [1, 3, 5, 7]
    assert len(cs.content_hash) == 64
    from lvt_edge.data import measure_frame_interval

    assert measure_frame_interval([clip], contract) == pytest.approx(8 / 15 / 4)


def test_frames_with_non_utf8_names_decode_and_hash(tmp_path, contract, files):
    folder = files.frame_folder(tmp_path / "a" / "clip", 8)
    for f in sorted(folder.iterdir()):
        os.rename(os.fsencode(f), os.fsencode(folder) + b"/\xe9" + os.fsencode(f.name))
    files.video(tmp_path / "b" / "w.avi", 8)
    cs = open_clipset(tmp_path, labels=contract.labels)
    clip = next(c for c in cs if c.label == "a")
    assert files.frame_ids(decode_clip(clip, contract)) == [1, 3, 5, 7]
    assert len(cs.content_hash) == 64


def test_undecodable_frame_with_non_utf8_name_is_a_bad_clip(tmp_path, contract, files):
    folder = files.frame_folder(tmp_path / "a" / "clip", 4)
    (folder / "img_00001.png").write_bytes(b"")
    os.rename(os.fsencode(folder / "img_00001.png"), os.fsencode(folder) + b"/img_00001\xff.png")
    from lvt_edge.data.decode import BadClip

    with pytest.raises(BadClip, match=r"cannot decode frame img_00001\\udcff.png"):
        decode_clip(open_clipset(tmp_path).clips[0], contract)


def test_class_folder_named_in_another_encoding_is_refused(tmp_path, files):
    files.video(tmp_path / "a" / "v.avi", 8)
    os.rename(os.fsencode(tmp_path / "a"), os.fsencode(tmp_path) + b"/caf\xe9")
    with pytest.raises(LvtEdgeError, match="not valid UTF-8.*rename it"):
        open_clipset(tmp_path)


def test_csv_utf8_with_bom_reads_without_a_phantom_class(tmp_path, files):
    files.video(tmp_path / "x.avi", 8)
    files.video(tmp_path / "ü.avi", 8)
    (tmp_path / "m.csv").write_bytes("path,label\r\nx.avi,café\r\nü.avi,b\r\n".encode("utf-8-sig"))
    (tmp_path / "labels.txt").write_bytes("café\nb\n".encode("utf-8-sig"))
    cs = open_clipset(tmp_path / "m.csv")
    assert cs.labels == ("café", "b") and len(cs) == 2
    (tmp_path / "labels.txt").unlink()
    (tmp_path / "m.jsonl").write_bytes('{"path": "x.avi", "label": "café"}\n'.encode("utf-8-sig"))
    assert open_clipset(tmp_path / "m.jsonl").labels == ("café",)


def test_manifest_in_latin1_is_refused_naming_the_file_and_line(tmp_path, files):
    files.video(tmp_path / "x.avi", 8)
    (tmp_path / "m.csv").write_bytes("path,label\nx.avi,a\nx.avi,café\n".encode("latin-1"))
    with pytest.raises(LvtEdgeError, match=r"m\.csv:3 is not valid UTF-8 .*Save it as UTF-8"):
        open_clipset(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("path,label\nx.avi,a\n", encoding="utf-16")
    with pytest.raises(LvtEdgeError, match="UTF-16; save it as UTF-8"):
        open_clipset(tmp_path / "m.csv")


# -- 3. frame order ------------------------------------------------------------------------------

def _numbered_frames(folder, names):
    import cv2

    folder.mkdir(parents=True)
    for name, grey in names:
        cv2.imwrite(str(folder / name), np.full((40, 40, 3), 10 * grey, np.uint8))


def test_frames_are_read_in_natural_order(tmp_path, contract, files):
    _numbered_frames(tmp_path / "a" / "clip", [(f"{i}.png", i - 1) for i in range(1, 13)])  # ffmpeg's %d
    clip = open_clipset(tmp_path).clips[0]
    assert [f.name for f in clip.frame_files()][:4] == ["1.png", "2.png", "3.png", "4.png"]
    # 12 frames in 4 uniform segments: middles 1, 4, 7, 10 (0-based) -> grey 1, 4, 7, 10
    assert files.frame_ids(decode_clip(clip, contract)) == [1, 4, 7, 10]


def test_ambiguous_frame_names_are_refused(tmp_path, contract):
    _numbered_frames(tmp_path / "a" / "clip", [(f"{i}.png", i) for i in range(1, 9)] + [("01.png", 0)])
    clip = open_clipset(tmp_path).clips[0]
    with pytest.raises(LvtEdgeError, match=r"'01.png' and '1.png' at the same position.*ambiguous"):
        decode_clip(clip, contract)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, never a skipped clip
        with pytest.raises(LvtEdgeError, match="ambiguous"):
            decode_clips(open_clipset(tmp_path, labels=contract.labels), contract, progress=False)


def test_frame_hash_is_independent_of_the_reading_order(tmp_path):
    """Content hashes recorded in existing bundles stay valid: the digest order is the byte order."""
    _numbered_frames(tmp_path / "a" / "clip", [(f"{i}.png", i) for i in (1, 2, 10)])
    import hashlib
    import json

    from lvt_edge.io import sha256_file

    clip = open_clipset(tmp_path).clips[0]
    h = hashlib.sha256()
    for name in ("1.png", "10.png", "2.png"):  # what sorted(paths) gave before natural order
        h.update(name.encode() + b"\0" + bytes.fromhex(sha256_file(clip.path / name)))
    h.update(json.dumps(["a", None, None]).encode())
    assert clip.digest() == h.hexdigest()
