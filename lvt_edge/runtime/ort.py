"""ONNX Runtime backend: CPU by default, the CUDA execution provider when asked and present."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier
from lvt_edge.runtime.files import checked_file

DEVICES = ("auto", "cpu", "cuda")


def ort_providers(device: str, available: Sequence[str]) -> list[str]:
    """Execution providers for `device` ("auto" takes CUDA only where onnxruntime-gpu has it)."""
    if device not in DEVICES:
        raise LvtEdgeError(f"unknown onnxruntime device {device!r}; choose one of {', '.join(DEVICES)}")
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise LvtEdgeError(
            "onnxruntime here has no CUDA execution provider (it has "
            f"{', '.join(available)}); install onnxruntime-gpu instead of onnxruntime, or use device='cpu'"
        )
    if device == "cuda" or (device == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_session(onnx_path: str | os.PathLike, *, threads: int | None, device: str, fix: str):
    """An ONNX Runtime session with every graph optimisation, `threads` intra-op threads (None: the
    library's) and the providers for `device`; a file it cannot load is an LvtEdgeError ending in `fix`."""
    import onnxruntime as ort

    from lvt_edge.console import ort_session_options

    opts = ort_session_options()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if threads < 1:
            raise LvtEdgeError(f"threads must be >= 1 (got {threads})")
        opts.intra_op_num_threads, opts.inter_op_num_threads = int(threads), 1
    try:
        return ort.InferenceSession(str(onnx_path), opts, providers=ort_providers(device, ort.get_available_providers()))
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise LvtEdgeError(f"onnxruntime cannot load {onnx_path}: {e}; {fix}") from e


class OrtClassifier(Classifier):
    """Runs one ONNX file of the bundle with onnxruntime."""

    backend = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, contract: ClipContract, *, precision: str = "fp32",
                 threads: int | None = None, device: str = "cpu") -> None:
        super().__init__(contract, precision=precision, source=str(onnx_path))
        self._session = ort_session(onnx_path, threads=threads, device=device, fix="rebuild the bundle")
        self.providers = self._session.get_providers()
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        self._input, self._output = inp.name, out.name
        static_dims = zip(inp.shape[1:], contract.input_shape)  # symbolic dims are strings
        if len(inp.shape) != 5 or any(isinstance(d, int) and d != w for d, w in static_dims):
            raise LvtEdgeError(
                f"{onnx_path} takes input {inp.shape}, but the bundle's contract says "
                f"Bx{'x'.join(map(str, contract.input_shape))}; re-export the model"
            )
        if isinstance(inp.shape[0], int):  # a static batch dimension
            self.max_batch = inp.shape[0]

    @classmethod
    def from_bundle(cls, workdir: str | os.PathLike, data: dict[str, Any], precision: str, **opts: Any) -> "OrtClassifier":
        entry = B.variant(data, precision, workdir)
        rebuild = B.rebuild_command(workdir, precision)
        if not entry.get("sha256"):
            raise LvtEdgeError(f"bundle.json records no sha256 for the {precision} variant, so its ONNX file "
                               f"cannot be checked; bundle.json was edited: remake it with `{rebuild}`")
        path = checked_file(workdir, entry.get("onnx") or B.onnx_name(precision), entry["sha256"],
                            what=f"{precision} ONNX file", rebuild=rebuild)
        clf = cls(path, B.bundle_contract(data), precision=precision, **opts)
        problems = B.onnx_metadata_problems(clf.metadata, data, precision)
        if problems:
            clf.close()
            raise LvtEdgeError(f"{path} does not match bundle.json: {'; '.join(problems)}. bundle.json was edited "
                               f"or files were mixed up: remake the variant with `{rebuild}`"
                               + ("" if precision == "fp32" else f" (or all of them: `{B.rebuild_command(workdir, 'fp32')}` "
                                  f"then `lvt-edge build {workdir}`)"))
        return clf

    @property
    def metadata(self) -> dict[str, str]:
        """The ONNX file's metadata_props, as the session read them (no second load)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        if self.max_batch and len(batch) < self.max_batch:  # static batch: pad, then drop the padding
            pad = np.zeros((self.max_batch - len(batch), *batch.shape[1:]), batch.dtype)
            return self._run(np.concatenate([batch, pad]))[: len(batch)]
        return self._run(batch)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._session.run([self._output], {self._input: batch})[0], dtype=np.float32)

    def _close(self) -> None:
        del self._session
