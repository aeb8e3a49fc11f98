"""Run a causal bundle's step model: one frame in, its probabilities out, the state carried here.

    from lvt_edge.runtime import load_step
    with load_step("lvt-bundle") as clf:
        for image in frames:                                  # H x W x 3 uint8 from OpenCV
            probs = clf.step(clf.prepare(image, order="BGR"))  # (classes,)
        clf.reset()                                           # a new stream (after a gap)

The classifier also answers the shared `predict(clips)`: each clip runs frame by frame from a
zero state of its own (the carried state is untouched), which is the causal clip model's
prediction at the clip's last frame. State shapes and dtypes come from bundle.json's `step`
entry (an fp16 step model carries some state tensors in float16), so nothing here needs torch
or the model config.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier, softmax
from lvt_edge.runtime.files import checked_file


class StepRunner(Classifier):
    """What every backend's step classifier shares: streams carried side by side, frames checked
    and prepared once here, probabilities from `step_logits`. A backend implements `step_logits`,
    `reset`, `state`, `state_bytes` and the clip-wise `_logits` of the shared `predict`."""

    def __init__(self, contract: ClipContract, *, precision: str, source: str, frame_shape: tuple[int, ...],
                 frame_dtype: Any) -> None:
        super().__init__(contract, precision=precision, source=source)
        self._frame_shape = tuple(frame_shape)
        self._frame_dtype = np.dtype(frame_dtype)
        self._streams = 1
        self.frames_seen = 0

    @property
    def streams(self) -> int:
        return self._streams

    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the carried state (state input name -> streams x ...)."""
        raise NotImplementedError

    @property
    def state_bytes(self) -> int:
        raise NotImplementedError

    def reset(self, streams: int | None = None, *, stream: int | None = None) -> None:
        """Start over from zeros (a new stream, or after a gap in one): all streams, or only
        `stream`; `streams` changes how many streams are carried side by side."""
        raise NotImplementedError

    def step_logits(self, frames: np.ndarray, *, stream: int | None = None) -> np.ndarray:
        """Logits of the next frame of each stream (3 x H x W -> (classes,); streams x 3 x H x W ->
        streams x classes), carrying the state on. With `stream`, one frame (3 x H x W) advances
        that stream alone."""
        raise NotImplementedError

    def step(self, frames: np.ndarray, *, stream: int | None = None) -> np.ndarray:
        """Probabilities of the next frame of each stream (see `step_logits`)."""
        return softmax(self.step_logits(frames, stream=stream))

    def prepare(self, image: np.ndarray, *, order: str) -> np.ndarray:
        """One captured H x W x 3 uint8 frame (channel `order`) -> the 3 x size x size step input,
        preprocessed as the contract preprocesses a clip's frames."""
        from lvt_edge.contract import CHANNEL_ORDERS

        if order not in CHANNEL_ORDERS:
            raise LvtEdgeError(f"order must be one of {CHANNEL_ORDERS} (\"BGR\" from OpenCV), got {order!r}")
        crop = self.contract.resize_crop(np.asarray(image))
        if order != self.contract.channel_order:
            crop = crop[..., ::-1]
        return self.contract.normalize(crop[None])[:, 0]

    # -- shared checks -------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:  # its session or device memory is gone
            raise LvtEdgeError("this step classifier is closed; load the bundle again")

    @staticmethod
    def _check_streams(streams: Any) -> int:
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise LvtEdgeError(f"streams must be a whole number >= 1 (got {streams!r})")
        return streams

    def _stream_index(self, stream: int) -> int:
        if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or not 0 <= stream < self._streams:
            raise LvtEdgeError(f"stream must be 0..{self._streams - 1} (got {stream!r})")
        return int(stream)

    def _check_frames(self, frames: Any, streams: int | None = None) -> tuple[np.ndarray, bool]:
        """(frames as streams x frame shape in the model's dtype, whether one frame was given)."""
        streams = self._streams if streams is None else streams
        x = np.asarray(frames)
        single = x.ndim == len(self._frame_shape)
        if single:
            x = x[None]
        if x.ndim != len(self._frame_shape) + 1 or x.shape[1:] != self._frame_shape:
            raise LvtEdgeError(
                f"frames of shape {tuple(np.shape(frames))} do not fit this step model: it takes one frame "
                f"{'x'.join(map(str, self._frame_shape))} per stream; make frames with clf.prepare(image, order='BGR')")
        if len(x) != streams:
            raise LvtEdgeError(f"got frames for {len(x)} streams, the state carries {streams}; "
                               f"call reset({len(x)}) to classify {len(x)} streams side by side")
        if not np.issubdtype(x.dtype, np.floating):
            raise LvtEdgeError(f"frames must be floating point, got {x.dtype}: raw images need clf.prepare(...) first")
        return np.ascontiguousarray(x, dtype=self._frame_dtype), single


