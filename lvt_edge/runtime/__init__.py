"""Run a bundle: `load_bundle(WORKDIR, precision, backend)` -> a `Classifier`.

    from lvt_edge.runtime import load_bundle
    with load_bundle("lvt-bundle", precision="int8") as clf:
        probs = clf.predict(clf.contract.preprocess(frames, order="BGR"))   # OpenCV frames; (classes,) for one clip
        print(clf.labels[probs.argmax()])

Every backend answers the same `predict(clips) -> probabilities`. A causal bundle's step model
loads with `load_step(WORKDIR, precision, backend=...)`: a classifier that also takes one frame at
a time (`step`) and carries the state between frames. This package never imports
torch: the torch backend imports it inside itself, tensorrt and the CUDA binding are imported
only when a TensorRT classifier is made.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier, softmax
from lvt_edge.runtime.stream import StepClassifier, StepRunner, has_step, step_variant


@dataclass(frozen=True)
class Backend:
    """One row of the backend table: where its classifier lives and the options it takes."""

    module: str
    cls: str
    options: tuple[str, ...]
    summary: str


BACKENDS: dict[str, Backend] = {
    "onnxruntime": Backend("lvt_edge.runtime.ort", "OrtClassifier", ("threads", "device"),
                           "ONNX Runtime; CPU, or the CUDA execution provider with onnxruntime-gpu"),
    "tensorrt": Backend("lvt_edge.runtime.trt", "TensorRTClassifier", ("plugin", "cuda"),
                        "TensorRT 10 engine with the fused-op plugin; CUDA via cuda-python or pycuda"),
    "torch": Backend("lvt_edge.runtime.torch_ref", "TorchClassifier", ("checkpoint", "device", "threads"),
                     "the PyTorch source checkpoint, fp32 only (the reference)"),
}
BACKEND_CHOICES = ("auto", *BACKENDS)
# The step model of a causal bundle (`load_step`): the same options, and `streams`.
STEP_BACKENDS: dict[str, Backend] = {
    "onnxruntime": Backend("lvt_edge.runtime.stream", "StepClassifier", (*BACKENDS["onnxruntime"].options, "streams"),
                           "the step ONNX model on ONNX Runtime, the state carried in host arrays"),
    "tensorrt": Backend("lvt_edge.runtime.trt_step", "TensorRTStepClassifier", (*BACKENDS["tensorrt"].options, "streams"),
                        "the step engine, the state carried in GPU buffers"),
}
STEP_BACKEND_CHOICES = ("auto", *STEP_BACKENDS)


def tensorrt_importable() -> bool:
    """TensorRT imports here and is new enough for lvt_edge (10 or later)."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt
    except Exception:  # the bindings wheel installs without its libraries
        return False
    from lvt_edge.runtime.trt import version_floor_problem

    return version_floor_problem(tensorrt.__version__) is None


def resolve_backend(data: dict[str, Any], precision: str, backend: str = "auto") -> str:
    """The backend `load_bundle` will use: "auto" is tensorrt when the variant has an engine
    and TensorRT imports, else onnxruntime."""
    _check_choice(backend, BACKEND_CHOICES)
    if backend != "auto":
        return backend
    entry = B.variant(data, precision)
    return _auto(bool((entry.get("tensorrt") or {}).get("engine")))


def resolve_step_backend(data: dict[str, Any], precision: str, backend: str = "auto",
                         workdir: str | os.PathLike = "WORKDIR") -> str:
    """The backend `load_step` will use: "auto" is tensorrt when the step model has an engine of
    `precision` and TensorRT imports, else onnxruntime."""
    _check_choice(backend, STEP_BACKEND_CHOICES)
    step_variant(data, precision, workdir)  # a window model or a missing variant says how to fix it
    if backend != "auto":
        return backend
    return _auto(bool(((data["step"].get("engines") or {}).get(precision) or {}).get("engine")))


def _check_choice(backend: str, choices: tuple[str, ...]) -> None:
    if backend not in choices:
        raise LvtEdgeError(f"unknown backend {backend!r}; choose one of {', '.join(choices)}")


def _auto(has_engine: bool) -> str:
    return "tensorrt" if has_engine and tensorrt_importable() else "onnxruntime"


def _make(spec: Backend, name: str, workdir, data, precision, opts: dict[str, Any]) -> Any:
    """`spec`'s classifier for `precision`, with `opts` (None values dropped, unknown ones refused)."""
    opts = {k: v for k, v in opts.items() if v is not None}
    unknown = sorted(set(opts) - set(spec.options))
    if unknown:
        raise LvtEdgeError(f"the {name} backend takes no option {', '.join(unknown)}; "
                           f"it takes {', '.join(spec.options)}")
    cls = getattr(importlib.import_module(spec.module), spec.cls)
    return cls.from_bundle(workdir, data, precision, **opts)


def load_bundle(workdir: str | os.PathLike = B.DEFAULT_WORKDIR, precision: str = "fp32", backend: str = "auto",
                **opts: Any) -> Classifier:
    """Load one precision of a bundle on one backend.

    Options by backend (others are refused): onnxruntime `threads`, `device` ("cpu", "cuda",
    "auto"); tensorrt `plugin` (library path overriding the bundle's), `cuda` ("auto",
    "cuda-python", "pycuda"); torch `checkpoint`, `device`, `threads`. Options set to None
    are dropped, so callers can pass their defaults through.
    """
    data = B.read_bundle(workdir)
    name = resolve_backend(data, precision, backend)
    return _make(BACKENDS[name], name, workdir, data, precision, opts)


def load_step(workdir: str | os.PathLike = B.DEFAULT_WORKDIR, precision: str = "fp32", *, backend: str = "auto",
              streams: int = 1, **opts: Any) -> StepRunner:
    """The step model of a causal bundle, its state at zeros, on one backend: fp32 is
    model.step.onnx (or its engine), fp16 / int8 the variants `lvt-edge build` recorded.

    backend: "onnxruntime", "tensorrt" (the step engine `lvt-edge build --target tensorrt`
    recorded under step.engines), or "auto" (tensorrt where that engine exists and TensorRT
    imports). Options as for `load_bundle`: onnxruntime `threads`, `device`; tensorrt `plugin`,
    `cuda`. `streams`: how many streams are carried side by side.
    """
    data = B.read_bundle(workdir)
    name = resolve_step_backend(data, precision, backend, workdir)
    return _make(STEP_BACKENDS[name], name, workdir, data, precision, {**opts, "streams": streams})


__all__ = ["BACKENDS", "BACKEND_CHOICES", "Backend", "Classifier", "STEP_BACKENDS", "STEP_BACKEND_CHOICES",
           "StepClassifier", "StepRunner", "has_step", "load_bundle", "load_step", "resolve_backend",
           "resolve_step_backend", "softmax"]
