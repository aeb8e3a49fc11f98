"""Whole videos -> class probabilities: each video decoded once, windows by time, mean over windows.

A video no longer than one window plus half a hop (or of unknown frame rate) is ONE clip sampled
like `lvt-edge report` samples it (`clip_window`: uniform segments over all its frames). A longer
one is covered by windows of `contract.window_seconds` starting every `hop` seconds; the window
starting at s takes the frame on screen at s + (j + 0.5) * frame_interval, j = 0..T-1. Frames
are resized and cropped on arrival and only a sliding buffer of them is kept.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from lvt_edge.contract import ClipContract
from lvt_edge.data.clipset import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_order
from lvt_edge.data.decode import BadClip, clip_window, read_image
from lvt_edge.errors import LvtEdgeError
from lvt_edge.stream.sources import SourceOptions, open_source, source_kind
from lvt_edge.stream.window import pick_frames

EPS = 1e-9  # seconds; frame times and window targets that are equal on paper compare equal


@dataclass(frozen=True)
class PredictSettings:
    """hop: seconds between window starts (None: half a window); frame_interval: overrides the
    contract's; fps: rate of frame folders; duration: seconds read from live sources (URLs)."""

    hop: float | None = None
    batch: int = 8
    frame_interval: float | None = None
    fps: float | None = None
    duration: float = 10.0

    def __post_init__(self) -> None:
        problems = [f"{flag} must be a positive number (got {value})"
                    for flag, value in (("--hop", self.hop), ("--frame-interval", self.frame_interval),
                                        ("--fps", self.fps), ("--duration", self.duration))
                    if value is not None and not (math.isfinite(value) and value > 0)]
        if self.batch < 1:
            problems.append(f"--batch must be >= 1 (got {self.batch})")
        if problems:
            raise LvtEdgeError("; ".join(problems))


@dataclass
class Window:
    """One model input: its time span in the video (end None: unknown) and probabilities."""

    start: float
    end: float | None
    probs: np.ndarray | None = None


