"""The build targets, as data: what each one makes and which options it takes.

A request that a target does not support is refused with a message, never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def tensorrt_missing_reason() -> str | None:
    """None when `import tensorrt` works, else why not (the bindings wheel can lack its libs)."""
    try:
        import tensorrt  # noqa: F401
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def resolve_target(name: str) -> Target:
    """"auto" is tensorrt where TensorRT imports, onnxruntime elsewhere."""
    if name not in TARGET_CHOICES:
        raise LvtEdgeError(f"unknown target {name!r}; choose one of {', '.join(TARGET_CHOICES)}")
    if name == "auto":
        name = "onnxruntime" if tensorrt_missing_reason() else "tensorrt"
    if name == "tensorrt":
        why = tensorrt_missing_reason()
        if why:
            raise LvtEdgeError(
                f"--target tensorrt needs TensorRT, which does not import here ({why}). Install it: "
                "`pip install 'lvt-edge[trt]'` on a desktop GPU machine (TensorRT 10 or 11 with its "
                "libraries), or use JetPack's python3-libnvinfer on a Jetson; or build for "
                "--target onnxruntime"
            )
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
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise LvtEdgeError(f"{flags} only apply to a TensorRT build; the {target.name} target takes "
                           f"{', '.join('--' + o.replace('_', '-') for o in target.options) or 'no such options'}. "
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
        raise LvtEdgeError(f"--batch {spec!r}: expected MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX, e.g. 1:1:8")
    return vals  # type: ignore[return-value]
