"""Where frames come from: cameras, video files, URLs, GStreamer pipelines, Jetson CSI cameras
and a synthetic motion source, behind one small interface.

    source = open_source("0")                       # V4L2 camera 0
    source = open_source("clip.mp4", loop=True)     # a file, played at its own rate
    source = open_source("rtsp://cam/stream")       # an IP camera (RTSP, HTTP MJPEG)
    source = open_source("synth:left=3,zoom_in=3")  # no camera needed
    source.open(); frame = source.read(); source.close()

A `Frame` carries its capture time `t` (seconds; media time for files and the synthetic
source, the monotonic clock for live sources) and its arrival time `wall` (end-to-end latency
starts there). Files and the synthetic source are paced like a camera: a reader that falls
more than a driver's few buffers behind loses frames, and they are counted in `dropped`, as a
camera's would be.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lvt_edge.errors import LvtEdgeError

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
SYNTH_PREFIX = "synth:"
SYNTH_SECONDS = 4.0  # default length of one class in a synthetic schedule
BAD_FRAME_RETRIES = 3  # failed reads in a row that still count as undecodable frames, not a lost stream
DRIVER_BUFFERS = 4  # frames a V4L2 driver or an appsink queues before it drops
JETSON_OPENCV_FIX = (
    "pip's OpenCV wheels are built without GStreamer. On a Jetson use JetPack's OpenCV: make the "
    "venv with `python3 -m venv --system-site-packages VENV`, and inside it `pip uninstall -y "
    "opencv-python opencv-python-headless` so that JetPack's cv2 (python3-opencv) is the one imported; "
    "elsewhere build OpenCV with -DWITH_GSTREAMER=ON. Check with `python -c \"import cv2; "
    "print(cv2.getBuildInformation())\"` (GStreamer: YES)"
)


@dataclass
class Frame:
    """One captured frame: H x W x 3 uint8 BGR, its capture time and its arrival time."""

    image: np.ndarray
    t: float
    wall: float
    index: int


@dataclass(frozen=True)
class SourceOptions:
    """How to open a source. `pace`: playback speed of files and the synthetic source (1 = their
    own rate, like a camera; 0 = as fast as they decode). Timeouts bound opening and reads."""

    loop: bool = False
    pace: float = 1.0
    fps: float | None = None  # synthetic source rate, or the rate of a frame-less stream's clock
    width: int | None = None  # capture size asked of cameras (and the synthetic source's side)
    height: int | None = None
    open_timeout: float = 10.0
    read_timeout: float = 5.0
    seed: int = 0


def gstreamer_available() -> bool:
    """Whether this OpenCV can open GStreamer pipelines (pip's wheels cannot)."""
    import cv2

    m = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(m and m.group(1).upper() == "YES")


def csi_pipeline(sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0,
                 out_width: int | None = None, out_height: int | None = None) -> str:
    """The GStreamer pipeline of a Jetson CSI camera (nvarguscamerasrc), BGR into an appsink."""
    if flip not in range(8):
        raise LvtEdgeError(f"--flip is nvvidconv's flip-method, 0-7 (got {flip})")
    ow, oh = out_width or width, out_height or height
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
        f"nvvidconv flip-method={flip} ! video/x-raw, width={ow}, height={oh}, format=BGRx ! "
        f"videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers={DRIVER_BUFFERS} sync=false"
    )


class Source:
    """A stream of frames. `read()` returns the next Frame, or None when the stream ended
    (`ended` is True) or a read failed (`ended` False: a live source can be reopened)."""

    kind = "source"
    live = False  # a live source is reopened when it fails; files and synth end

    def __init__(self, spec: str, options: SourceOptions) -> None:
        self.spec, self.options = spec, options
        self.fps: float | None = None
        self.dropped = 0  # frames the source lost (late reader, gaps in a camera's timestamps)
        self.bad_frames = 0  # frames that could not be decoded
        self.ended = False
        self._index = 0

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        fps = f", {self.fps:.4g} FPS" if self.fps and not self.live else ""
        return f"{self.kind} {self.spec}{fps}"

    def __enter__(self) -> "Source":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _frame(self, image: np.ndarray, t: float) -> Frame:
        f = Frame(image, t, time.monotonic(), self._index)
        self._index += 1
        return f


