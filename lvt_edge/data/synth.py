"""Synthetic motion clips: classes that only the temporal order of frames tells apart.

Each clip shows one textured polygon moving in one of LABELS' ways over a textured
background with static, slightly jittering distractor shapes and sensor noise. Any single
frame could belong to any class (start poses are random), so a model must use motion.
Objects that leave the frame re-enter on the other side and zooms wrap around, so `frames`
can be as long as a streaming test needs while the motion stays the same.

Clips are MJPEG .avi files written by OpenCV's own encoder (no FFmpeg needed); one seed gives
the same bytes on the same OpenCV build. The split name is part of the seed, so train, val
and calib sets made with one seed differ.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import numbers
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from lvt_edge.errors import LvtEdgeError

LABELS = (
    "left", "right", "up", "down", "up_right", "down_left",
    "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out", "static",
)
# Each class played backwards is its partner (static is its own): a free, label-safe augmentation.
REVERSED_PAIRS = (("left", "right"), ("up", "down"), ("up_right", "down_left"),
                  ("rotate_cw", "rotate_ccw"), ("zoom_in", "zoom_out"), ("static", "static"))
SPLITS = ("train", "val", "calib", "test")
DEFAULT_FRAMES = 16  # lvt-tiny's 8 frames at the contract's dense stride 2
DEFAULT_SIZE = 96  # lvt-tiny's input size
FPS = 15
_SHIFT = 4  # fractional bits of polygon vertices
JPEG_QUALITY = 90
MIN_FRAMES, MIN_SIZE = 2, 32
MAX_CLIP_BYTES = 2 << 30  # one clip is rendered in memory before it is written
PARTIAL_MARK = ".lvt_edge_synth_partial"  # inside our temporary folders, so a sweep removes only ours
STALE_SECONDS = 24 * 3600
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1),
               "up_right": (1, -1), "down_left": (-1, 1)}


def check_arguments(*, split: str, num, seed, frames, size) -> None:
    """LvtEdgeError naming every argument of `generate` out of range (`frames`/`size` resolved)."""
    problems = []
    if split not in SPLITS:
        problems.append(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")

    def whole(name: str, value, low: int) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
            problems.append(f"--{name} must be a whole number >= {low} (got {value!r})")
            return False
        return True

    whole("num", num, 1)
    whole("seed", seed, 0)
    sizes_ok = [whole("frames", frames, MIN_FRAMES), whole("size", size, MIN_SIZE)]
    if all(sizes_ok) and frames * size * size * 3 > MAX_CLIP_BYTES:
        problems.append(f"--frames {frames} at --size {size} makes clips of {frames * size * size * 3 / 1e9:.1f} GB "
                        f"in memory (at most {MAX_CLIP_BYTES / 1e9:.1f} GB); use fewer frames or a smaller size")
    if problems:
        raise LvtEdgeError("; ".join(problems))


def generate(out_dir: str | os.PathLike, *, split: str, num: int, seed: int,
             frames: int | None = None, size: int | None = None, progress: bool = True) -> Path:
    """Write `num` class-balanced clips (video files in one folder per label), `manifest.csv`,
    `labels.txt` and `synth.json` into `out_dir`; returns the manifest path.

    The set is written into a temporary folder next to `out_dir` and renamed into place, so
    `out_dir` is either absent or complete. A complete `out_dir` made with the same arguments
    (the same synth.json; e.g. by a run that finished first) is reused; anything else already
    in `out_dir` is an error."""
    from lvt_edge.console import bar

    frames = DEFAULT_FRAMES if frames is None else frames
    size = DEFAULT_SIZE if size is None else size
    check_arguments(split=split, num=num, seed=seed, frames=frames, size=size)
    num, seed, frames, size = int(num), int(seed), int(frames), int(size)
    out = Path(out_dir)
    record = json.dumps(
        {"generator": "lvt_edge.data.synth", "split": split, "num": num, "seed": seed,
         "frames": frames, "size": size, "fps": FPS, "labels": list(LABELS)}, indent=2) + "\n"
    if _reusable(out, record):
        return out / "manifest.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_partials(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        (tmp / PARTIAL_MARK).touch()
        rows = []
        for i in bar(range(num), f"synth {split}", "clip", enabled=progress):
            label = LABELS[i % len(LABELS)]
            rel = f"{label}/{split}_{i:06d}.avi"
            rng = np.random.default_rng([seed, SPLITS.index(split), i])
            write_video(tmp / rel, render_clip(label, rng, frames=frames, size=size))
            rows.append(f"{rel},{label}")
        (tmp / "manifest.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
        (tmp / "labels.txt").write_text("\n".join(LABELS) + "\n")
        (tmp / "synth.json").write_text(record)
        (tmp / PARTIAL_MARK).unlink()
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        _move_into_place(tmp, out, record)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already unless something failed
    return out / "manifest.csv"


def _reusable(out: Path, record: str) -> bool:
    """True when `out` is a complete set made with the same arguments; an error when it holds
    anything else; False when it is absent or empty."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise LvtEdgeError(f"{out} is a file; choose a new folder for the clip set")
    if not any(out.iterdir()):
        return False
    made = out / "synth.json"
    if made.is_file() and made.read_text() == record:
        return True
    raise LvtEdgeError(f"{out} is not empty (and is not a synthetic set made with these arguments); "
                       "choose a new folder so clip sets never mix")


