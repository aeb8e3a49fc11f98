"""The clip contract says how it resizes (and old artifacts read as what they were made with);
preprocess takes the frames' channel order explicitly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError


def test_interpolation_is_recorded_serialised_and_validated():
    c = ClipContract(frames=4, size=32, resize=40, labels=("a",))
    assert c.interpolation == "area-linear"
    assert json.loads(c.to_json())["interpolation"] == "area-linear"
    cubic = c.replace(interpolation="cubic")
    assert ClipContract.from_json(cubic.to_json()) == cubic
    with pytest.raises(LvtEdgeError, match="interpolation must be one of"):
        c.replace(interpolation="lanczos")


def test_artifacts_without_the_field_read_as_the_old_behaviour():
    old = ClipContract(labels=("a",)).to_dict()
    del old["interpolation"]
    assert ClipContract.from_dict(old).interpolation == "area-linear"


def test_resize_follows_the_recorded_interpolation():
    import cv2

    rng = np.random.default_rng(0)
    big, small = rng.integers(0, 256, (80, 80, 3), np.uint8), rng.integers(0, 256, (20, 20, 3), np.uint8)
    c = ClipContract(frames=1, size=40, resize=40)
    assert np.array_equal(c.resize_crop(big), cv2.resize(big, (40, 40), interpolation=cv2.INTER_AREA))
    assert np.array_equal(c.resize_crop(small), cv2.resize(small, (40, 40), interpolation=cv2.INTER_LINEAR))
    for name, flag in (("nearest", cv2.INTER_NEAREST), ("cubic", cv2.INTER_CUBIC), ("linear", cv2.INTER_LINEAR)):
        assert np.array_equal(c.replace(interpolation=name).resize_crop(big),
                              cv2.resize(big, (40, 40), interpolation=flag))


def test_preprocess_needs_the_frames_channel_order():
    c = ClipContract(frames=2, size=8, resize=8, channel_order="RGB")
    bgr = np.zeros((2, 8, 8, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV's order
    with pytest.raises(TypeError):
        c.preprocess(bgr)  # no silent guess
    rgb_clip = c.preprocess(bgr, order="BGR")
    assert rgb_clip.shape == (3, 2, 8, 8) and rgb_clip[2].min() == 1.0 and rgb_clip[0].max() == -1.0
    assert np.array_equal(c.preprocess(bgr[..., ::-1], order="RGB"), rgb_clip)
    with pytest.raises(LvtEdgeError, match="order must be one of"):
        c.preprocess(bgr, order="bgr")