class _Pacer:
    """Plays media time at `pace` x real time, like a camera: a frame is due at start + t / pace;
    a reader more than DRIVER_BUFFERS frames late loses the frame (`late` says so)."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self._start: float | None = None

    def wait(self, t: float, period: float) -> bool:
        """Sleep until media time `t` is due; False when the frame is already lost."""
        if self.pace <= 0:
            return True
        now = time.monotonic()
        if self._start is None:
            self._start = now - t / self.pace
        due = self._start + t / self.pace
        if now > due + DRIVER_BUFFERS * period / self.pace:
            return False
        if due > now:
            time.sleep(due - now)
        return True


class CaptureSource(Source):
    """Anything OpenCV's VideoCapture opens: a camera, a file, a URL, a GStreamer pipeline."""

    def __init__(self, spec: str, options: SourceOptions, *, kind: str, target, api: int | None = None) -> None:
        super().__init__(spec, options)
        self.kind, self.target, self.api = kind, target, api
        self.live = kind != "file"
        self._cap = None
        self._names: contextlib.ExitStack | None = None  # keeps a file's OpenCV-safe name alive while open
        self._pacer = _Pacer(options.pace) if kind == "file" else None
        self._t0 = 0.0  # media time offset of the current pass (files with --loop)
        self._pass_frames = 0
        self._last_t: float | None = None
        self._periods: deque[float] = deque(maxlen=60)  # recent frame-to-frame times of a live source
        self._just_skipped = 0  # undecodable frames just before the current one (not drops)

    def open(self) -> None:
        import cv2

        if self.kind in ("gstreamer", "csi") and not gstreamer_available():
            raise LvtEdgeError(f"cannot open the GStreamer pipeline {self.spec!r}: {JETSON_OPENCV_FIX}")
        self.close()
        target = self.target
        if self.kind == "file":  # OpenCV crashes on file names that are not UTF-8: open those via a link
            from lvt_edge.data.decode import opencv_path

            self._names = contextlib.ExitStack()
            target = self._names.enter_context(opencv_path(Path(self.target)))
        api = self.api if self.api is not None else cv2.CAP_ANY
        params = []
        if self.kind == "url":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.options.open_timeout * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.options.read_timeout * 1000)]
        if self.kind == "camera":
            if self.options.width:
                params += [cv2.CAP_PROP_FRAME_WIDTH, int(self.options.width)]
            if self.options.height:
                params += [cv2.CAP_PROP_FRAME_HEIGHT, int(self.options.height)]
        cap = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            self.close()
            raise LvtEdgeError(f"cannot open {self.kind} {self.spec}: {self._open_hint()}")
        self._cap = cap
        self._last_t = None
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0)
        self.fps = fps if 0 < fps < 1000 else (self.fps or None)
        self.ended = False

    def read(self) -> Frame | None:
        if self._cap is None:
            return None
        while True:
            image = self._grab()
            if image is None:
                return None
            if image.ndim != 3 or image.shape[2] != 3 or image.size == 0:
                self.bad_frames += 1
                continue
            t = self._capture_time()
            if self._pacer is not None and not self._pacer.wait(t, 1.0 / (self.fps or 30.0)):
                self.dropped += 1
                continue
            if self.live:
                self._count_gap(t)
            self._last_t = t
            return self._frame(image, t)

    def _grab(self) -> np.ndarray | None:
        """The next decoded image. A live source's failed read is retried at once a few times: a
        frame that does not decode is skipped (and counted); reads that keep failing, or one that
        waited out the read timeout, mean the stream is gone (None)."""
        for attempt in range(BAD_FRAME_RETRIES + 1):
            t0 = time.monotonic()
            ok, image = self._cap.read()
            if ok and image is not None:
                self.bad_frames += attempt
                self._just_skipped = attempt
                return image
            if self.kind == "file":
                return self._next_pass() if self.options.loop and self._pass_frames > 0 else self._end()
            if time.monotonic() - t0 > 0.5 * self.options.read_timeout:
                break
        return None

    def _next_pass(self) -> np.ndarray | None:
        """Start a looped file again; its media time goes on from the end of the last pass."""
        import cv2

        self._t0 += self._pass_frames / self.fps if self.fps else 0.0
        self._pass_frames = 0
        if not self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
            self.open()
        ok, image = self._cap.read()
        return image if ok and image is not None else self._end()

    def _end(self) -> None:
        self.ended = True
        return None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        if self._names is not None:
            self._names.close()
            self._names = None

    def _capture_time(self) -> float:
        if self.kind != "file":
            return time.monotonic()
        self._pass_frames += 1
        if self.fps:
            return self._t0 + (self._pass_frames - 1) / self.fps
        import cv2

        return self._t0 + float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0

    def _count_gap(self, t: float) -> None:
        """A live source's frames the driver lost: gaps of more than 1.5 frame periods, the period
        measured from the stream itself (what a URL or camera declares is often wrong)."""
        if self._last_t is None:
            return
        dt = t - self._last_t
        if len(self._periods) >= 10:
            period = float(np.median(self._periods))
            if period > 0 and dt > 1.5 * period:
                self.dropped += max(0, int(round(dt / period)) - 1 - self._just_skipped)
                return  # a gap is not a period
        self._periods.append(dt)

    def _open_hint(self) -> str:
        if self.kind == "camera":
            return ("no such camera, or it is busy (another program has it open?); list cameras with "
                    "`v4l2-ctl --list-devices` and pass its index or /dev/videoN")
        if self.kind == "url":
            return (f"no answer within {self.options.open_timeout:g} s, or the stream is not a format "
                    "OpenCV's FFmpeg reads (RTSP H.264/H.265, HTTP MJPEG); check the URL in a player "
                    "(`ffplay URL`) and the network")
        if self.kind == "file":
            return "OpenCV cannot decode it; re-encode it, e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`"
        return "check the pipeline with `gst-launch-1.0` (replace appsink by fakesink)"


