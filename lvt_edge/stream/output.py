"""What the live app writes: the annotated frame, the saved video, the JSON lines, the window."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from lvt_edge.errors import LvtEdgeError

MIN_SIDE = 480  # short side of an annotated frame, in pixels


@dataclass
class OverlayState:
    """What the overlay shows; the app updates it from the stream's messages."""

    topk: list = field(default_factory=list)  # [[label, prob], ...]
    event: str | None = None  # the active event's label
    status: str | None = None  # "stalled", "reconnecting" ... (None when all is well)
    fps: float = 0.0
    latency_ms: float | None = None
    e2e_ms: float | None = None


def annotate(image: np.ndarray, state: OverlayState) -> np.ndarray:
    """A copy of the BGR frame with the top-k labels as bars, FPS and latency drawn on it."""
    import cv2

    h, w = image.shape[:2]
    up = max(1, -(-MIN_SIDE // min(h, w)))  # small frames are enlarged so the text stays legible
    out = cv2.resize(image, (w * up, h * up), interpolation=cv2.INTER_LINEAR) if up > 1 else image.copy()
    h, w = out.shape[:2]
    scale = min(w, h) / 600
    thick = max(1, round(scale * 1.5))
    line = int(26 * scale)
    pad = int(8 * scale)
    bar_w = int(min(w * 0.45, 260 * scale))
    rows = len(state.topk) + 1
    panel = out[: pad * 2 + line * rows, : pad * 2 + bar_w]
    panel[:] = (panel * 0.45).astype(np.uint8)  # darken behind the text
    for i, (label, prob) in enumerate(state.topk):
        y = pad + line * i
        colour = (60, 200, 60) if i == 0 else (200, 160, 60)
        cv2.rectangle(out, (pad, y + 3), (pad + int(bar_w * float(prob)), y + line - 3), colour, -1)
        cv2.putText(out, f"{label} {float(prob):.2f}", (pad + 4, y + line - int(8 * scale)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    lat = f"{state.latency_ms:.1f}" if state.latency_ms is not None else "-"
    e2e = f"{state.e2e_ms:.1f}" if state.e2e_ms is not None else "-"
    info = f"{state.fps:.1f} FPS  infer {lat} ms  e2e {e2e} ms"
    cv2.putText(out, info, (pad + 4, pad + line * rows - int(8 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.5 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    if state.event:
        cv2.putText(out, state.event.upper(), (pad, h - pad * 2), cv2.FONT_HERSHEY_SIMPLEX, 0.9 * scale,
                    (60, 220, 255), thick + 1, cv2.LINE_AA)
    if state.status:
        cv2.putText(out, state.status.upper(), (w - int(190 * scale), h - pad * 2), cv2.FONT_HERSHEY_SIMPLEX,
                    0.7 * scale, (40, 40, 230), thick + 1, cv2.LINE_AA)
    return out


class VideoSaver:
    """Annotated frames into an .mp4 (or .avi): written under a temporary name and moved into place
    when closed, so a stopped app leaves a playable file and a killed one no half-written file."""

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".avi", ".mkv", ".mov"):
            raise LvtEdgeError(f"--save {path}: use a .mp4 (or .avi, .mkv, .mov) file name")
        if self.path.is_dir():
            raise LvtEdgeError(f"--save {path} is a folder; give a file name such as {Path(path) / 'live.mp4'}")
        if not os.access(self.path.parent if str(self.path.parent) else ".", os.W_OK):
            raise LvtEdgeError(f"--save {path}: cannot write into {self.path.parent or '.'}; choose a writable folder")
        self.fps = fps if fps and 0 < fps < 1000 else 30.0
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer = None
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            self._size = (image.shape[1], image.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
            self._writer = cv2.VideoWriter(str(self.tmp), fourcc, self.fps, self._size)
            if not self._writer.isOpened():
                self._writer = None
                raise LvtEdgeError(f"OpenCV cannot write {self.path} (no encoder for {self.path.suffix}); try --save out.avi")
        if (image.shape[1], image.shape[0]) != self._size:  # a camera reopened at another size
            image = cv2.resize(image, self._size)
        self._writer.write(image)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file (its index is written here) and move it into place."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self.tmp, self.path)
        return self.path


class JsonLines:
    """One JSON object per line, flushed as written (a crash loses no finished line). `-`: stdout."""

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = str(target)
        if self.target == "-":
            self._f: IO[str] = sys.stdout
        else:
            path = Path(target)
            if path.is_dir():
                raise LvtEdgeError(f"--jsonl {target} is a folder; give a file name such as {path / 'live.jsonl'}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._f = open(path, "w", encoding="utf-8")
            except OSError as e:
                raise LvtEdgeError(f"--jsonl {target}: cannot write it ({e.strerror}); choose a writable path") from e

    def write(self, obj: dict) -> None:
        self._f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not sys.stdout:
            self._f.close()


class Display:
    """An OpenCV window, where the OpenCV build and the machine have a screen."""

    NAME = "lvt-edge live"

    def __init__(self) -> None:
        import cv2

        self.ok = False
        self.reason = ""
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            self.reason = "no display (DISPLAY is not set)"
            return
        try:
            cv2.namedWindow(self.NAME, cv2.WINDOW_NORMAL)
            self.ok = True
        except cv2.error:
            self.reason = ("this OpenCV has no GUI (opencv-python-headless); install opencv-python, "
                           "or JetPack's OpenCV on a Jetson")

    def show(self, image: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc or closed the window."""
        import cv2

        cv2.imshow(self.NAME, image)
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), 27):
            return False
        try:
            return cv2.getWindowProperty(self.NAME, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            return False

    def close(self) -> None:
        import cv2

        if self.ok:
            cv2.destroyAllWindows()
