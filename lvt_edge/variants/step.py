"""A causal bundle's step model (model.step.onnx) -> its fp16 and int8 variants for ONNX Runtime.

Both are calibrated on the states real streams carry (`step_calibration_inputs`: the fp32 step
model run over the calibration clips), not on zeros, and each is checked before it is written:
the held-out clips run frame by frame through the fp32 step model and through the variant, each
carrying its own state, and the final frame's top-1 must agree at least as often as
`MIN_AGREEMENT_PCT` asks. bundle.json records them under step.variants with the dtype of the
frame and of every state tensor, which the runtime allocates.

Measured on lvt-tiny-causal fine-tuned on synthetic motion (64 calibration clips, i.e. 256 step
samples; 200 held-out clips of 8 frames; ONNX Runtime CPU):
- fp16: largest logit difference 0.011, final-frame agreement 100%. 11 of the 13 state tensors
  travel in float16; the other two pass a Slice and a Reshape the fp16 policy keeps in float32
  (underflow). State per stream: 390 KB instead of 604 KB (302 KB if all were float16), with
  logits bit for bit those of the same graph with float32 state I/O: the graph rounds those
  tensors to float16 either way.
- int8 (MatMul, Gemm): largest logit difference 0.50, agreement 98.5% (the clip int8 variant:
  no top-1 drop on the same clips); calibrated on zero states instead, 2.59 and 94.5%.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file
from lvt_edge.variants.verify import ENGINE_AGREEMENT_PCT

# The smallest final-frame top-1 agreement (%) with the fp32 step model a variant must show: the
# agreement floors the clip variants' TensorRT engines are held to. (Their ONNX Runtime check,
# a top-1 drop within verify.TOLERANCE_PT, needs labels; read as agreement, 99% for int8, it
# would refuse the int8 step model above, whose clip variant loses no top-1.)
MIN_AGREEMENT_PCT = {p: ENGINE_AGREEMENT_PCT[p] for p in ("fp16", "int8")}
VERIFY_BATCH = 8  # streams run side by side while verifying
# Ops that only move the carried state (the ring's Reshape, Concat, Slice). Q/DQ between a state
# input and its output re-rounds the state to int8 every frame. Measured on the model above with
# --op-types MatMul,Gemm,Concat,Reshape,Slice: final-frame agreement 31% (largest logit
# difference 6.7) with Q/DQ on the state path, 98.0% (0.68) with it kept float. With the default
# MatMul, Gemm, no Q/DQ lands there and keeping it float changes no byte. So int8 never quantizes
# the state path, whatever the op types.
STATE_PATH_OPS = ("Concat", "Slice", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Transpose", "Cast")


def step_calibration_feeds(workdir: Path, clips: np.ndarray) -> dict[str, np.ndarray]:
    """The fp32 step model's inputs (frame and carried state) over calibration `clips`."""
    from lvt_edge.runtime import load_step
    from lvt_edge.runtime.stream import step_calibration_inputs

    with load_step(workdir, "fp32", backend="onnxruntime") as clf:
        return step_calibration_inputs(clf, clips)


def state_groups(step: dict[str, Any]) -> list[tuple[str, str]]:
    """(input, output) of every state tensor: each pair must keep one dtype (the output is fed back)."""
    return [(t["input"], t["output"]) for t in step["state"]]


