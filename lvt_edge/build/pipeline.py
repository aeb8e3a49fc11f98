"""`build_bundle`: an exported model -> fp32 / fp16 / int8 variants for a target, calibrated,
cached, verified on held-out clips, recorded in bundle.json."""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.build import clips as C
from lvt_edge.build.cache import CalibrationCache, calibration_key
from lvt_edge.build.graph import load_lvt_onnx
from lvt_edge.build.targets import DEFAULT_BATCH, check_request, parse_batch, resolve_target
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, sha256_file

CALIBRATED = ("fp16", "int8")


def parse_precisions(precisions: str | Sequence[str]) -> tuple[str, ...]:
    """"all", one precision, or several -> the requested precisions in B.PRECISIONS order."""
    items = [precisions] if isinstance(precisions, str) else list(precisions)
    wanted = set()
    for p in items:
        if p == "all":
            wanted.update(B.PRECISIONS)
        elif p in B.PRECISIONS:
            wanted.add(p)
        else:
            raise LvtEdgeError(f"unknown precision {p!r}; choose from {', '.join(B.PRECISIONS)} or all")
    if not wanted:
        raise LvtEdgeError("no precision requested; pass --precision fp32|fp16|int8|all")
    return tuple(p for p in B.PRECISIONS if p in wanted)


def ensure_exported(workdir: Path, log: Callable[[str], None]) -> Path:
    """WORKDIR/model.onnx, exporting the bundled demo model first when the folder has none."""
    fp32 = workdir / B.onnx_name("fp32")
    if not fp32.is_file():
        from lvt_edge.export import onnx_from_checkpoint

        log(f"{fp32} not found: exporting the bundled demo model first")
        onnx_from_checkpoint(None, workdir)
    elif not B.has_bundle(workdir):
        raise LvtEdgeError(f"{workdir} has {fp32.name} but no {B.BUNDLE_JSON}; re-run `lvt-edge export -o {workdir}`")
    return fp32


