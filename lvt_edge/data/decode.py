"""Decoding one clip (video file or folder of frames) into the frames a clip contract samples."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from lvt_edge.contract import ClipContract
from lvt_edge.data.clipset import Clip


class BadClip(Exception):
    """A clip that cannot give one model input; the message is the reason (shown to the user)."""


def clip_window(contract: ClipContract, num_frames: int) -> np.ndarray:
    """Indices (into the clip's own frames) of the frames the contract takes from it: uniform
    segments, or for dense sampling the window in the middle of the clip."""
    if num_frames < contract.min_video_frames():
        raise BadClip(f"too short: {num_frames} frames, the contract needs {contract.min_video_frames()}")
    start = 0
    if contract.sampling == "dense":
        start = (num_frames - contract.min_video_frames()) // 2
    return contract.sample_indices(num_frames, start)


def decode_clip(clip: Clip, contract: ClipContract) -> np.ndarray:
    """One clip -> T x size x size x 3 uint8 frames in the contract's channel order.

    Raises BadClip for zero-byte, unreadable, truncated or too-short clips."""
    frames = _frames_from_folder(clip, contract) if clip.is_frames else _frames_from_video(clip, contract)
    if contract.channel_order == "RGB":
        frames = frames[..., ::-1]
    return np.ascontiguousarray(frames)


def _frames_from_folder(clip: Clip, contract: ClipContract) -> np.ndarray:
    import cv2

    files = clip.frame_files()[clip.start:clip.end]
    out = []
    for i in clip_window(contract, len(files)):
        img = read_image(files[i])
        if img is None:
            raise BadClip(f"cannot decode frame {ascii(files[i].name)[1:-1]}")
        out.append(contract.resize_crop(img))
    return np.stack(out)


def read_image(path: Path) -> np.ndarray | None:
    """One image file -> H x W x 3 uint8 BGR, or None when it does not decode. The bytes are read
    by Python, so any file name works (OpenCV's imread crashes on names that are not UTF-8)."""
    import cv2

    try:
        data = np.fromfile(path, np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


@contextlib.contextmanager
def opencv_path(path: Path) -> Iterator[str]:
    """A name of `path` that OpenCV's VideoCapture can open. OpenCV takes UTF-8 text and crashes
    on file names that are not valid UTF-8 (Python keeps their bytes as lone surrogates); such a
    file is opened through a symbolic link (or a copy) with a plain name in a temporary folder."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        yield name
        return
    tmp = Path(tempfile.mkdtemp(prefix="lvt-edge-clip-"))
    try:
        link = tmp / ("clip" + "".join(c for c in path.suffix if c.isascii() and c.isalnum() or c == "."))
        try:
            os.symlink(os.path.abspath(os.fsencode(path)), os.fsencode(link))
        except OSError:
            shutil.copyfile(os.fsencode(path), os.fsencode(link))
        yield str(link)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _frames_from_video(clip: Clip, contract: ClipContract) -> np.ndarray:
    """Decode every frame of the range once (seeking is unreliable across codecs), keeping each
    already resized and cropped so long videos stay small in memory."""
    import cv2

    if not clip.path.is_file():
        raise BadClip("file not found")
    if clip.path.stat().st_size == 0:
        raise BadClip("zero-byte file")
    with opencv_path(clip.path) as name:
        cap = cv2.VideoCapture(name)
        try:
            if not cap.isOpened():
                raise BadClip("cannot open or decode the video")
            declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            start, end = clip.start or 0, clip.end
            kept, n = [], 0
            while end is None or n < end:
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
                if n >= start:
                    kept.append(contract.resize_crop(frame))
                n += 1
        finally:
            cap.release()
    if n == 0:
        raise BadClip("no decodable frames")
    # Containers with an index declare their length; losing more than a few frames to decode
    # errors means the file was cut short (estimated counts of mkv/webm may be off by a little).
    wanted = declared if end is None else min(declared, end)
    if declared > 0 and n < wanted - max(2, wanted // 20):
        raise BadClip(f"truncated: decoded {n} of {wanted} frames")
    if end is not None and n < end:
        raise BadClip(f"video has {n} frames, the manifest asks for frames up to {end}")
    return np.stack([kept[i] for i in clip_window(contract, len(kept))])


def measure_frame_interval(clips, contract: ClipContract, max_clips: int = 16) -> float | None:
    """Seconds between the model frames the contract takes from these video clips (the median
    over up to `max_clips` of them), from the containers' frame rates; None when no clip tells
    (frame folders, or videos without a frame rate)."""
    import cv2

    found = []
    for clip in [c for c in clips if not c.is_frames][:max_clips]:
        with opencv_path(clip.path) as name:
            cap = cv2.VideoCapture(name)
            try:
                fps = float(cap.get(cv2.CAP_PROP_FPS) or 0) if cap.isOpened() else 0.0
                count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
            finally:
                cap.release()
        if not (0 < fps < 1000):
            continue
        if contract.sampling == "dense":
            found.append(contract.stride / fps)
            continue
        frames = (min(count, clip.end) if clip.end is not None else count) - (clip.start or 0)
        if frames >= contract.frames:
            found.append(frames / fps / contract.frames)
    return float(np.median(found)) if found else None