def state_path_nodes(model: onnx.ModelProto, step: dict[str, Any]) -> list[str]:
    """Names of the nodes the carried state passes through from a state input to a state output
    (the ring's Reshape, Concat, Slice): reachable forward from a state input and back from a
    state output through STATE_PATH_OPS. A new frame's entry into the ring is not on it."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for x in n.input:
            readers.setdefault(x, []).append(n)
    ahead: dict[str, None] = {}
    behind: dict[str, None] = {}

    def back(tensor: str) -> None:
        n = producer.get(tensor)
        if n is not None and n.op_type in STATE_PATH_OPS and n.name not in behind:
            behind[n.name] = None
            for x in n.input:
                back(x)

    def forward(tensor: str) -> None:
        for n in readers.get(tensor, []):
            if n.op_type in STATE_PATH_OPS and n.name not in ahead:
                ahead[n.name] = None
                for o in n.output:
                    forward(o)

    for i, o in state_groups(step):
        forward(i)
        back(o)
    return [n for n in ahead if n and n in behind]


def state_path_qdq(model: onnx.ModelProto, names: Sequence[str]) -> list[str]:
    """The state path nodes `names` that read a DequantizeLinear output (int8-rounded state)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    wanted = set(names)
    return [n.name for n in model.graph.node if n.name in wanted
            and any(producer.get(x) is not None and producer[x].op_type == "DequantizeLinear" for x in n.input)]


def fp16_step_onnx_from_onnx(src: Path, dst: Path, feeds: dict[str, np.ndarray], step: dict[str, Any], *,
                             exclude: Sequence[str] = (), progress: bool = True) -> dict[str, Any]:
    """fp16 step model: the fp16 policy of the clip model, the state in float16 wherever the graph
    rounds it to float16 anyway (see `fp16_onnx_from_onnx`'s fp16_io)."""
    from lvt_edge.variants.fp16 import fp16_onnx_from_onnx

    return fp16_onnx_from_onnx(src, dst, feeds, exclude=exclude, fp16_io=state_groups(step), progress=progress)


def qdq_step_onnx_from_onnx(src: Path, dst: Path, feeds: dict[str, np.ndarray], step: dict[str, Any], *,
                            method: str, op_types: Sequence[str], exclude: Sequence[str]) -> dict[str, Any]:
    """int8 step model: the clip model's quantization, calibrated on `feeds`, with the state path
    kept float (STATE_PATH_OPS)."""
    from lvt_edge.variants.quantize import qdq_onnx_from_onnx
    from lvt_edge.variants.graph import op_counts

    kept = state_path_nodes(onnx.load(str(src)), step)
    info = qdq_onnx_from_onnx(src, dst, feeds, method=method, op_types=op_types,
                              exclude=[*exclude, *(re.escape(n) + "$" for n in kept)])
    model = onnx.load(str(dst))
    if _unshare_qdq(model, kept):
        counts = op_counts(model)
        info["qdq_nodes"] = {op: counts.get(op, 0) for op in info["qdq_nodes"]}
        onnx.save(model, str(dst))
    quantized = state_path_qdq(model, kept)
    if quantized:
        raise RuntimeError(f"Q/DQ left on the state path at {', '.join(quantized)}; the carried state would be "
                           "re-quantized every frame")
    info["exclude"] = list(exclude)
    info["state_path_float"] = kept
    return info