class SynthSource(Source):
    """Synthetic motion as a camera would see it: one class after another, by a schedule of
    (label, seconds), repeated when `loop` is set. `truth(t)` is the class shown at time t."""

    kind = "synth"

    def __init__(self, spec: str, options: SourceOptions, schedule: list[tuple[str, float]]) -> None:
        super().__init__(spec, options)
        self.schedule = schedule
        self.fps = float(options.fps or 30.0)
        self.size = int(options.width or options.height or 240)
        self._pacer = _Pacer(options.pace)
        self._bounds = np.cumsum([0.0] + [s for _, s in schedule])
        self._scenes: dict[int, object] = {}
        self._rng = None
        self._k = 0

    @property
    def period(self) -> float:
        """Seconds of one pass through the schedule."""
        return float(self._bounds[-1])

    def truth(self, t: float) -> str | None:
        """The class on screen at time t; None past the end of a schedule that does not loop."""
        seg = self._segment(t)
        return None if seg is None else self.schedule[seg[0]][0]

    def open(self) -> None:
        self._rng = np.random.default_rng([self.options.seed, 7])
        self._k, self.ended = 0, False

    def read(self) -> Frame | None:
        from lvt_edge.data import synth

        while True:
            t = self._k / self.fps
            self._k += 1
            seg = self._segment(t)
            if seg is None:
                self.ended = True
                return None
            if not self._pacer.wait(t, 1.0 / self.fps):
                self.dropped += 1
                continue
            i, key, start = seg
            if key not in self._scenes:
                self._scenes = {key: synth.MotionScene(self.schedule[i][0], np.random.default_rng([self.options.seed, key]),
                                                       size=self.size, frames=int(synth.FPS * self.schedule[i][1]))}
            image = self._scenes[key].render((t - start) * synth.FPS, self._rng)
            return self._frame(image, t)

    def _segment(self, t: float) -> tuple[int, int, float] | None:
        """(schedule index, scene key, segment start time) of time t."""
        n = len(self.schedule)
        rep, within = divmod(t, self.period)
        if rep > 0 and not self.options.loop:
            return None
        i = int(np.searchsorted(self._bounds, within, side="right") - 1)
        i = min(i, n - 1)
        return i, int(rep) * n + i, rep * self.period + float(self._bounds[i])