class StepClassifier(StepRunner):
    """The step ONNX model of a bundle on ONNX Runtime, with the state of `streams` streams."""

    backend = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, contract: ClipContract, step: dict[str, Any], *,
                 precision: str = "fp32", threads: int | None = None, device: str = "cpu", streams: int = 1) -> None:
        from lvt_edge.runtime.ort import ort_session

        super().__init__(contract, precision=precision, source=str(onnx_path), frame_shape=step["frame"]["shape"],
                         frame_dtype=step["frame"].get("dtype", "float32"))
        self._session = ort_session(onnx_path, threads=threads, device=device, fix="re-export the bundle")
        self.providers = self._session.get_providers()
        self._frame = step["frame"]["name"]
        self._logits_name = step["logits"]
        self._state = [(t["input"], t["output"], tuple(t["shape"])) for t in step["state"]]
        self._dtypes = {t["input"]: np.dtype(t["dtype"]) for t in step["state"]}
        self._check_graph(onnx_path)
        self._outputs = [self._logits_name, *(o for _, o, _ in self._state)]
        self.reset(streams)

    @classmethod
    def from_bundle(cls, workdir: str | os.PathLike, data: dict[str, Any], precision: str = "fp32", *,
                    threads: int | None = None, device: str = "cpu", streams: int = 1) -> "StepClassifier":
        """model.step.onnx for fp32, else the variant `lvt-edge build --precision fp16|int8`
        recorded under step.variants, checked against bundle.json."""
        entry = step_variant(data, precision, workdir)
        rebuild = B.rebuild_command(workdir, precision)
        path = checked_file(workdir, entry["onnx"], entry["sha256"], what=f"{precision} step ONNX file",
                            rebuild=rebuild)
        clf = cls(path, B.bundle_contract(data), entry, precision=precision, threads=threads, device=device,
                  streams=streams)
        problems = B.onnx_metadata_problems(clf.metadata, data, precision)
        if problems:
            clf.close()
            raise LvtEdgeError(f"{path} does not match bundle.json: {'; '.join(problems)}; remake it with `{rebuild}`")
        return clf

    # -- streaming -----------------------------------------------------------------------
    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the carried state as the step model's inputs (ONNX input name -> array)."""
        return {k: v.copy() for k, v in self._carried.items()}

    @property
    def state_bytes(self) -> int:
        return sum(a.nbytes for a in self._carried.values())

    def reset(self, streams: int | None = None, *, stream: int | None = None) -> None:
        if stream is not None:
            for a in self._carried.values():
                a[self._stream_index(stream)] = 0.0
            return
        if streams is not None:
            self._streams = self._check_streams(streams)
        self._carried = self._zeros(self._streams)
        self.frames_seen = 0

    def step_logits(self, frames: np.ndarray, *, stream: int | None = None) -> np.ndarray:
        self._check_open()
        if stream is not None:
            i = self._stream_index(stream)
            x, single = self._check_frames(frames, streams=1)
            if not single:
                raise LvtEdgeError("step(..., stream=i) takes one frame (3 x H x W)")
            logits, nxt = self._run(x, {k: v[i : i + 1] for k, v in self._carried.items()})
            for k, v in nxt.items():
                self._carried[k][i] = v[0]
            self.frames_seen += 1
            return logits[0]
        x, single = self._check_frames(frames)
        logits, self._carried = self._run(x, self._carried)
        self.frames_seen += 1
        return logits[0] if single else logits

    # -- the shared signature ------------------------------------------------------------
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        state = self._zeros(len(batch))
        for t in range(batch.shape[2]):
            logits, state = self._run(np.ascontiguousarray(batch[:, :, t]), state)
        return logits

    def _close(self) -> None:
        del self._session

    # -- internals -----------------------------------------------------------------------
    def _run(self, frames: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        out = self._session.run(self._outputs, {self._frame: frames, **state})
        return np.asarray(out[0], np.float32), {i: o for (i, _, _), o in zip(self._state, out[1:])}

    def _zeros(self, streams: int) -> dict[str, np.ndarray]:
        return {i: np.zeros((streams, *shape), self._dtypes[i]) for i, _, shape in self._state}

    def _check_graph(self, onnx_path) -> None:
        ins = {i.name: (i.shape, i.type) for i in self._session.get_inputs()}
        outs = {o.name: o.type for o in self._session.get_outputs()}
        want_in = {self._frame: (self._frame_shape, self._frame_dtype),
                   **{i: (s, self._dtypes[i]) for i, _, s in self._state}}
        want_out = {self._logits_name: np.dtype(np.float32), **{o: self._dtypes[i] for i, o, _ in self._state}}
        bad = [n for n, (s, dt) in want_in.items() if n not in ins or len(ins[n][0]) != len(s) + 1
               or any(isinstance(d, int) and d != w for d, w in zip(ins[n][0][1:], s))
               or ins[n][1] != _ort_type(dt)]
        missing = sorted(n for n, dt in want_out.items() if outs.get(n) != _ort_type(dt))
        if bad or missing or len(ins) != len(want_in):
            raise LvtEdgeError(f"{onnx_path} does not have the inputs and outputs bundle.json's step entry "
                               f"describes (inputs {', '.join(bad) or 'ok'}; outputs missing or of another dtype "
                               f"{', '.join(missing) or 'none'}); re-export the bundle")

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._session.get_modelmeta().custom_metadata_map)


