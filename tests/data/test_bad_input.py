"""Bad clips are skipped, named and counted until they exceed the allowed fraction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lvt_edge.data import BadClipWarning, clip_window, decode_clips, load_clips, open_clipset
from lvt_edge.data.decode import BadClip
from lvt_edge.errors import LvtEdgeError


def _make_bad(root, files):
    """One clip of each kind of damage, in class folder a."""
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "a" / "empty.mp4").write_bytes(b"")
    (root / "a" / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    files.video(root / "a" / "short.avi", 3)
    full = files.video(root / "a" / "cut.avi", 24).read_bytes()
    (root / "a" / "cut.avi").write_bytes(full[: len(full) // 2])
    return {"empty.mp4": "zero-byte", "garbage.mp4": "cannot open", "short.avi": "too short", "cut.avi": "truncated"}


def _make_good(root, files, n):
    for i in range(n):
        files.video(root / "ab"[i % 2] / f"good{i:03d}.avi", 8)


def test_each_kind_of_damage_is_recognised(tmp_path, files, contract):
    expected = _make_bad(tmp_path, files)
    cs = open_clipset(tmp_path)
    from lvt_edge.data import decode_clip

    for clip in cs:
        with pytest.raises(BadClip, match=expected[clip.path.name]):
            decode_clip(clip, contract)


def test_bad_clips_are_skipped_and_counted_below_the_threshold(tmp_path, files, contract):
    _make_bad(tmp_path, files)
    _make_good(tmp_path, files, 76)  # 4 bad of 80 = 5 %: allowed
    cs = open_clipset(tmp_path, labels=contract.labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = decode_clips(cs, contract, progress=False)
    assert len(d) == 76 and len(d.skipped) == 4
    assert {p.name for p, _ in d.skipped} == {"empty.mp4", "garbage.mp4", "short.avi", "cut.avi"}
    named = [str(w.message) for w in caught if issubclass(w.category, BadClipWarning)]
    assert len(named) == 4 and all("skipping" in m for m in named)
    assert any("cut.avi" in m and "truncated" in m for m in named)


def test_too_many_bad_clips_fail_naming_them(tmp_path, files, contract):
    _make_bad(tmp_path, files)
    _make_good(tmp_path, files, 20)
    cs = open_clipset(tmp_path, labels=contract.labels)
    with pytest.warns(BadClipWarning), pytest.raises(LvtEdgeError, match=r"4 of 24 clips .* more than the allowed 5%.*empty.mp4"):
        load_clips(cs, contract, progress=False)
    with pytest.warns(BadClipWarning):
        assert len(load_clips(cs, contract, max_bad_fraction=0.2, progress=False)) == 20


def test_nothing_left_fails(tmp_path, files, contract):
    _make_bad(tmp_path, files)
    with pytest.warns(BadClipWarning), pytest.raises(LvtEdgeError, match="no usable clips"):
        load_clips(open_clipset(tmp_path, labels=contract.labels), contract, max_bad_fraction=1.0, progress=False)


@pytest.mark.parametrize("n", [4, 5, 8, 9, 31])
def test_uniform_indices_at_clip_boundaries(contract, n):
    idx = clip_window(contract, n)
    assert len(idx) == 4 and idx[0] >= 0 and idx[-1] <= n - 1
    assert np.all(np.diff(idx) >= 1)  # strictly increasing: never a repeated frame when n >= T
    if n == 4:
        assert idx.tolist() == [0, 1, 2, 3]
    if n == 8:
        assert idx.tolist() == [1, 3, 5, 7]


def test_indices_below_the_minimum_length(contract):
    with pytest.raises(BadClip, match="too short: 3 frames"):
        clip_window(contract, 3)
    dense = contract.replace(sampling="dense", stride=3)  # needs (4 - 1) * 3 + 1 = 10
    assert clip_window(dense, 10).tolist() == [0, 3, 6, 9]
    assert clip_window(dense, 11).tolist() == [0, 3, 6, 9]
    assert clip_window(dense, 12).tolist() == [1, 4, 7, 10]
    with pytest.raises(BadClip, match="too short"):
        clip_window(dense, 9)