def parse_schedule(text: str) -> list[tuple[str, float]]:
    """`left=3,zoom_in,static=2` -> [(label, seconds)]; empty: every synthetic class in turn."""
    from lvt_edge.data.synth import LABELS

    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        return [(label, SYNTH_SECONDS) for label in LABELS]
    schedule = []
    for item in items:
        label, sep, secs = item.partition("=")
        label = label.strip()
        if label not in LABELS:
            raise LvtEdgeError(f"synth: unknown class {label!r} in {text!r}; the classes are {', '.join(LABELS)}")
        try:
            seconds = float(secs) if sep else SYNTH_SECONDS
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise LvtEdgeError(f"synth: {item!r} needs a positive number of seconds, e.g. {label}=3")
        schedule.append((label, seconds))
    return schedule


def source_kind(spec: str) -> str:
    """camera, file, url, gstreamer or synth, from how a source is written."""
    s = str(spec).strip()
    if s.startswith(SYNTH_PREFIX) or s == "synth":
        return "synth"
    if re.fullmatch(r"\d+", s) or re.fullmatch(r"/dev/video\d+", s):
        return "camera"
    if "!" in s:
        return "gstreamer"
    scheme = s.split("://", 1)[0].lower() if "://" in s else ""
    if scheme in URL_SCHEMES:
        return "url"
    return "file"


def open_source(spec: str, options: SourceOptions | None = None, *, csi: bool = False, sensor_id: int = 0,
                flip: int = 0) -> Source:
    """The Source a spec names (not opened yet). `csi` builds a Jetson CSI camera pipeline instead."""
    import cv2

    options = options or SourceOptions()
    if not (math.isfinite(options.pace) and options.pace >= 0):
        raise LvtEdgeError(f"--pace must be >= 0 (1 = real time, 0 = as fast as possible; got {options.pace})")
    if csi:
        pipeline = csi_pipeline(sensor_id, options.width or 1280, options.height or 720,
                                int(options.fps or 30), flip)
        return CaptureSource(f"csi sensor {sensor_id}", options, kind="csi", target=pipeline, api=cv2.CAP_GSTREAMER)
    spec = str(spec).strip()
    kind = source_kind(spec)
    if kind == "synth":
        return SynthSource(spec, options, parse_schedule(spec.split(":", 1)[1] if ":" in spec else ""))
    if kind == "camera":
        target = int(spec) if spec.isdigit() else spec
        api = cv2.CAP_V4L2 if os.name == "posix" and hasattr(cv2, "CAP_V4L2") else cv2.CAP_ANY
        return CaptureSource(spec, options, kind="camera", target=target, api=api)
    if kind == "gstreamer":
        return CaptureSource(spec, options, kind="gstreamer", target=spec, api=cv2.CAP_GSTREAMER)
    if kind == "url":
        return CaptureSource(spec, options, kind="url", target=spec, api=cv2.CAP_FFMPEG)
    path = Path(spec)
    if not path.is_file():
        raise LvtEdgeError(
            f"source {spec!r} is not a file, a camera index (0, /dev/video0), a URL (rtsp://, http://), "
            "a GStreamer pipeline (with '!') or synth:CLASSES; check the path"
        )
    return CaptureSource(spec, options, kind="file", target=str(path))
