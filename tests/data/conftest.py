"""Tiny clip sets written on the fly: videos whose frame i is filled with grey level 10 * i, so a
decoded frame tells which source frame it came from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lvt_edge.contract import ClipContract
from lvt_edge.data.synth import write_video

SIZE = 40


def counting_frames(n: int, size: int = SIZE) -> np.ndarray:
    return np.stack([np.full((size, size, 3), 10 * i, np.uint8) for i in range(n)])


def frame_ids(frames_thwc: np.ndarray) -> list[int]:
    """Which source frame each decoded frame was (inverse of counting_frames, JPEG-tolerant)."""
    return [int(round(float(f.mean()) / 10)) for f in frames_thwc]


def write_counting_video(path: Path, n: int) -> Path:
    write_video(path, counting_frames(n))
    return path


def write_frame_folder(folder: Path, n: int) -> Path:
    import cv2

    folder.mkdir(parents=True)
    for i, f in enumerate(counting_frames(n)):
        cv2.imwrite(str(folder / f"img_{i:05d}.png"), f)
    return folder


class ClipFiles:
    """The helpers above, handed to tests as a fixture (tests cannot import conftest)."""

    counting_frames = staticmethod(counting_frames)
    frame_ids = staticmethod(frame_ids)
    video = staticmethod(write_counting_video)
    frame_folder = staticmethod(write_frame_folder)


@pytest.fixture
def files() -> type[ClipFiles]:
    return ClipFiles


@pytest.fixture
def contract() -> ClipContract:
    return ClipContract(frames=4, size=SIZE, resize=SIZE, labels=("a", "b", "c"))


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """3 classes x 2 clips: videos, plus one frame folder in class c."""
    root = tmp_path / "set"
    for label in "abc":
        write_counting_video(root / label / "v1.avi", 12)
        write_counting_video(root / label / "v2.avi", 12)
    write_frame_folder(root / "c" / "frames_clip", 9)
    return root
