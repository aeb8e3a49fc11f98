"""TensorRT step engines: a causal bundle's step model with the carried state kept on the GPU.

    from lvt_edge.runtime import load_step
    with load_step("lvt-bundle", backend="tensorrt", streams=2) as clf:
        probs = clf.step(frames)                        # streams x 3 x H x W -> streams x classes

The engine's record is checked against this machine as for clip engines (`lvt_edge.runtime.trt`);
frames, streams and the shared `predict` behave as on ONNX Runtime (`lvt_edge.runtime.stream.StepRunner`).
`tensorrt` and the CUDA binding are imported lazily.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.cuda import CudaApi, cuda_api
from lvt_edge.runtime.stream import StepRunner, step_variant
from lvt_edge.runtime.trt import EngineRunner, checked_engine, import_tensorrt, plugin_creator, rebuild_command


@dataclass(frozen=True)
class StepIO:
    """The step model's tensors as bundle.json's `step` entry names them; shapes after the batch axis."""

    frame: str
    frame_shape: tuple[int, ...]
    frame_dtype: str
    logits: str
    state: tuple[tuple[str, str, tuple[int, ...], str], ...]  # (input, output, shape, dtype) per tensor

    @property
    def inputs(self) -> dict[str, tuple[int, ...]]:
        return {self.frame: self.frame_shape, **{i: shape for i, _, shape, _ in self.state}}

    @property
    def outputs(self) -> dict[str, tuple[int | None, ...]]:
        """The logits' class count is the contract's, not the step entry's: None here."""
        return {self.logits: (None,), **{o: shape for _, o, shape, _ in self.state}}


def step_io(step: dict[str, Any]) -> StepIO:
    """`step`: bundle.json's step entry for one precision (`lvt_edge.runtime.stream.step_variant`)."""
    return StepIO(step["frame"]["name"], tuple(step["frame"]["shape"]), step["frame"].get("dtype", "float32"),
                  step["logits"],
                  tuple((t["input"], t["output"], tuple(t["shape"]), t.get("dtype", "float32")) for t in step["state"]))


@dataclass
class _StepBuffers:
    """Memory for `rows` streams: the frame in, the logits out, and two device copies of the state
    (state input name -> pointer): a step reads one and writes the other."""

    rows: int
    frame: np.ndarray  # pinned
    logits: np.ndarray  # pinned
    dev_frame: int
    dev_logits: int
    state: tuple[dict[str, int], dict[str, int]]
    owned: list[tuple[str, Any]] = field(default_factory=list)