def _move_into_place(tmp: Path, out: Path, record: str) -> None:
    """Rename the finished set to `out`. An empty `out` is replaced; a complete one that another
    run finished first is reused when it is the same set."""
    for _ in range(3):
        try:
            os.rename(tmp, out)  # POSIX replaces an empty folder atomically
            return
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.EACCES, errno.EPERM):
                raise
        if _reusable(out, record):
            return
        with contextlib.suppress(FileNotFoundError):
            out.rmdir()  # empty (where rename does not replace folders): take its place
    raise LvtEdgeError(f"cannot move the new clip set into {out}; is another program using that folder?")


def sweep_stale_partials(parent: Path, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove our temporary folders (`.NAME.partial-*`, marked as ours) in `parent` that have not
    changed for `max_age` seconds: left behind by runs that were killed."""
    removed = []
    now = time.time()
    for d in parent.glob(".*.partial*"):
        if not (d.is_dir() and (d / PARTIAL_MARK).is_file()):
            continue
        try:
            newest = max([d.stat().st_mtime] + [c.stat().st_mtime for c in d.iterdir()])
        except OSError:
            continue
        if now - newest > max_age:
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_video(path: Path, frames: np.ndarray) -> None:
    """T x H x W x 3 uint8 BGR frames -> MJPEG .avi with OpenCV's built-in (deterministic) encoder."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (w, h),
                             [cv2.VIDEOWRITER_PROP_QUALITY, JPEG_QUALITY])
    if not writer.isOpened():
        raise LvtEdgeError(f"OpenCV cannot write MJPEG video {path}; check the OpenCV install (opencv-python-headless)")
    for f in frames:
        writer.write(f)
    writer.release()


def render_clip(label: str, rng: np.random.Generator, *, frames: int, size: int) -> np.ndarray:
    """One clip of class `label`: frames x size x size x 3 uint8 (BGR)."""
    scene = MotionScene(label, rng, size=size, frames=frames)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        out[t] = scene.render(t, rng)
    return out