@dataclass
class VideoResult:
    path: str
    fps: float | None = None
    duration_s: float | None = None
    windows: list[Window] = field(default_factory=list)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or all(w.probs is not None for w in self.windows)

    @property
    def probs(self) -> np.ndarray | None:
        """Mean of the windows' probabilities; None for a failed video."""
        if self.error is not None or not self.windows:
            return None
        return np.mean([w.probs for w in self.windows], axis=0)

    def topk(self, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
        p = self.probs
        if p is None:
            return []
        return [(labels[i], float(p[i])) for i in np.argsort(-p, kind="stable")[:k]]

    def to_dict(self, labels: Sequence[str], k: int) -> dict[str, Any]:
        top = self.topk(labels, k)
        windows = [{"start": w.start, "end": w.end, "label": labels[int(np.argmax(w.probs))],
                    "prob": float(np.max(w.probs))} for w in self.windows] if self.error is None else []
        return {"path": self.path, "label": top[0][0] if top else None, "prob": top[0][1] if top else None,
                "topk": [list(t) for t in top], "duration_s": self.duration_s, "fps": self.fps,
                "windows": windows, "error": self.error}


def find_videos(specs: Iterable[str]) -> list[str]:
    """Sources -> the videos they name: files, frame folders, videos found recursively in folders
    (sorted), and URLs / other stream specs as they are."""
    found: list[str] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            videos = sorted(_videos_in(path), key=str)
            if not videos:
                raise LvtEdgeError(f"{spec} holds no videos ({' '.join(VIDEO_SUFFIXES)}) and no folders of frames")
            found += [str(v) for v in videos]
        elif path.is_file() or source_kind(spec) != "file":
            found.append(str(spec))
        else:
            raise LvtEdgeError(f"{spec} not found; pass video files, folders of videos or frames, or a URL")
    return found


def is_frame_folder(path: Path) -> bool:
    """A folder holding only images (in name order, they are one video)."""
    entries = [e for e in path.iterdir() if not e.name.startswith(".")]
    return bool(entries) and all(e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES for e in entries)


def _videos_in(folder: Path) -> list[Path]:
    if is_frame_folder(folder):
        return [folder]
    out = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            out += _videos_in(entry)
        elif entry.suffix.lower() in VIDEO_SUFFIXES:
            out.append(entry)
    return out


def window_frame_indices(times: np.ndarray, start: float, frames: int, interval: float) -> np.ndarray:
    """Index into ascending `times` of the frames of the window starting at `start`: the frame on
    screen at the middle of each of its `frames` segments of `interval` seconds."""
    targets = start + (np.arange(frames) + 0.5) * interval
    return pick_frames(times, targets + EPS, mode="floor")


class WindowCutter:
    """Preprocessed frames in, complete windows out (`push`, then `finish` at the end).

    Keeps every frame until the video is known to be longer than one window plus half a hop;
    from then on windows are cut as soon as a frame past their end arrives, and frames no later
    window needs are dropped."""

    def __init__(self, contract: ClipContract, fps: float | None, interval: float | None, hop: float | None) -> None:
        self.contract, self.fps, self.interval = contract, fps, interval
        self.span = None if interval is None else contract.frames * interval
        self.hop = hop if hop is not None else (None if self.span is None else self.span / 2)
        self.sliding = False
        self._limit = math.inf if fps is None or self.span is None else self.span + self.hop / 2
        self._times: deque[float] = deque()
        self._crops: deque[np.ndarray] = deque()
        self._count = 0
        self._next = 0  # number of the next sliding window
        self._last_t = -math.inf

    def push(self, t: float | None, crop: np.ndarray) -> list[tuple[Window, np.ndarray]]:
        """Add one frame (t: seconds from the video's start); the windows it completes."""
        self._times.append(t if t is not None else float(self._count))
        self._crops.append(crop)
        self._count += 1
        if t is not None:
            self._last_t = t
        if not self.sliding and self.fps is not None and self._last_t + 1 / self.fps > self._limit + EPS:
            self.sliding = True
        return self._cut(until=self._last_t) if self.sliding else []

    def __len__(self) -> int:
        """Frames held now."""
        return len(self._times)

    @property
    def duration(self) -> float | None:
        """Seconds of video pushed so far (None: unknown frame rate)."""
        return None if self.fps is None or not self._count else self._last_t + 1 / self.fps

    def finish(self) -> list[tuple[Window, np.ndarray]]:
        """The windows left at the end of the video. Raises BadClip when it cannot give one."""
        if not self._count:
            raise BadClip("no decodable frames")
        if self.sliding:
            return self._cut(until=self.duration)
        idx = clip_window(self.contract, self._count)
        return [(Window(0.0, self.duration), np.stack([self._crops[i] for i in idx]))]

    def _cut(self, until: float) -> list[tuple[Window, np.ndarray]]:
        """The next windows that end by `until`; then drop the frames before the next one's first."""
        out = []
        while True:
            start = self._next * self.hop
            end = start + self.span
            if end > until + EPS:
                break
            idx = window_frame_indices(np.fromiter(self._times, float), start, self.contract.frames, self.interval)
            out.append((Window(start, end), np.stack([self._crops[i] for i in idx])))
            self._next += 1
        first_target = self._next * self.hop + 0.5 * self.interval
        while len(self._times) > 1 and self._times[1] <= first_target + EPS:
            self._times.popleft()
            self._crops.popleft()
        return out


def _images(folder: Path) -> list[Path]:
    """A frame folder's images in the order every clip-set reader uses (natural: 2.jpg before 10.jpg)."""
    return frame_order([p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES], folder)


def _imread(path: Path) -> np.ndarray:
    image = read_image(path)
    if image is None:
        raise BadClip(f"cannot decode frame {path.name}")
    return image


def _frames(item: str, settings: PredictSettings) -> tuple[float | None, Iterator[tuple[float | None, np.ndarray]]]:
    """(frame rate, iterator of (seconds from the start, BGR frame)) of one video; BadClip when it
    cannot be opened."""
    path = Path(item)
    if path.is_dir():
        fps = settings.fps
        return fps, (((None if fps is None else i / fps), _imread(f)) for i, f in enumerate(_images(path)))
    try:
        source = open_source(item, SourceOptions(pace=0))
        source.open()
    except LvtEdgeError as e:
        raise BadClip(str(e)) from None
    return source.fps, _read(source, settings.duration)


def _read(source, duration: float) -> Iterator[tuple[float | None, np.ndarray]]:
    try:
        t0 = None
        while (frame := source.read()) is not None:
            t0 = frame.t if t0 is None else t0
            if source.live and frame.t - t0 >= duration:
                break
            yield (frame.t - t0 if source.fps else None), frame.image
    finally:
        source.close()


def _windows(item: str, contract: ClipContract, interval: float | None, settings: PredictSettings,
             result: VideoResult) -> Iterator[tuple[Window, np.ndarray]]:
    """The windows of one video as T x size x size x 3 uint8 clips in the contract's channel order."""

    def prepare(image: np.ndarray) -> np.ndarray:
        crop = contract.resize_crop(image)  # a view into the resized frame: copy so only the crop is kept
        return np.ascontiguousarray(crop[..., ::-1] if contract.channel_order == "RGB" else crop)

    if Path(item).is_dir() and settings.fps is None:  # no time axis: one window, read only its frames
        files = _images(Path(item))
        yield Window(0.0, None), np.stack([prepare(_imread(files[i])) for i in clip_window(contract, len(files))])
        return
    result.fps, frames = _frames(item, settings)
    cutter = WindowCutter(contract, result.fps, interval, settings.hop)
    for t, image in frames:
        yield from cutter.push(t, prepare(image))
    result.duration_s = cutter.duration
    yield from cutter.finish()


def predict_videos(clf, items: Sequence[str], settings: PredictSettings, *,
                   progress: bool = False) -> Iterator[VideoResult]:
    """Classify each video of `items` (from `find_videos`) with `clf`, in order. Windows of
    consecutive videos share batches of up to `settings.batch`; a video that cannot be decoded
    comes back with `error` set."""
    from lvt_edge.console import bar

    contract = clf.contract
    interval = settings.frame_interval or contract.frame_interval
    if interval is None and (settings.fps is not None or not all(Path(i).is_dir() for i in items)):
        raise LvtEdgeError(
            "the bundle's clip contract does not say how far apart in time the model's frames are "
            "(made before lvt_edge recorded it), so predict cannot cut videos into windows; pass "
            f"--frame-interval SECONDS, e.g. {1 / contract.frames:.3g} when the model's {contract.frames} frames "
            "cover about 1 s of video"
        )
    waiting: list[tuple[Window, np.ndarray]] = []
    pending: deque[VideoResult] = deque()

    def flush() -> None:
        if waiting:
            probs = clf.predict(np.stack([contract.normalize(c) for _, c in waiting]))
            for (w, _), p in zip(waiting, probs):
                w.probs = p
            waiting.clear()

    for item in bar(items, "predicting", "video", enabled=progress):
        result = VideoResult(item)
        pending.append(result)
        try:
            for window, clip in _windows(item, contract, interval, settings, result):
                result.windows.append(window)
                waiting.append((window, clip))
                if len(waiting) >= settings.batch:
                    flush()
        except BadClip as e:
            result.error = str(e) or type(e).__name__
        while pending and pending[0].done:
            yield pending.popleft()
    flush()
    yield from pending


def folder_accuracy(results: Sequence[VideoResult], labels: Sequence[str]) -> dict[str, Any] | None:
    """Top-1 against the name of the folder each classified video sits in, when every one sits in
    a folder named like one of `labels`; else None."""
    classified = [r for r in results if r.error is None]
    truth = [_folder_label(r.path) for r in classified]
    if not classified or any(t not in labels for t in truth):
        return None
    correct = sum(r.topk(labels, 1)[0][0] == t for r, t in zip(classified, truth))
    return {"correct": correct, "total": len(classified), "top1": 100.0 * correct / len(classified)}


def _folder_label(item: str) -> str | None:
    if source_kind(item) != "file":
        return None
    return Path(item).parent.name or None