def build_bundle(
    workdir: str | os.PathLike = B.DEFAULT_WORKDIR,
    precisions: str | Sequence[str] = "all",
    *,
    calib: str | os.PathLike | None = None,
    calib_size: int | None = C.DEFAULT_CALIB_SIZE,
    method: str = "entropy",
    exclude: Sequence[str] = (),
    target: str = "auto",
    plugin: str | os.PathLike | None = None,
    no_plugin: bool = False,
    batch: str | tuple[int, int, int] = DEFAULT_BATCH,
    force: bool = False,
    eval_clips: str | os.PathLike | None = None,
    eval_size: int = C.DEFAULT_EVAL_SIZE,
    op_types: Sequence[str] | None = None,
    latency_rounds: int = 30,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build `precisions` into WORKDIR and return the updated bundle.json data.

    calib: clip set to calibrate on (None: a generated synthetic set). eval_clips: held-out
    clip set for verification (None: synthetic test clips, or the clips of `calib` that
    calibration did not use); eval_size 0 skips verification. op_types: op types INT8
    quantizes (None: the measured default). exclude: node-name regexes kept in float.
    """
    from lvt_edge.build.quantize import DEFAULT_OP_TYPES

    log = log or (lambda msg: print(f"lvt-edge build: {msg}", file=sys.stderr))
    precisions = parse_precisions(precisions)
    tgt = resolve_target(target)
    batch = parse_batch(batch)
    check_request(tgt, precisions, plugin=plugin, no_plugin=no_plugin,
                  batch=None if batch == DEFAULT_BATCH else batch)
    workdir = Path(workdir)
    fp32_path = ensure_exported(workdir, log)
    data = B.read_bundle(workdir)
    contract = B.bundle_contract(data)
    load_lvt_onnx(fp32_path, rebuild=f"re-run `lvt-edge export -o {workdir}`")
    model_sha = sha256_file(fp32_path)
    recorded = (data["variants"].get("fp32") or {}).get("sha256")
    if recorded and recorded != model_sha:
        raise LvtEdgeError(f"{fp32_path} changed since it was exported (sha256 differs from {B.BUNDLE_JSON}); "
                           f"re-run `lvt-edge export -o {workdir}`")
    settings = {"method": method, "op_types": list(op_types or DEFAULT_OP_TYPES), "exclude": list(exclude)}

    calib_set, subset = None, None
    if any(p in CALIBRATED for p in precisions):
        calib_set = (C.open_calibration_set(calib, contract) if calib is not None else
                     C.synthetic_clipset(workdir, split="calib", num=calib_size or C.DEFAULT_CALIB_SIZE,
                                         seed=C.CALIB_SEED, contract=contract, progress=progress))
        subset = C.calibration_subset(calib_set, calib_size)
    loaded: dict[str, np.ndarray] = {}

    def calibration_clips() -> np.ndarray:
        if "clips" not in loaded:
            from lvt_edge.data import load_clips

            loaded["clips"] = load_clips(subset, contract, progress=progress).clips
        return loaded["clips"]

    cache = CalibrationCache(workdir)
    for p in precisions:
        if p in CALIBRATED:
            entry = _calibrated_variant(p, workdir, fp32_path, model_sha, subset, settings, cache, force,
                                        calibration_clips, log, progress)
            old = data["variants"].get(p) or {}
            if old.get("tensorrt") and old.get("sha256") != entry["sha256"]:
                log(f"dropping the old {p} TensorRT engine record: it was built from another ONNX")
            elif old.get("tensorrt"):
                entry["tensorrt"] = old["tensorrt"]
            entry["calibration"]["source"] = "synthetic" if calib is None else "clipset"
            data["variants"][p] = entry
            B.write_bundle(workdir, data)

    if tgt.name == "tensorrt":
        _build_engines(workdir, data, precisions, contract, plugin, no_plugin, batch, log)

    eval_set = _eval_set(workdir, calib, calib_set, subset, eval_clips, eval_size, contract, progress)
    if eval_set is not None:
        _verify(workdir, data, precisions, eval_set, contract, latency_rounds, progress, log)
        B.write_bundle(workdir, data)
    return data


def _calibrated_variant(p, workdir, fp32_path, model_sha, subset, settings, cache, force,
                        calibration_clips, log, progress) -> dict[str, Any]:
    from lvt_edge.build.fp16 import fp16_onnx_from_onnx
    from lvt_edge.build.quantize import modelopt_version, qdq_onnx_from_onnx

    key_settings = dict(settings, clips=len(subset))
    if p == "int8":
        key_settings["quantizer"] = modelopt_version()
    key = calibration_key(p, model_sha, subset.content_hash, key_settings)
    dst = workdir / B.onnx_name(p)
    hit = None if force else cache.get(p, key)
    t0 = time.perf_counter()
    if hit is not None:
        log(f"{p}: reusing cached calibration {key} (same model, clips and settings; --force redoes it)")
        with atomic_path(dst) as tmp:
            shutil.copyfile(hit.onnx, tmp)
        meta = hit.meta
        info, build_time = meta["info"], meta["build_time_s"]
    else:
        log(f"{p}: calibrating on {len(subset)} clips (key {key})")
        if p == "int8":
            info = qdq_onnx_from_onnx(fp32_path, dst, calibration_clips(), method=settings["method"],
                                      op_types=settings["op_types"], exclude=settings["exclude"])
        else:
            info = fp16_onnx_from_onnx(fp32_path, dst, calibration_clips(), exclude=settings["exclude"],
                                       progress=progress)
        build_time = round(time.perf_counter() - t0, 2)
        cache.put(p, key, dst, {"info": info, "build_time_s": build_time})
    return {
        "precision": p,
        "onnx": dst.name,
        "sha256": sha256_file(dst),
        "size_bytes": dst.stat().st_size,
        "build_time_s": build_time,
        "calibration": {"key": key, "reused": hit is not None, "clipset": C.describe(subset)},
        "quantization" if p == "int8" else "conversion": info,
        "verification": None,
    }


def _build_engines(workdir, data, precisions, contract, plugin, no_plugin, batch, log) -> None:
    from lvt_edge.build.tensorrt import engine_from_onnx

    for p in precisions:
        entry = B.variant(data, p, workdir)
        log(f"{p}: building the TensorRT engine")
        entry["tensorrt"] = engine_from_onnx(workdir / entry["onnx"], workdir / B.engine_name(p), contract,
                                             workdir=workdir, plugin=plugin, use_plugin=not no_plugin, batch=batch)
        B.write_bundle(workdir, data)


def _eval_set(workdir, calib, calib_set, subset, eval_clips, eval_size, contract, progress):
    if eval_size <= 0:
        return None
    if eval_clips is not None:
        return C.open_calibration_set(eval_clips, contract).subset(eval_size, C.CALIB_SEED)
    if calib is None:
        return C.synthetic_clipset(workdir, split="test", num=eval_size, seed=C.EVAL_SEED,
                                   contract=contract, progress=progress)
    rest = C.held_out(calib_set, subset, eval_size) if calib_set is not None else None
    if rest is None:
        warnings.warn("every clip of the calibration set was used for calibration, so none is left to "
                      "verify on; pass held-out clips with --eval CLIPSET", C.CalibrationWarning, stacklevel=3)
    return rest


def _verify(workdir, data, precisions, eval_set, contract, latency_rounds, progress, log) -> None:
    from lvt_edge.build.verify import latency_side_by_side, top1, verification
    from lvt_edge.data import load_clips

    held = load_clips(eval_set, contract, progress=progress)
    info = C.describe(eval_set)
    order = ["fp32", *(p for p in precisions if p != "fp32")]
    ref_acc = ref_pred = None
    for p in order:
        acc, pred = top1(workdir, p, held.clips, held.labels, progress=progress)
        if p == "fp32":
            ref_acc, ref_pred = acc, pred
        rec = verification(p, acc, pred, ref_acc, ref_pred, info)
        if rec.get("within_tolerance") is False:
            log(f"WARNING: {p} top-1 is {rec['drop_pt']:.2f} points below fp32 on {len(held)} held-out clips "
                f"(tolerance {rec['tolerance_pt']}); calibrate on more or more typical clips, or --exclude "
                "the sensitive nodes")
        # fp32 keeps the export's own check (PyTorch vs ONNX) under "verification".
        data["variants"][p]["heldout"] = rec
        if p != "fp32":
            data["variants"][p]["verification"] = rec
    if latency_rounds > 0:
        lat = latency_side_by_side(workdir, order, held.clips[0], rounds=latency_rounds)
        for p, ms in lat.items():
            data["variants"][p]["heldout"].update(
                latency_ms_b1=round(ms, 3), speedup_vs_fp32=round(lat["fp32"] / ms, 3),
                latency_rounds=latency_rounds)