class MotionScene:
    """One object moving as `label` says over a textured background, drawn at any time.

    `render(t)` takes t in frames of the clips' own rate (FPS; fractional times are fine), so a
    live source at another frame rate shows the same motion per second as the training clips.
    `frames` only centres the object's path on a clip of that length."""

    def __init__(self, label: str, rng: np.random.Generator, *, size: int, frames: int = DEFAULT_FRAMES) -> None:
        import cv2  # noqa: F401  (fail here, not in the middle of a stream)

        if label not in LABELS:
            raise ValueError(f"unknown synthetic label {label!r}")
        self.label, self.size = label, size
        self.background = _texture(rng, size)
        self.distractors = [_distractor(rng, size) for _ in range(rng.integers(1, 4))]
        self.shape = _polygon(rng)
        self.colour, self.marker = _contrasting_colour(rng), _contrasting_colour(rng)
        self.radius = size * rng.uniform(0.16, 0.26)
        self.angle0 = rng.uniform(0, 2 * math.pi)
        self.speed = size * rng.uniform(0.06, 0.09)  # pixels per frame: about one token (14 px) per sampled frame
        # Rotation and zoom move the object's rim by about 1-13 px per sampled frame, near one token:
        # at half these rates their sense was below what the 14-px token grid resolves (cw vs ccw at chance).
        self.spin = math.radians(rng.uniform(9.0, 14.0)) * (1 if label == "rotate_cw" else -1)  # y points down: + is clockwise
        self.zoom = math.log(rng.uniform(1.07, 1.10)) * (1 if label == "zoom_in" else -1)
        self.noise = rng.uniform(2.0, 8.0)
        direction = np.asarray(_DIRECTIONS.get(label, (0, 0)), np.float64)
        self.direction = direction / max(1.0, float(np.linalg.norm(direction)))
        # Start so the default-length path runs through the middle of the frame.
        self.centre = size / 2 + rng.uniform(-0.15, 0.15, 2) * size - self.direction * self.speed * (frames - 1) / 2
        if label == "zoom_in":  # a default-length zoom (x2.8 to x4.2) stays inside _wrap_log's range
            self.radius = size * rng.uniform(0.06, 0.09)
        elif label == "zoom_out":
            self.radius = size * rng.uniform(0.38, 0.44)

    def render(self, t: float, rng: np.random.Generator) -> np.ndarray:
        """The frame at time t (in clip frames): size x size x 3 uint8 BGR, with fresh jitter and noise.

        A zoom cannot go on forever: its radius wraps around once it leaves [6 %, 45 %] of the
        frame (every ~1.6 s), which a training clip never reaches but a long stream does."""
        import cv2

        size, label = self.size, self.label
        img = self.background.copy()
        for d in self.distractors:
            jitter = rng.normal(0, 0.5, 2)
            cv2.fillPoly(img, [_points(d["shape"], d["centre"] + jitter, d["radius"], d["angle"])], d["colour"], cv2.LINE_AA, _SHIFT)
        c = self.centre + self.direction * self.speed * t
        r = self.radius * math.exp(self.zoom * t) if label.startswith("zoom") else self.radius
        r = _wrap_log(r, size * 0.06, size * 0.45)
        a = self.angle0 + self.spin * t if label.startswith("rotate") else self.angle0
        for off in _wrap_offsets(c, r, size):
            cv2.fillPoly(img, [_points(self.shape, c + off, r, a)], self.colour, cv2.LINE_AA, _SHIFT)
            cv2.fillPoly(img, [_points(self.shape[:3] * 0.45 + [0.35, 0.0], c + off, r, a)], self.marker, cv2.LINE_AA, _SHIFT)
        img = img.astype(np.float32) + rng.normal(0, self.noise, img.shape).astype(np.float32)
        return np.clip(img, 0, 255).astype(np.uint8)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour noise plus faint stripes at a random angle."""
    import cv2

    cells = int(rng.integers(3, 9))
    base = rng.uniform(60, 195, (cells, cells, 3)).astype(np.float32)
    img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta, period = rng.uniform(0, math.pi), rng.uniform(6, 20)
    stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * 2 * math.pi / period)
    img += (rng.uniform(5, 18) * stripes)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(rng: np.random.Generator) -> np.ndarray:
    """An irregular, elongated polygon around the origin, radius ~1. Irregular and elongated so
    rotation shows: the long sides sweep across the token grid instead of sliding along themselves."""
    n = int(rng.integers(3, 8))
    angles = (np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * math.pi / n  # spread out: no slivers
    radii = rng.uniform(0.6, 1.0, n)
    stretch = math.sqrt(rng.uniform(1.5, 2.5))  # aspect ratio 1.5-2.5 at the same area
    return np.stack([radii * np.cos(angles) * stretch, radii * np.sin(angles) / stretch], 1)


def _distractor(rng: np.random.Generator, size: int) -> dict:
    return {"shape": _polygon(rng), "centre": rng.uniform(0.1, 0.9, 2) * size,
            "radius": size * rng.uniform(0.04, 0.09), "angle": rng.uniform(0, 2 * math.pi),
            "colour": _contrasting_colour(rng)}


def _contrasting_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    c = rng.uniform(0, 255, 3)
    c[rng.integers(0, 3)] = rng.choice([rng.uniform(0, 40), rng.uniform(215, 255)])
    return tuple(int(x) for x in c)


def _points(shape: np.ndarray, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Polygon vertices rotated, scaled and moved, in OpenCV fixed point (sub-pixel motion)."""
    cos, sin = math.cos(angle), math.sin(angle)
    rot = np.asarray([[cos, -sin], [sin, cos]])
    pts = shape @ rot.T * radius + centre
    return np.round(pts * (1 << _SHIFT)).astype(np.int32)


def _wrap_offsets(centre: np.ndarray, radius: float, size: int) -> list[np.ndarray]:
    """Offsets at which to draw the object so that, on a torus, leaving one side re-enters the other."""
    base = np.mod(centre, size) - centre
    offsets = []
    for dx in (-size, 0, size):
        for dy in (-size, 0, size):
            c = centre + base + (dx, dy)
            if np.all(np.abs(c - size / 2) < size / 2 + radius):
                offsets.append(base + (dx, dy))
    return offsets


def _wrap_log(r: float, lo: float, hi: float) -> float:
    """Keep a zooming radius inside [lo, hi] by wrapping in log space (zooms continue forever)."""
    span = math.log(hi / lo)
    return lo * math.exp(math.fmod(math.log(r / lo), span) % span)
