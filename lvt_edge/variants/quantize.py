"""fp32 ONNX -> INT8 ONNX with explicit Q/DQ nodes (nvidia-modelopt post-training quantization).

modelopt runs in a child process (`_modelopt_worker`) because its `quantize()` patches
onnxruntime for the rest of the process it runs in. The child lives in its own process group
and dies with its parent: killed on any exception or KeyboardInterrupt here, and by the kernel
(PR_SET_PDEATHSIG) when the parent is killed outright. The fused FFLA nodes stay float; the
result is checked for Q/DQ nodes and intact fused nodes before it is moved into place.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx

from lvt_edge import bundle as B
from lvt_edge.variants.fp16 import sample_count
from lvt_edge.variants.graph import QDQ_OPS, check_exclude, check_fused_intact, input_name, op_counts, set_metadata
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path

METHODS = ("entropy", "max")
# Chosen by measurement on the demo model (benchmarks/results/build.md): quantizing only the
# GEMMs is fastest on ONNX Runtime CPU; the depthwise Conv and the element-wise ops gain
# nothing from int8 there and pay for the extra Q/DQ pairs.
DEFAULT_OP_TYPES = ("MatMul", "Gemm")
CALIBRATION_BATCH = 8
# Temporary folder of one quantization, next to its output (swept by the build when stale).
TEMP_PREFIX = ".int8-"


def modelopt_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nvidia-modelopt")
    except PackageNotFoundError:
        raise LvtEdgeError(
            "INT8 needs nvidia-modelopt; install it with `pip install 'lvt-edge[quant]'` "
            "(not nvidia-modelopt[onnx], which replaces onnxruntime with onnxruntime-gpu)"
        ) from None


def qdq_onnx_from_onnx(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    clips: np.ndarray | dict[str, np.ndarray],
    *,
    method: str = "entropy",
    op_types: Sequence[str] = DEFAULT_OP_TYPES,
    exclude: Sequence[str] = (),
) -> dict[str, Any]:
    """Quantize the fp32 ONNX `src` to `dst` with calibration `clips` (N x 3 x T x H x W, already
    preprocessed by the clip contract), or, for a model with several inputs (a step model: frame
    and carried state), input name -> array with one row per sample. Returns what the bundle
    records about it."""
    if method not in METHODS:
        raise LvtEdgeError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    source = onnx.load(str(src))
    samples = sample_count(source, clips)
    if samples == 0:
        raise LvtEdgeError("no calibration clips; pass a clip set with --calib")
    exclude = check_exclude(exclude)
    version = modelopt_version()
    dst = Path(dst)
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX, dir=dst.parent) as tmp:
        tmp = Path(tmp)
        if isinstance(clips, dict):
            calibration = tmp / "calib.npz"
            np.savez(calibration, **{k: np.ascontiguousarray(v, np.float32) for k, v in clips.items()})
            inputs = sorted(clips)
        else:
            calibration = tmp / "calib.npy"
            np.save(calibration, np.ascontiguousarray(clips, np.float32))
            inputs = [input_name(source)]
        # modelopt rewrites the file it is given (names, shapes): hand it a copy.
        shutil.copyfile(src, tmp / "model.onnx")
        out = tmp / "model.int8.onnx"
        job = {"onnx": str(tmp / "model.onnx"), "output": str(out), "calibration": str(calibration),
               "input": inputs[0], "inputs": inputs, "method": method, "op_types": list(op_types),
               "exclude": exclude, "batch": CALIBRATION_BATCH if _dynamic_batch(source, inputs) else 1}
        (tmp / "job.json").write_text(json.dumps(job))
        _run_worker(tmp / "job.json", tmp / "modelopt.log", clips=samples)
        if not out.is_file():
            raise RuntimeError(f"modelopt finished without writing {out}; see its log above")
        model = onnx.load(str(out))
    counts = op_counts(model)
    if not any(counts.get(op) for op in QDQ_OPS):
        raise LvtEdgeError(
            f"modelopt inserted no Q/DQ nodes (op types {list(op_types)}, exclude {exclude}); "
            "the int8 model would be the fp32 model. Quantize more op types or exclude less"
        )
    fused = check_fused_intact(source, model, "INT8 quantization")
    del model.metadata_props[:]
    model.metadata_props.extend(source.metadata_props)
    set_metadata(model, {B.META_PRECISION: "int8"})
    with atomic_path(dst) as tmp_dst:
        onnx.save(model, str(tmp_dst))
    return {
        "quantizer": f"nvidia-modelopt {version}",
        "mode": "int8 Q/DQ, fp32 high precision, DQ-only weights",
        "method": method,
        "op_types": list(op_types),
        "exclude": exclude,
        "calibration_clips": int(samples),
        "qdq_nodes": {op: counts.get(op, 0) for op in QDQ_OPS},
        "fused_nodes": fused,
    }


def _dynamic_batch(model: onnx.ModelProto, names: Sequence[str]) -> bool:
    """Whether every input in `names` has a free first (batch) axis."""
    dims = {i.name: i.type.tensor_type.shape.dim for i in model.graph.input}
    return all(not dims[n][0].HasField("dim_value") for n in names)


def _worker_env() -> dict[str, str]:
    # The child must import this very lvt_edge (a source checkout need not be installed).
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env["LVT_EDGE_PARENT_PID"] = str(os.getpid())
    return env


def _die_with_parent() -> None:
    """preexec_fn: on Linux, have the kernel SIGKILL the worker when its parent dies."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)


def _run_worker(job: Path, log: Path, clips: int = 0) -> None:
    cmd = [sys.executable, "-m", "lvt_edge.variants._modelopt_worker", str(job)]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_worker_env(),
                                start_new_session=True, preexec_fn=_die_with_parent)
        try:
            returncode = _wait_showing_progress(proc, log, clips)
        except BaseException:
            _kill_group(proc)
            raise
    if returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise LvtEdgeError(f"INT8 quantization failed (modelopt exit code {returncode}):\n{tail}")


def _wait_showing_progress(proc: subprocess.Popen, log: Path, clips: int) -> int:
    """Wait for the worker under a bar that shows the elapsed time and the worker's latest line
    (ModelOpt reports stages, not a count, so the bar cannot show a fraction)."""
    from lvt_edge import console

    desc = f"int8 calibration ({clips} samples, ModelOpt)" if clips else "int8 calibration (ModelOpt)"
    with console.bar(total=None, desc=desc, unit="s", bar_format="{desc}: {elapsed}{postfix}") as bar:
        while True:
            try:
                return proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                bar.set_postfix_str(_last_line(log)[:60], refresh=True)


def _last_line(log: Path) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the worker and anything it started, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
