"""The clip contract: how a video becomes the model's input tensor.

Frames per clip, temporal sampling, input size, resize-then-crop policy, mean/std, channel
order and labels live here and nowhere else. The contract is saved with every checkpoint and
artifact (checkpoint JSON, ONNX metadata, bundle JSON) and read back from there, so training,
calibration, evaluation and the live app all preprocess the same way.

This module needs only numpy (and OpenCV for resizing): the runtime imports it without torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lvt_edge.errors import LvtEdgeError

SAMPLING_MODES = ("uniform", "dense")
# How resize_crop scales a frame (OpenCV flags). "area-linear": INTER_AREA to shrink (no
# aliasing), INTER_LINEAR to enlarge; what every artifact without the field was made with.
INTERPOLATIONS = ("area-linear", "linear", "cubic", "nearest")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class ClipContract:
    """What one model input clip is.

    frames:   frames per clip (T).
    size:     side of the square input (H = W).
    resize:   the short side is resized to this before the centre crop of `size`
              (resize >= size; equal means "resize then crop the long side only").
    interpolation: how that resize samples pixels (OpenCV): "area-linear" (default) uses
              INTER_AREA to shrink and INTER_LINEAR to enlarge; "linear", "cubic" and
              "nearest" use that one method both ways. Artifacts written before the field
              existed were made with "area-linear" and read as it.
    sampling: "uniform" takes the middle frame of `frames` equal segments of the video
              (evaluation, calibration, training); "dense" takes every `stride`-th frame
              from a start index (what a live camera stream sees).
    stride:   frame step for dense sampling.
    mean/std: per-channel normalisation of pixels scaled to [0, 1].
    channel_order: channel order of the tensor ("RGB").
    labels:   class names, index = class id.
    frame_interval: seconds between two consecutive model frames, as the model was trained
              (a window spans frames x frame_interval). Live streams sample frames by capture
              time with it, so a window covers the same time whatever the camera's rate.
              None: unknown (older artifacts); live use then asks for it.
    """

    frames: int = 8
    size: int = 112
    resize: int = 112
    sampling: str = "uniform"
    stride: int = 2
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    channel_order: str = "RGB"
    labels: tuple[str, ...] = field(default_factory=tuple)
    frame_interval: float | None = None
    interpolation: str = "area-linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        problems = []
        if self.frames < 1:
            problems.append(f"frames must be >= 1 (got {self.frames})")
        if self.size < 1 or self.resize < self.size:
            problems.append(f"need 1 <= size <= resize (got size {self.size}, resize {self.resize})")
        if self.sampling not in SAMPLING_MODES:
            problems.append(f"sampling must be one of {SAMPLING_MODES} (got {self.sampling!r})")
        if self.stride < 1:
            problems.append(f"stride must be >= 1 (got {self.stride})")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            problems.append("mean and std need 3 values each, std > 0")
        if self.interpolation not in INTERPOLATIONS:
            problems.append(f"interpolation must be one of {INTERPOLATIONS} (got {self.interpolation!r})")
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order must be RGB or BGR (got {self.channel_order!r})")
        if self.frame_interval is not None:
            try:
                interval = math.nan if isinstance(self.frame_interval, bool) else float(self.frame_interval)
            except (TypeError, ValueError):
                interval = math.nan
            if not (math.isfinite(interval) and interval > 0):
                problems.append(f"frame_interval must be a positive number of seconds (got {self.frame_interval!r})")
            else:
                object.__setattr__(self, "frame_interval", interval)
        if len(set(self.labels)) != len(self.labels):
            problems.append("labels must be unique")
        if problems:
            raise LvtEdgeError("invalid clip contract: " + "; ".join(problems))

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"], d["std"], d["labels"] = list(self.mean), list(self.std), list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClipContract":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise LvtEdgeError(
                f"clip contract has unknown fields {sorted(unknown)}; "
                "was it written by a newer lvt_edge? Upgrade lvt_edge to read it."
            )
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> "ClipContract":
        return cls.from_dict(json.loads(s))

    def replace(self, **changes: Any) -> "ClipContract":
        return dataclasses.replace(self, **changes)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def window_seconds(self) -> float | None:
        """Time one model input spans (frames x frame_interval), or None when unknown."""
        return None if self.frame_interval is None else self.frames * self.frame_interval

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one clip tensor: 3 x T x H x W."""
        return (3, self.frames, self.size, self.size)

    # -- temporal sampling ---------------------------------------------------------------
    def min_video_frames(self) -> int:
        """Fewest frames a video needs to give one clip under this contract."""
        if self.sampling == "uniform":
            return self.frames
        return (self.frames - 1) * self.stride + 1

    def sample_indices(self, num_video_frames: int, start: int = 0) -> np.ndarray:
        """Frame indices of one clip taken from a video of `num_video_frames` frames."""
        n = int(num_video_frames)
        if n < self.min_video_frames():
            raise LvtEdgeError(
                f"video has {n} frames, the clip contract needs at least "
                f"{self.min_video_frames()} ({self.frames} frames, {self.sampling} sampling)"
            )
        if self.sampling == "uniform":
            seg = n / self.frames
            return np.minimum(((np.arange(self.frames) + 0.5) * seg).astype(np.int64), n - 1)
        last = start + (self.frames - 1) * self.stride
        if start < 0 or last >= n:
            raise LvtEdgeError(f"dense clip from frame {start} runs past the video end ({n} frames)")
        return start + np.arange(self.frames, dtype=np.int64) * self.stride

    # -- spatial preprocessing -----------------------------------------------------------
    def resize_crop(self, frame: np.ndarray) -> np.ndarray:
        """One H x W x 3 uint8 frame -> size x size x 3 uint8 (short side to `resize`, centre crop)."""
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3:
            raise LvtEdgeError(f"expected an H x W x 3 frame, got shape {frame.shape}")
        h, w = frame.shape[:2]
        scale = self.resize / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        if (nh, nw) != (h, w):
            frame = cv2.resize(frame, (nw, nh), interpolation=self._cv2_interpolation(scale < 1))
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        return frame[top : top + self.size, left : left + self.size]

    def _cv2_interpolation(self, shrinking: bool) -> int:
        import cv2

        if self.interpolation == "area-linear":
            return cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        return {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "nearest": cv2.INTER_NEAREST}[self.interpolation]

    def normalize(self, frames_thwc: np.ndarray) -> np.ndarray:
        """T x size x size x 3 uint8 (already in `channel_order`) -> float32 3 x T x size x size."""
        x = frames_thwc.astype(np.float32) * (1.0 / 255.0)
        x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(3, 0, 1, 2))

    def preprocess(self, frames: Sequence[np.ndarray], *, order: str) -> np.ndarray:
        """`frames` (T x [H x W x 3] uint8 in channel `order`) -> one float32 clip 3 x T x H x W.

        `order` is the frames' own channel order and has no default: "BGR" for frames from
        OpenCV (cv2.VideoCapture, cv2.imread: every frame source in lvt_edge), "RGB" for
        PIL, imageio or torchvision. A different number of frames than `frames` is
        resampled uniformly to the contract.
        """
        if order not in CHANNEL_ORDERS:
            raise LvtEdgeError(f"order must be one of {CHANNEL_ORDERS}: the channel order of the frames "
                               f"passed in (\"BGR\" from OpenCV), got {order!r}")
        if len(frames) == 0:
            raise LvtEdgeError("no frames to preprocess")
        if len(frames) != self.frames:
            idx = np.minimum(
                ((np.arange(self.frames) + 0.5) * len(frames) / self.frames).astype(int),
                len(frames) - 1,
            )
            frames = [frames[i] for i in idx]
        out = np.stack([self.resize_crop(np.asarray(f)) for f in frames])
        if order != self.channel_order:
            out = out[..., ::-1]
        return self.normalize(out)