class TensorRTStepClassifier(EngineRunner, StepRunner):
    """The step engine of a causal bundle, its state carried on the GPU.

    The state lives in two device buffer sets that take turns as the engine's state inputs and
    outputs, so a step copies only the frames in and the logits out. Stream `i` is row `i` of
    every state tensor; a profile whose minimum exceeds the streams carried gets zero rows
    appended. The surface is `StepRunner`'s, as on ONNX Runtime.
    """

    backend = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike, contract: ClipContract, step: dict[str, Any], *,
                 precision: str = "fp32", plugin: str | os.PathLike | None = None, cuda: str = "auto",
                 trt: Any = None, api: CudaApi | None = None, plugin_creator: tuple[str, str, str] | None = None,
                 streams: int = 1) -> None:
        self._io = step_io(step)
        super().__init__(contract, precision=precision, source=str(engine_path), frame_shape=self._io.frame_shape,
                         frame_dtype=self._io.frame_dtype)
        self._owned = []
        self._live, self._scratch, self._shape_rows = None, None, None
        self.api = api or cuda_api(cuda)
        trt = trt or import_tensorrt()
        try:
            self._open(Path(engine_path), trt, plugin, plugin_creator)
            self._check_io(Path(engine_path), trt)
            self.reset(streams)
        except BaseException:
            self._close()
            raise

    @classmethod
    def from_bundle(cls, workdir: str | os.PathLike, data: dict[str, Any], precision: str = "fp32", *,
                    plugin: str | os.PathLike | None = None, cuda: str = "auto",
                    streams: int = 1) -> "TensorRTStepClassifier":
        """The step engine recorded in bundle.json's step["engines"][precision]."""
        entry = step_variant(data, precision, workdir)
        rebuild = rebuild_command(workdir, precision)
        rec = (data["step"].get("engines") or {}).get(precision)
        if not rec or not rec.get("engine"):
            raise LvtEdgeError(f"the step model has no {precision} TensorRT engine; build one with `{rebuild}`")
        trt = import_tensorrt()
        api = cuda_api(cuda)
        engine, lib = checked_engine(workdir, rec, what=f"{precision} TensorRT step engine", rebuild=rebuild,
                                     tensorrt_version=trt.__version__, api=api, plugin=plugin)
        return cls(engine, B.bundle_contract(data), entry, precision=precision, plugin=lib, trt=trt, api=api,
                   plugin_creator=plugin_creator(rec) if lib else None, streams=streams)

    # -- streaming -----------------------------------------------------------------------
    @property
    def state(self) -> dict[str, np.ndarray]:
        """A copy of the carried state on the host (state input name -> streams x ...): a
        device-to-host copy, for inspection, never made by a step."""
        self._check_open()
        hosts = {inp: self.api.pinned_empty((self._streams, *shape), self._dtypes[inp])
                 for inp, _, shape, _ in self._io.state}
        try:
            for inp, host in hosts.items():
                self.api.memcpy_dtoh_async(host, self._current[inp], self._stream)
            self.api.stream_synchronize(self._stream)
            return {inp: np.array(host) for inp, host in hosts.items()}
        finally:
            for host in hosts.values():
                self.api.free_pinned(host)

    @property
    def state_bytes(self) -> int:
        return self._streams * sum(self._row_bytes.values())

    def reset(self, streams: int | None = None, *, stream: int | None = None) -> None:
        """Start over from zeros (a new stream, or after a gap in one): all streams, or only
        `stream`; `streams` changes how many streams are carried side by side."""
        self._check_open()
        if stream is not None:
            i = self._stream_index(stream)
            for inp, size in self._row_bytes.items():
                self.api.memset_async(self._current[inp] + i * size, 0, size, self._stream)
            return
        if streams is not None:
            if self._check_streams(streams) > self.max_batch:
                raise LvtEdgeError(
                    f"{self.source} carries at most {self.max_batch} streams (its optimisation profile is "
                    f"{self.min_batch}..{self.max_batch}); rebuild the step engine with a batch profile that covers "
                    f"{streams} streams (--batch-profile 1:{streams}:{streams})")
            self._streams = streams
        rows = max(self._streams, self.min_batch)
        if self._live is None or self._live.rows != rows:
            if self._live is not None:
                self._free(self._live.owned)
                self._live = None
            self._live = self._buffers(rows)
        else:
            self._zero(self._live, 0)
        self._parity = 0  # the carried state is in self._live.state[self._parity]
        self.frames_seen = 0

    def step_logits(self, frames: np.ndarray, *, stream: int | None = None) -> np.ndarray:
        """Logits of the next frame of each stream (3 x H x W -> (classes,); streams x 3 x H x W ->
        streams x classes), carrying the state on. With `stream`, one frame (3 x H x W) advances
        that stream alone."""
        self._check_open()
        if stream is not None:
            return self._step_one(self._stream_index(stream), frames)
        x, single = self._check_frames(frames)
        live = self._live
        live.frame[: len(x)] = x
        self.api.memcpy_htod_async(live.dev_frame, live.frame, self._stream)
        self._run_step(live, live.rows, self._parity)
        self._parity = 1 - self._parity
        self.frames_seen += 1
        logits = self._read_logits(live, len(x))
        return logits[0] if single else logits

    # -- the shared signature ------------------------------------------------------------
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        """Each clip frame by frame from zeros, on scratch buffers: the carried state is untouched."""
        n = len(batch)
        rows = max(n, self.min_batch)
        scratch = self._scratch_for(rows)
        self._zero(scratch, 0)
        scratch.frame[n:rows] = 0
        for t in range(batch.shape[2]):
            scratch.frame[:n] = batch[:, :, t]
            self.api.memcpy_htod_async(scratch.dev_frame, scratch.frame[:rows], self._stream)
            self._run_step(scratch, rows, t % 2)
            self.api.stream_synchronize(self._stream)  # before the pinned frame buffer is refilled
        return self._read_logits(scratch, n)

    # -- internals -----------------------------------------------------------------------
    @property
    def _current(self) -> dict[str, int]:
        return self._live.state[self._parity]

    def _check_io(self, engine_path: Path, trt: Any) -> None:
        """The engine's tensors against bundle.json's step entry (names, shapes, dtypes) and one
        streams range for all of its inputs."""
        io, rebuild = self._io, "rebuild the step engine from this bundle's step ONNX"
        inputs, outputs = self._io_names(trt)
        if set(inputs) != set(io.inputs) or set(outputs) != set(io.outputs):
            raise LvtEdgeError(f"{engine_path} has inputs {sorted(inputs)} and outputs {sorted(outputs)}, bundle.json's "
                               f"step entry says inputs {sorted(io.inputs)} and outputs {sorted(io.outputs)}: it is not "
                               f"this bundle's step engine; {rebuild}")
        want = {**io.inputs, **io.outputs, io.logits: (self.contract.num_classes,)}
        batch_dims = set()
        for name, shape in want.items():
            dims = tuple(int(d) for d in self._engine.get_tensor_shape(name))
            if dims[1:] != shape or len(dims) != len(shape) + 1:
                raise LvtEdgeError(f"{engine_path}: {name!r} is {dims}, bundle.json's step entry and contract say "
                                   f"Bx{'x'.join(map(str, shape))}; {rebuild}")
            batch_dims.add(dims[0])
        if len(batch_dims) != 1:
            raise LvtEdgeError(f"{engine_path} has batch axes {sorted(batch_dims)}: the frame and every state tensor "
                               f"need the same one; {rebuild}")
        self._static = batch_dims.pop() != -1
        if self._static:
            self.min_batch = self.max_batch = int(self._engine.get_tensor_shape(io.frame)[0])
        else:
            ranges = {name: tuple(int(s[0]) for s in self._engine.get_tensor_profile_shape(name, 0)) for name in io.inputs}
            if len(set(ranges.values())) != 1:
                raise LvtEdgeError(f"{engine_path}'s optimisation profile gives its inputs different batch ranges "
                                   f"({', '.join(f'{k} {v[0]}..{v[2]}' for k, v in ranges.items())}); the frame and every "
                                   f"state tensor need one streams range; {rebuild}")
            self.min_batch, _, self.max_batch = ranges[io.frame]
            if not 1 <= self.min_batch <= self.max_batch:
                raise LvtEdgeError(f"{engine_path} has an optimisation profile for {self.min_batch}..{self.max_batch} "
                                   f"streams; {rebuild}")
        self._dtypes = {name: self._numpy_dtype(trt, name, engine_path) for name in want}
        if self._dtypes[io.frame] != self._frame_dtype:
            raise LvtEdgeError(f"{engine_path}: the frame {io.frame!r} is {self._dtypes[io.frame]}, bundle.json's step "
                               f"entry says {self._frame_dtype}; {rebuild}")
        for inp, out, _, dtype in io.state:
            if not self._dtypes[inp] == self._dtypes[out] == np.dtype(dtype):
                raise LvtEdgeError(f"{engine_path}: state {inp!r} -> {out!r} is {self._dtypes[inp]} -> "
                                   f"{self._dtypes[out]}, bundle.json's step entry says {dtype}; {rebuild}")
        self._row_bytes = {inp: int(np.prod(shape)) * self._dtypes[inp].itemsize for inp, _, shape, _ in io.state}

    def _buffers(self, rows: int) -> _StepBuffers:
        group: list[tuple[str, Any]] = []
        frame = self._pinned((rows, *self._io.frame_shape), self._dtypes[self._io.frame], group)
        frame[:] = 0
        logits = self._pinned((rows, self.contract.num_classes), self._dtypes[self._io.logits], group)
        state = tuple({inp: self._device(rows * size, group) for inp, size in self._row_bytes.items()} for _ in range(2))
        buffers = _StepBuffers(rows, frame, logits, self._device(frame.nbytes, group),
                               self._device(logits.nbytes, group), state, group)
        self._zero(buffers, 0)
        self._zero(buffers, 1)
        return buffers

    def _scratch_for(self, rows: int) -> _StepBuffers:
        """Buffers for steps outside the carried streams (one stream alone, `predict`), grown on demand."""
        if self._scratch is None or self._scratch.rows < rows:
            if self._scratch is not None:
                self._free(self._scratch.owned)
                self._scratch = None
            self._scratch = self._buffers(rows)
        return self._scratch

    def _zero(self, buffers: _StepBuffers, parity: int) -> None:
        for inp, ptr in buffers.state[parity].items():
            self.api.memset_async(ptr, 0, buffers.rows * self._row_bytes[inp], self._stream)

    def _run_step(self, buffers: _StepBuffers, rows: int, parity: int) -> None:
        """Queue one step of the first `rows` rows of `buffers` (its frame already copied in): state
        set `parity` in, the other set and the logits out."""
        io = self._io
        if not self._static and rows != self._shape_rows:
            for name, shape in io.inputs.items():
                if not self._context.set_input_shape(name, (rows, *shape)):
                    raise RuntimeError(f"TensorRT refused input shape {(rows, *shape)} for {name!r} of {self.source} "
                                       f"(profile streams {self.min_batch}..{self.max_batch})")
            self._shape_rows = rows
        self._bind(io.frame, buffers.dev_frame)
        self._bind(io.logits, buffers.dev_logits)
        for inp, out, _, _ in io.state:
            self._bind(inp, buffers.state[parity][inp])
            self._bind(out, buffers.state[1 - parity][inp])
        self._execute(f"{rows} streams")

    def _step_one(self, i: int, frames: np.ndarray) -> np.ndarray:
        """Stream `i` alone: its state rows go to the scratch buffers and back, device to device."""
        x, single = self._check_frames(frames, streams=1)
        if not single:
            raise LvtEdgeError("step(..., stream=i) takes one frame (3 x H x W)")
        rows = self.min_batch
        scratch = self._scratch_for(rows)
        self._copy_rows(scratch.state[0], 0, self._current, i)
        scratch.frame[0] = x[0]
        self.api.memcpy_htod_async(scratch.dev_frame, scratch.frame[:rows], self._stream)
        self._run_step(scratch, rows, 0)
        self._copy_rows(self._current, i, scratch.state[1], 0)
        self.frames_seen += 1
        return self._read_logits(scratch, 1)[0]

    def _copy_rows(self, dst: dict[str, int], dst_row: int, src: dict[str, int], src_row: int) -> None:
        for inp, size in self._row_bytes.items():
            self.api.memcpy_dtod_async(dst[inp] + dst_row * size, src[inp] + src_row * size, size, self._stream)

    def _read_logits(self, buffers: _StepBuffers, n: int) -> np.ndarray:
        self.api.memcpy_dtoh_async(buffers.logits[:n], buffers.dev_logits, self._stream)
        self.api.stream_synchronize(self._stream)
        return buffers.logits[:n].astype(np.float32)  # a copy: the pinned buffer is reused