def _unshare_qdq(model: onnx.ModelProto, names: Sequence[str]) -> bool:
    """Make the nodes `names` read the float tensor where they read a Q/DQ pair's output: the
    quantizer shares a tensor's pair among its readers, so an excluded node reading a tensor that
    a quantized node also reads still gets int8-rounded values. Unread pairs are dropped."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    wanted = set(names)
    changed = False
    for node in graph.node:
        if node.name not in wanted:
            continue
        for i, x in enumerate(node.input):
            dq = producer.get(x)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
                changed = True
    while changed:
        read = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
        unread = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                  and not set(n.output) & read]
        if not unread:
            break
        gone = {n.output[0] for n in unread}
        nodes = [n for n in graph.node if not (n.output and n.output[0] in gone)]
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def step_io(step: dict[str, Any], onnx_path: Path) -> dict[str, Any]:
    """The frame and state entries of `step`, with the dtypes the ONNX file at `onnx_path` takes."""
    model = onnx.load(str(onnx_path), load_external_data=False)
    dtypes = {v.name: onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
              for v in [*model.graph.input, *model.graph.output]}
    state = []
    for t in step["state"]:
        if dtypes[t["input"]] != dtypes[t["output"]]:
            raise RuntimeError(f"{onnx_path} takes {t['input']} as {dtypes[t['input']]} but gives {t['output']} as "
                               f"{dtypes[t['output']]}; the state could not be fed back")
        state.append({**t, "dtype": dtypes[t["input"]]})
    frame = {**step["frame"], "dtype": dtypes[step["frame"]["name"]]}
    state_bytes = sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize for t in state)
    return {"frame": frame, "logits": step["logits"], "state": state, "state_bytes": state_bytes}


def step_agreement(precision: str, ref, got, clips: np.ndarray, labels: np.ndarray | None,
                   clipset_info: dict[str, Any], *, engine: bool = False, batch: int = VERIFY_BATCH) -> dict[str, Any]:
    """The variant `got` against the fp32 step classifier `ref`, both fed `clips` (N x 3 x T x H x W)
    frame by frame, each carrying its own state: largest logit difference over every frame, top-1
    agreement at the final frame (and top-1 of each there, where `labels` are the model's).

    engine: `got` is the TensorRT step engine of `precision` and `ref` the ONNX Runtime step model
    of the same precision, held to the clip engines' floor (verify.ENGINE_AGREEMENT_PCT).
    batch: streams run side by side (at most what an engine's profile takes)."""
    want_all, got_all = [], []
    for i in range(0, len(clips), batch):
        x = clips[i : i + batch]
        for clf, out in ((ref, want_all), (got, got_all)):
            clf.reset(len(x))
            out.append(np.stack([clf.step_logits(np.ascontiguousarray(x[:, :, t])) for t in range(x.shape[2])], 1))
    want, have = np.concatenate(want_all), np.concatenate(got_all)
    agree = float((have[:, -1].argmax(-1) == want[:, -1].argmax(-1)).mean() * 100.0)
    floor = (ENGINE_AGREEMENT_PCT if engine else MIN_AGREEMENT_PCT)[precision]
    ref_name = "onnxruntime" if engine else "fp32"
    out: dict[str, Any] = {
        "backend": "tensorrt" if engine else "onnxruntime-cpu",
        "reference": (f"{precision} step model on onnxruntime-cpu" if engine else "fp32 step model") + ", frame by frame",
        "clipset": clipset_info,
        "clips": int(len(clips)), "frames": int(clips.shape[2]),
        "max_abs_logit_diff": round(float(np.abs(have - want).max()), 6),
        "max_abs_logit_diff_final": round(float(np.abs(have[:, -1] - want[:, -1]).max()), 6),
        "agreement_pct": round(agree, 3), "agreement_all_frames_pct":
            round(float((have.argmax(-1) == want.argmax(-1)).mean() * 100.0), 3),
        "min_agreement_pct": floor, "within_tolerance": bool(agree >= floor),
    }
    if labels is not None:
        out.update(top1=round(float((have[:, -1].argmax(-1) == labels).mean() * 100.0), 3),
                   **{f"top1_{ref_name}": round(float((want[:, -1].argmax(-1) == labels).mean() * 100.0), 3)})
    return out


def build_step_variants(workdir: Path, precisions: Sequence[str], subset, calibration_clips: Callable[[], np.ndarray],
                        held: tuple[np.ndarray, np.ndarray | None, dict[str, Any]] | None, settings: dict[str, Any],
                        cache, force: bool, update: Callable, log: Callable[[str], None],
                        progress: bool = True) -> None:
    """The fp16 / int8 step variants of WORKDIR's causal model, each calibrated (or taken from the
    cache), verified on the `held` (clips, labels, clipset record) and then committed with its
    bundle.json entry; a variant that fails verification raises and writes nothing. `held` None
    (--eval-size 0) skips verification, as for the clip variants."""
    from lvt_edge.runtime import load_step
    from lvt_edge.runtime.stream import StepClassifier
    from lvt_edge.variants import clips as C
    from lvt_edge.variants.cache import calibration_key
    from lvt_edge.variants.quantize import modelopt_version
    from lvt_edge.workdir import commit, temp_beside

    data = B.read_bundle(workdir)
    step = data["step"]
    src = workdir / step["onnx"]
    step_sha = sha256_file(src)
    if step_sha != step["sha256"]:
        raise LvtEdgeError(f"{src} changed since it was exported (sha256 differs from {B.BUNDLE_JSON}); "
                           f"re-run `lvt-edge export -o {workdir}`")
    contract = B.bundle_contract(data)
    feeds: dict[str, dict[str, np.ndarray]] = {}

    def calibration_feeds() -> dict[str, np.ndarray]:
        if "feeds" not in feeds:
            feeds["feeds"] = step_calibration_feeds(workdir, calibration_clips())
        return feeds["feeds"]

    for p in precisions:
        key_settings = dict(settings, clips=len(subset), calibration="step_calibration_inputs")
        if p == "int8":
            key_settings["quantizer"] = modelopt_version()
        key = calibration_key(f"step-{p}", step_sha, subset.content_hash, key_settings)
        dst = workdir / B.step_onnx_name(p)
        hit = None if force else cache.get(f"step-{p}", key)
        t0 = time.perf_counter()
        with temp_beside(dst) as tmp:
            if hit is not None:
                log(f"{p} step model: reusing cached calibration {key} (same model, clips and settings)")
                shutil.copyfile(hit.onnx, tmp)
                info, build_time = hit.meta["info"], hit.meta["build_time_s"]
            else:
                log(f"{p} step model: calibrating on the states of {len(subset)} clips (key {key})")
                if p == "int8":
                    info = qdq_step_onnx_from_onnx(src, tmp, calibration_feeds(), step, method=settings["method"],
                                                   op_types=settings["op_types"], exclude=settings["exclude"])
                else:
                    info = fp16_step_onnx_from_onnx(src, tmp, calibration_feeds(), step,
                                                    exclude=settings["exclude"], progress=progress)
                build_time = round(time.perf_counter() - t0, 2)
            io = step_io(step, tmp)
            verification = None
            if held is not None:
                clips, labels, clipset_info = held
                with load_step(workdir, "fp32", backend="onnxruntime") as ref, StepClassifier(tmp, contract, {**step, **io},
                                                                        precision=p) as got:
                    verification = step_agreement(p, ref, got, clips, labels, clipset_info)
                said = (f"agrees with the fp32 one at the final frame of {verification['agreement_pct']:.1f}% of "
                        f"{verification['clips']} held-out clips fed frame by frame (largest logit difference "
                        f"{verification['max_abs_logit_diff']:.3g})")
                if not verification["within_tolerance"]:
                    raise LvtEdgeError(
                        f"the {p} step model {said}, below the {verification['min_agreement_pct']}% required, so "
                        f"nothing was written. Calibrate on more or more typical clips (`lvt-edge build {workdir} "
                        f"--precision {p} --calib CLIPSET --force`), or keep the sensitive nodes float with --exclude")
                log(f"{p} step model {said}")
            if hit is None:  # only a variant that passed: a refused one is calibrated afresh next time
                cache.put(f"step-{p}", key, tmp, {"info": info, "build_time_s": build_time})
            entry = {
                "precision": p, "onnx": dst.name, "sha256": sha256_file(tmp), "size_bytes": tmp.stat().st_size,
                "build_time_s": build_time, "fp32_sha256": step_sha, **io,
                "calibration": {"key": key, "reused": hit is not None, "clipset": C.describe(subset),
                                "states": "carried: step_calibration_inputs over the clips",
                                "samples": info.get("calibration_clips")},
                "quantization" if p == "int8" else "conversion": info,
                "verification": verification,
            }

            def record(data: dict[str, Any], p=p, entry=entry) -> None:
                data["step"].setdefault("variants", {})[p] = entry
                engines = data["step"].get("engines") or {}
                if p in engines and engines[p].get("onnx_sha256") != entry["sha256"]:
                    log(f"dropping the old {p} TensorRT step engine record: it was built from another step ONNX")
                    del engines[p]

            commit([(tmp, dst)], lambda: update(workdir, record))
