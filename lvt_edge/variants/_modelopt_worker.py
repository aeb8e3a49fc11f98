"""Runs nvidia-modelopt's ONNX INT8 quantization in a process of its own.

modelopt's `quantize()` patches onnxruntime's calibrators for the rest of the process, so
`lvt_edge.variants.quantize` starts this module with `python -m` and one JSON job file:
{"onnx", "output", "calibration", "input", "inputs", "method", "op_types", "exclude",
"batch"}. "calibration" is an .npy of preprocessed clips for the one input `input`, or an .npz
with one array per name in `inputs` (a step model's frame and state), one row per sample.

The parent starts it in its own process group with PR_SET_PDEATHSIG; the worker also exits
at once if its parent is already gone (it died before the death signal was armed).
LVT_EDGE_WORKER_PIDFILE, when set, gets the worker's pid appended (tests check for orphans).
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lvt_edge.variants._modelopt_worker JOB.json", file=sys.stderr)
        return 2
    parent = os.environ.get("LVT_EDGE_PARENT_PID")
    if parent and os.getppid() != int(parent):
        print("lvt_edge modelopt worker: the build that started it is gone; exiting", file=sys.stderr)
        return 3
    pidfile = os.environ.get("LVT_EDGE_WORKER_PIDFILE")
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
    with open(argv[0]) as f:
        job = json.load(f)

    import numpy as np
    from modelopt.onnx.quantization import quantize

    if job["calibration"].endswith(".npz"):
        with np.load(job["calibration"]) as f:
            data = {name: f[name] for name in job["inputs"]}
    else:
        data = {job["input"]: np.load(job["calibration"])}
    rows = len(next(iter(data.values())))
    shapes = ",".join(f"{name}:" + "x".join(str(d) for d in (min(job["batch"], rows), *a.shape[1:]))
                      for name, a in data.items())
    quantize(
        job["onnx"],
        quantize_mode="int8",
        calibration_data=data,
        calibration_shapes=shapes,
        calibration_method=job["method"],
        # CPU only; fp32 high precision and DQ-only weights run fastest on ORT CPU and the
        # default fp16 path needs TensorRT for graphs with custom-domain nodes.
        calibration_eps=["cpu"],
        high_precision_dtype="fp32",
        dq_only=True,
        op_types_to_quantize=job["op_types"] or None,
        nodes_to_exclude=job["exclude"] or None,
        output_path=job["output"],
        log_level="WARNING",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