def _ort_type(dtype: np.dtype) -> str:
    """ONNX Runtime's name of a tensor type: float32 -> "tensor(float)", float16 -> "tensor(float16)"."""
    return "tensor(float)" if dtype == np.float32 else f"tensor({dtype.name})"


def has_step(data: dict[str, Any]) -> bool:
    """Whether a bundle (its bundle.json as read) has a step model, i.e. its model is causal."""
    return bool(data.get("step"))


def step_variant(data: dict[str, Any], precision: str, workdir: str | os.PathLike = "WORKDIR") -> dict[str, Any]:
    """The `step` entry of bundle.json for `precision` (fp32: the entry itself; else its variant,
    which names its own file and the dtypes of its frame and state), with a fix-it error when
    that precision was not built."""
    if precision not in B.PRECISIONS:
        raise LvtEdgeError(f"unknown precision {precision!r}; choose one of {', '.join(B.PRECISIONS)}")
    if not has_step(data):
        name = (data.get("model_config") or {}).get("name", "this model")
        raise LvtEdgeError(
            f"the bundle in {workdir} has no step model: {name} is not causal, so it classifies windows only. "
            "Stream with a causal model: train one (`lvt-edge train --model lvt-tiny-causal ...`) and export it")
    step = data["step"]
    if precision == "fp32":
        return step
    entry = (step.get("variants") or {}).get(precision)
    if entry is None:
        built = ", ".join(["fp32", *(step.get("variants") or {})])
        raise LvtEdgeError(f"the bundle in {workdir} has no {precision} step model (built: {built}); make it with "
                           f"`lvt-edge build {workdir} --precision {precision}`")
    base = [(t["name"], t["input"], t["output"], tuple(t["shape"])) for t in step["state"]]
    own = [(t.get("name"), t.get("input"), t.get("output"), tuple(t.get("shape") or ())) for t in entry["state"]]
    stale = entry.get("fp32_sha256") not in (None, step["sha256"])
    if stale or own != base or entry["frame"].get("shape") != step["frame"]["shape"]:
        raise LvtEdgeError(f"the {precision} step model in bundle.json was built from another {step['onnx']} than "
                           f"the one the bundle has now; remake it with `{B.rebuild_command(workdir, precision)}`")
    return {**step, **entry}


def step_calibration_inputs(clf: StepClassifier, clips: np.ndarray, *,
                            warmup: int | None = None) -> dict[str, np.ndarray]:
    """Calibration inputs of the step model with the states real streams carry, not zeros.

    Each clip (N x 3 x T x H x W, preprocessed by the contract) runs frame by frame from zeros;
    the step's inputs at frames `warmup`..T-1 (default T // 2, so most states hold several
    frames) are returned as ONNX input name -> N * (T - warmup) x ... arrays, for a quantizer
    that takes a dict of inputs. The classifier's own carried state is untouched.
    """
    x = np.asarray(clips, np.float32)
    if x.ndim != 5 or x.shape[1] != 3 or tuple(x.shape[3:]) != clf._frame_shape[1:]:
        raise LvtEdgeError(f"calibration clips must be N x 3 x T x {clf._frame_shape[1]} x {clf._frame_shape[2]}, "
                           f"got {x.shape}")
    t = x.shape[2]
    warmup = t // 2 if warmup is None else warmup
    if not 0 <= warmup < t:
        raise LvtEdgeError(f"warmup must be 0..{t - 1} frames (got {warmup})")
    feeds: dict[str, list[np.ndarray]] = {}
    state = clf._zeros(len(x))
    for i in range(t):
        frame = np.ascontiguousarray(x[:, :, i])
        if i >= warmup:
            for k, v in {clf._frame: frame, **state}.items():
                feeds.setdefault(k, []).append(v)
        _, state = clf._run(frame, state)
    return {k: np.concatenate(v) for k, v in feeds.items()}
