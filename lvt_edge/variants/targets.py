"""The build targets, as data: what each one makes and which options it takes.

A request that a target does not support is refused with a message, never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError


@dataclass(frozen=True)
class Target:
    name: str
    precisions: tuple[str, ...]
    options: tuple[str, ...]  # build options only this target takes
    artifact: str
    summary: str


TARGETS: dict[str, Target] = {
    "onnxruntime": Target(
        "onnxruntime", B.PRECISIONS, (), "model[.<p>].onnx",
        "ONNX Runtime on the CPU (or onnxruntime-gpu); verified on held-out clips at build time",
    ),
    "tensorrt": Target(
        "tensorrt", B.PRECISIONS, ("plugin", "no_plugin", "batch"), "model.<p>.engine",
        "TensorRT 10/11 engine from the same ONNX (strongly typed), with the fused-op plugin",
    ),
}
TARGET_CHOICES = ("auto", *TARGETS)
DEFAULT_BATCH = (1, 1, 8)
# The command-line flag of each target option, where it is not just the option's name.
FLAGS = {"batch": "--batch-profile"}


def flag(option: str) -> str:
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def tensorrt_status() -> tuple[str | None, str | None]:
    """(version, None) when `import tensorrt` works, else (None, why not): the bindings wheel can
    install without its libraries."""
    try:
        import tensorrt
    except Exception as e:
        return None, f"{type(e).__name__}: {e}"
    return str(tensorrt.__version__), None


def tensorrt_problem() -> str | None:
    """Why this machine cannot build TensorRT engines (not importable, or older than 10), or None."""
    from lvt_edge.runtime.trt import version_floor_problem

    version, why = tensorrt_status()
    if version is None:
        return (f"--target tensorrt needs TensorRT, which does not import here ({why}). Install it: "
                "`pip install 'lvt-edge[trt]'` on a desktop GPU machine (TensorRT 10 or 11 with its "
                "libraries), or use JetPack's python3-libnvinfer on a Jetson; or build for "
                "--target onnxruntime")
    return version_floor_problem(version)


def resolve_target(name: str, log: Callable[[str], None] | None = None) -> Target:
    """"auto" is tensorrt where a TensorRT >= 10 imports, onnxruntime elsewhere (said through
    `log` when a TensorRT is there but too old)."""
    if name not in TARGET_CHOICES:
        raise LvtEdgeError(f"unknown target {name!r}; choose one of {', '.join(TARGET_CHOICES)}")
    problem = tensorrt_problem() if name in ("auto", "tensorrt") else None
    if name == "auto":
        name = "onnxruntime" if problem else "tensorrt"
        if problem and tensorrt_status()[0] is not None and log is not None:
            log(f"note: {problem}; --target auto builds for onnxruntime")
    if name == "tensorrt" and problem:
        raise LvtEdgeError(problem)
    return TARGETS[name]


def check_request(target: Target, precisions: tuple[str, ...], **options: object) -> None:
    """Refuse precisions the target cannot make and options it does not take.

    `options` are the target-specific options the caller set (None / False / default = unset)."""
    bad = [p for p in precisions if p not in target.precisions]
    if bad:
        raise LvtEdgeError(f"target {target.name} cannot build {', '.join(bad)}; it builds "
                           f"{', '.join(target.precisions)}")
    given = sorted(k for k, v in options.items() if v not in (None, False))
    foreign = [k for k in given if k not in target.options]
    if foreign:
        flags = ", ".join(flag(k) for k in foreign)
        raise LvtEdgeError(f"{flags} only apply to a TensorRT build; the {target.name} target takes "
                           f"{', '.join(flag(o) for o in target.options) or 'no such options'}. "
                           "Drop them, or pass --target tensorrt")
    if options.get("plugin") and options.get("no_plugin"):
        raise LvtEdgeError("--plugin and --no-plugin contradict each other; pass one")


def parse_batch(spec: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """"MIN:OPT:MAX" (or a 3-tuple) -> a checked optimisation-profile batch range."""
    try:
        vals = tuple(int(v) for v in (spec.split(":") if isinstance(spec, str) else spec))
    except ValueError:
        vals = ()
    if len(vals) != 3 or not (1 <= vals[0] <= vals[1] <= vals[2]):
        raise LvtEdgeError(f"{flag('batch')} {spec!r}: expected MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX, e.g. 1:1:8")
    return vals  # type: ignore[return-value]
