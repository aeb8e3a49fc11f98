"""`build_bundle`: an exported model -> fp32 / fp16 / int8 variants for a target, calibrated,
cached, verified on held-out clips, recorded in bundle.json (a causal model's step model too).
`build_engines`: TensorRT engines for the ONNX variants a bundle already has, verified against
ONNX Runtime (and a causal bundle's step engines)."""

from __future__ import annotations

import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.variants import clips as C
from lvt_edge.variants.cache import CalibrationCache, calibration_key
from lvt_edge.variants.graph import load_lvt_onnx
from lvt_edge.variants.targets import DEFAULT_BATCH, check_request, parse_batch, resolve_target
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file

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


def ensure_exported(workdir: Path, log: Callable[[str], None], *,
                    checkpoint: str | os.PathLike | None = None, export_demo: bool = True) -> Path:
    """WORKDIR/model.onnx, exporting `checkpoint` first when the folder has none (or, without
    one, the bundled demo model if `export_demo`, else a fix-it error). With `checkpoint`, an
    existing model.onnx is used only when it was exported from that very checkpoint."""
    fp32 = workdir / B.onnx_name("fp32")
    if fp32.is_file():
        if not B.has_bundle(workdir):
            raise LvtEdgeError(f"{workdir} has {fp32.name} but no {B.BUNDLE_JSON}; re-run `lvt-edge export -o {workdir}`")
        if checkpoint is not None:
            _check_same_source(workdir, checkpoint)
        _note_stale_body(workdir, log)
        return fp32
    from lvt_edge.export import onnx_from_checkpoint

    if checkpoint is not None:
        log(f"{fp32} not found: exporting {checkpoint} first")
        onnx_from_checkpoint(checkpoint, workdir)
    elif export_demo:
        log(f"{fp32} not found: exporting the bundled demo model first")
        onnx_from_checkpoint(None, workdir)
    else:
        raise missing_model_error(workdir)
    return fp32


def _note_stale_body(workdir: Path, log: Callable[[str], None]) -> None:
    try:  # onnxscript (the `export` extra) makes the body; a machine without it builds what it has
        from lvt_edge.export.ffla_function import stale_body_note
    except ImportError:
        return
    note = stale_body_note(B.read_bundle(workdir).get("export") or {}, workdir)
    if note:
        log(note)


def missing_model_error(workdir: str | os.PathLike) -> LvtEdgeError:
    return LvtEdgeError(
        f"no {B.onnx_name('fp32')} in {workdir}: export one with `lvt-edge export CKPT -o {workdir}`, or build "
        f"straight from a checkpoint with `lvt-edge build {workdir} --checkpoint CKPT`; `lvt-edge build` alone "
        "uses the bundled demo model")


def _check_same_source(workdir: Path, checkpoint: str | os.PathLike) -> None:
    """Refuse --checkpoint when WORKDIR's model.onnx was exported from something else."""
    from lvt_edge.export.pipeline import checkpoint_sha256

    want = checkpoint_sha256(checkpoint)
    source = B.read_bundle(workdir).get("source") or {}
    if source.get("sha256") == want:
        return
    was = ("an untrained --random-init model" if source.get("random_init")
           else source.get("checkpoint") or "a checkpoint bundle.json does not name")
    raise LvtEdgeError(
        f"{workdir} already holds {B.onnx_name('fp32')} exported from {was}, not from {checkpoint} (the weights' "
        f"sha256 differs): replace it with `lvt-edge export {checkpoint} -o {workdir}` (variants built from "
        f"the old model are removed) and then `lvt-edge build {workdir}`, or build into another folder with "
        f"`lvt-edge build NEWDIR --checkpoint {checkpoint}`")


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
    checkpoint: str | os.PathLike | None = None,
    export_demo: bool = True,
    latency_rounds: int = 30,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build `precisions` into WORKDIR and return the updated bundle.json data.

    calib: clip set to calibrate on, any labels (None: a generated synthetic set). eval_clips:
    held-out clip set for verification (None: synthetic test clips, or the clips of `calib` that
    calibration did not use); eval_size 0 skips verification, and clips not labelled like the
    model skip the accuracy check. op_types: op types INT8 quantizes (None: the measured
    default). exclude: node-name regexes kept in float. checkpoint: export it first when WORKDIR
    has no model.onnx (one exported from another checkpoint is refused); without it a folder
    with no model.onnx gets the bundled demo model if `export_demo`, else an error, and a
    folder this call created is removed when the build fails. The whole build holds WORKDIR's lock.
    """
    from lvt_edge.variants.quantize import DEFAULT_OP_TYPES, METHODS
    from lvt_edge.export.pipeline import checkpoint_sha256, removed_if_failed_empty
    from lvt_edge.workdir import workdir_lock

    if log is None:
        from lvt_edge import console

        def log(msg: str) -> None:
            (console.write if msg.startswith("WARNING") else console.note)(f"lvt-edge build: {msg}")
    precisions = parse_precisions(precisions)
    tgt = resolve_target(target, log=log)
    batch = parse_batch(batch)
    check_request(tgt, precisions, plugin=plugin, no_plugin=no_plugin,
                  batch=None if batch == DEFAULT_BATCH else batch)
    _check_arguments(calib=calib, calib_size=calib_size, eval_clips=eval_clips, eval_size=eval_size,
                     latency_rounds=latency_rounds, method=method, methods=METHODS, op_types=op_types,
                     exclude=exclude)
    settings = {"method": method, "op_types": list(op_types or DEFAULT_OP_TYPES), "exclude": list(exclude)}
    workdir = Path(workdir)
    if checkpoint is None and not export_demo and not (workdir / B.onnx_name("fp32")).is_file():
        raise missing_model_error(workdir)
    if checkpoint is not None:
        checkpoint_sha256(checkpoint)  # a missing file fails before anything is created
    export = {"checkpoint": checkpoint, "export_demo": export_demo}
    with removed_if_failed_empty(workdir), workdir_lock(workdir, log=log):
        _sweep(workdir, log)
        return _build_locked(workdir, precisions, tgt, calib, calib_size, settings, plugin, no_plugin, batch,
                             force, eval_clips, eval_size, latency_rounds, progress, log, export)


def _check_arguments(*, calib, calib_size, eval_clips, eval_size, latency_rounds, method, methods, op_types,
                     exclude) -> None:
    """Everything about the request that can be checked before exporting, decoding or calibrating."""
    from lvt_edge.variants.graph import check_exclude

    C.check_count("--calib-size", calib_size, minimum=1, optional=True)
    C.check_count("--eval-size", eval_size, minimum=0)
    C.check_count("latency_rounds", latency_rounds, minimum=0)
    if method not in methods:
        raise LvtEdgeError(f"unknown calibration method {method!r}; choose one of {', '.join(methods)}")
    if op_types is not None and (not op_types or not all(isinstance(o, str) and o.strip() for o in op_types)):
        raise LvtEdgeError(f"--op-types {op_types!r}: give one or more ONNX op types, e.g. MatMul,Gemm")
    check_exclude(exclude)
    for flag, path in (("--calib", calib), ("--eval", eval_clips)):
        if path is not None and not Path(path).exists():
            raise LvtEdgeError(f"clip set {path} not found ({flag}); pass a folder per class or a manifest "
                               "(.csv/.jsonl), or make one with `lvt-edge clips synth`")


def _sweep(workdir: Path, log) -> None:
    from lvt_edge.variants.cache import CACHE_TEMPORARIES, cache_root
    from lvt_edge.variants.quantize import TEMP_PREFIX
    from lvt_edge.export.pipeline import EXPORT_TEMPORARIES
    from lvt_edge.workdir import sweep_stale

    sweep_stale(workdir, (*EXPORT_TEMPORARIES, ".model.*.engine.*.tmp", TEMP_PREFIX + "*"), log=log)
    sweep_stale(cache_root(workdir), CACHE_TEMPORARIES, log=log)


def _update_bundle(workdir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read bundle.json, apply `change`, write it back (under the work folder's lock)."""
    data = B.read_bundle(workdir)
    change(data)
    B.write_bundle(workdir, data)
    return data


def _build_locked(workdir, precisions, tgt, calib, calib_size, settings, plugin, no_plugin, batch, force,
                  eval_clips, eval_size, latency_rounds, progress, log, export) -> dict[str, Any]:
    calib_set = C.open_calibration_set(calib) if calib is not None else None
    fp32_path = ensure_exported(workdir, log, **export)
    data = B.read_bundle(workdir)
    contract = B.bundle_contract(data)
    load_lvt_onnx(fp32_path, rebuild=f"re-run `lvt-edge export -o {workdir}`")
    model_sha = sha256_file(fp32_path)
    recorded = (data["variants"].get("fp32") or {}).get("sha256")
    if recorded and recorded != model_sha:
        raise LvtEdgeError(f"{fp32_path} changed since it was exported (sha256 differs from {B.BUNDLE_JSON}); "
                           f"re-run `lvt-edge export -o {workdir}`")

    subset = None
    if any(p in CALIBRATED for p in precisions):
        if calib_set is None:
            calib_set = C.synthetic_clipset(workdir, split="calib", num=calib_size or C.DEFAULT_CALIB_SIZE,
                                            seed=C.CALIB_SEED, progress=progress)
        subset = C.calibration_subset(calib_set, calib_size)
    loaded: dict[str, np.ndarray] = {}

    def calibration_clips() -> np.ndarray:
        if "clips" not in loaded:
            loaded["clips"] = C.load_pixels(subset, contract, progress=progress).clips
        return loaded["clips"]

    cache = CalibrationCache(workdir, log=log)
    for p in precisions:
        if p in CALIBRATED:
            _calibrated_variant(p, workdir, fp32_path, model_sha, subset, settings, cache, force,
                                calibration_clips, "synthetic" if calib is None else "clipset", log, progress)

    if tgt.name == "tensorrt":
        _build_engines(workdir, precisions, contract, plugin, no_plugin, batch, log)

    eval_set = _eval_set(workdir, calib, calib_set, subset, eval_clips, eval_size, progress)
    held = None
    if eval_set is not None:
        clips, labels = _verify(workdir, precisions, eval_set, contract, latency_rounds, progress, log)
        held = (clips, labels, C.describe(eval_set))
        if tgt.name == "tensorrt":
            _verify_engines(workdir, precisions, clips, labels, C.describe(eval_set), log)
    step_precisions = [p for p in precisions if p in CALIBRATED]
    if step_precisions and data.get("step"):
        from lvt_edge.variants.step import build_step_variants

        # a causal model streams with its step model: it gets the same precisions (ONNX Runtime)
        build_step_variants(workdir, step_precisions, subset, calibration_clips, held, settings, cache, force,
                            _update_bundle, log, progress)
    if tgt.name == "tensorrt" and data.get("step"):
        _build_step_engines(workdir, precisions, plugin, no_plugin, batch, log)
        if held is not None:
            _verify_step_engines(workdir, precisions, *held, log)
    return B.read_bundle(workdir)


def build_engines(
    workdir: str | os.PathLike,
    precisions: str | Sequence[str] = "all",
    *,
    plugin: str | os.PathLike | None = None,
    no_plugin: bool = False,
    batch: str | tuple[int, int, int] = DEFAULT_BATCH,
    eval_clips: str | os.PathLike | None = None,
    eval_size: int = C.DEFAULT_EVAL_SIZE,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """TensorRT engines for the ONNX variants WORKDIR already has (calibrated here or on another
    machine: precision lives in the ONNX), each checked against ONNX Runtime on held-out clips
    (`eval_clips`, else synthetic test clips; eval_size 0 skips the check). Needs neither torch nor
    modelopt, so a Jetson can run it on a bundle built elsewhere."""
    from lvt_edge.runtime.files import checked_file
    from lvt_edge.workdir import workdir_lock

    if log is None:
        from lvt_edge import console

        def log(msg: str) -> None:
            (console.write if msg.startswith("WARNING") else console.note)(f"lvt-edge build: {msg}")
    precisions = parse_precisions(precisions)
    tgt = resolve_target("tensorrt")
    batch = parse_batch(batch)
    check_request(tgt, precisions, plugin=plugin, no_plugin=no_plugin)
    C.check_count("--eval-size", eval_size, minimum=0)
    workdir = Path(workdir)
    with workdir_lock(workdir, log=log):
        data = B.read_bundle(workdir)
        for p in precisions:
            entry = B.variant(data, p, workdir)
            checked_file(workdir, entry["onnx"], entry.get("sha256"), what=f"{p} ONNX model",
                         rebuild=B.rebuild_command(workdir, p))
        steps = _step_entries(workdir, data, precisions)
        contract = B.bundle_contract(data)
        _build_engines(workdir, precisions, contract, plugin, no_plugin, batch, log)
        if steps:
            _build_step_engines(workdir, precisions, plugin, no_plugin, batch, log)
        if eval_size > 0:
            eval_set = (C.open_calibration_set(eval_clips).subset(eval_size, C.CALIB_SEED) if eval_clips is not None
                        else C.synthetic_clipset(workdir, split="test", num=eval_size, seed=C.EVAL_SEED,
                                                 progress=progress))
            clips, labels = _held_out_clips(eval_set, contract, progress)
            _verify_engines(workdir, precisions, clips, labels, C.describe(eval_set), log)
            if steps:
                _verify_step_engines(workdir, precisions, clips, labels, C.describe(eval_set), log)
    return B.read_bundle(workdir)


def _calibrated_variant(p, workdir, fp32_path, model_sha, subset, settings, cache, force,
                        calibration_clips, source, log, progress) -> dict[str, Any]:
    """Calibrate (or take from the cache) precision `p`, then commit its ONNX and its bundle.json
    entry together."""
    from lvt_edge.variants.fp16 import fp16_onnx_from_onnx
    from lvt_edge.variants.quantize import modelopt_version, qdq_onnx_from_onnx
    from lvt_edge.workdir import commit, temp_beside

    key_settings = dict(settings, clips=len(subset))
    if p == "int8":
        key_settings["quantizer"] = modelopt_version()
    key = calibration_key(p, model_sha, subset.content_hash, key_settings)
    dst = workdir / B.onnx_name(p)
    hit = None if force else cache.get(p, key)
    t0 = time.perf_counter()
    with temp_beside(dst) as tmp:
        if hit is not None:
            log(f"{p}: reusing cached calibration {key} (same model, clips and settings; --force redoes it)")
            shutil.copyfile(hit.onnx, tmp)
            meta = hit.meta
            info, build_time = meta["info"], meta["build_time_s"]
        else:
            log(f"{p}: calibrating on {len(subset)} clips (key {key})")
            if p == "int8":
                info = qdq_onnx_from_onnx(fp32_path, tmp, calibration_clips(), method=settings["method"],
                                          op_types=settings["op_types"], exclude=settings["exclude"])
            else:
                info = fp16_onnx_from_onnx(fp32_path, tmp, calibration_clips(), exclude=settings["exclude"],
                                           progress=progress)
            build_time = round(time.perf_counter() - t0, 2)
            cache.put(p, key, tmp, {"info": info, "build_time_s": build_time})
        entry = {
            "precision": p,
            "onnx": dst.name,
            "sha256": sha256_file(tmp),
            "size_bytes": tmp.stat().st_size,
            "build_time_s": build_time,
            "fp32_sha256": model_sha,
            "calibration": {"key": key, "reused": hit is not None, "clipset": C.describe(subset, digests=True), "source": source},
            "quantization" if p == "int8" else "conversion": info,
            "verification": None,
        }

        def record(data: dict[str, Any]) -> None:
            old = data["variants"].get(p) or {}
            if old.get("tensorrt") and old.get("sha256") != entry["sha256"]:
                log(f"dropping the old {p} TensorRT engine record: it was built from another ONNX")
            elif old.get("tensorrt"):
                entry["tensorrt"] = old["tensorrt"]
            data["variants"][p] = entry

        commit([(tmp, dst)], lambda: _update_bundle(workdir, record))
    return entry


def _build_engines(workdir, precisions, contract, plugin, no_plugin, batch, log) -> None:
    from lvt_edge.variants.tensorrt import engine_from_onnx

    for p in precisions:
        entry = B.variant(B.read_bundle(workdir), p, workdir)
        log(f"{p}: building the TensorRT engine")
        engine = engine_from_onnx(workdir / entry["onnx"], workdir / B.engine_name(p), contract,
                                  workdir=workdir, plugin=plugin, use_plugin=not no_plugin, batch=batch, log=log)
        _update_bundle(workdir, lambda data, p=p, engine=engine: data["variants"][p].update(tensorrt=engine))


def _step_entries(workdir: Path, data: dict[str, Any], precisions: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The step entry of each precision of a causal bundle (none for a window model), its ONNX
    file checked, so a missing step variant fails before any engine is built."""
    from lvt_edge.runtime.files import checked_file
    from lvt_edge.runtime.stream import has_step, step_variant

    if not has_step(data):
        return {}
    entries = {p: step_variant(data, p, workdir) for p in precisions}
    for p, entry in entries.items():
        checked_file(workdir, entry["onnx"], entry.get("sha256"), what=f"{p} step ONNX file",
                     rebuild=B.rebuild_command(workdir, p))
    return entries


def _build_step_engines(workdir, precisions, plugin, no_plugin, batch, log) -> None:
    """One step engine per precision, from the step ONNX of that precision, recorded under
    bundle.json's step["engines"]."""
    from lvt_edge.variants.tensorrt import step_engine_from_onnx

    for p, entry in _step_entries(workdir, B.read_bundle(workdir), precisions).items():
        log(f"{p} step model: building the TensorRT engine")
        rec = step_engine_from_onnx(workdir, p, entry, plugin=plugin, use_plugin=not no_plugin, batch=batch,
                                    log=log)
        rec["onnx_sha256"] = entry["sha256"]  # a step variant rebuilt later drops this record
        _update_bundle(workdir, lambda data, p=p, rec=rec: data["step"].setdefault("engines", {}).__setitem__(p, rec))


def _verify_step_engines(workdir, precisions, clips, labels, info, log) -> None:
    """Each step engine against the ONNX Runtime step model of its precision, both fed the held-out
    clips frame by frame, into step["engines"][p]["verification"]. Like the clip engines, one below
    its floor is kept with a warning: the ONNX models it came from were verified already."""
    from lvt_edge.runtime import load_step
    from lvt_edge.variants.step import VERIFY_BATCH, step_agreement

    records = {}
    for p in _step_entries(workdir, B.read_bundle(workdir), precisions):
        with load_step(workdir, p, backend="tensorrt") as got, load_step(workdir, p, backend="onnxruntime") as ref:
            records[p] = step_agreement(p, ref, got, clips, labels, info, engine=True,
                                        batch=min(VERIFY_BATCH, got.max_batch))
    _record_engine_checks(workdir, records, "step engine", "at the final frame of", " fed frame by frame",
                          lambda data, p: data["step"]["engines"][p], log)


def _eval_set(workdir, calib, calib_set, subset, eval_clips, eval_size, progress):
    if eval_size <= 0:
        return None
    if eval_clips is not None:
        return C.open_calibration_set(eval_clips).subset(eval_size, C.CALIB_SEED)
    if calib is None:
        return C.synthetic_clipset(workdir, split="test", num=eval_size, seed=C.EVAL_SEED, progress=progress)
    if calib_set is None:
        calib_set = C.open_calibration_set(calib)
    rest = C.held_out(calib_set, subset, eval_size) if subset is not None else calib_set.subset(eval_size, C.CALIB_SEED)
    if rest is None:
        warnings.warn("every clip of the calibration set was used for calibration, so none is left to "
                      "verify on; pass held-out clips with --eval CLIPSET", C.CalibrationWarning, stacklevel=4)
    return rest


def _held_out_clips(eval_set, contract, progress) -> tuple[np.ndarray, np.ndarray | None]:
    """(clips, labels) of a held-out set; labels None when they are not the model's."""
    if C.labels_match(eval_set, contract):
        from lvt_edge.data import load_clips

        held = load_clips(eval_set, contract, progress=progress)
        return held.clips, held.labels
    return C.load_pixels(eval_set, contract, progress=progress).clips, None


def _verify_engines(workdir, precisions, clips, labels, info, log) -> None:
    """Each engine against the ONNX Runtime variant of its precision, into variants[p]["tensorrt"]."""
    from lvt_edge.variants.verify import engine_agreement

    records = {p: engine_agreement(workdir, p, clips, labels, info) for p in precisions}
    _record_engine_checks(workdir, records, "engine", "on", "", lambda data, p: data["variants"][p]["tensorrt"], log)


def _record_engine_checks(workdir, records, what, on, fed, entry, log) -> None:
    """Say how each engine's check went (a warning below its floor) and record it in bundle.json
    under entry(data, precision)["verification"]."""
    for p, rec in records.items():
        said = (f"the {p} TensorRT {what} agrees with ONNX Runtime {on} {rec['agreement_pct']:.1f}% of {rec['clips']} "
                f"held-out clips{fed} (largest logit difference {rec['max_abs_logit_diff']:.3g})")
        if rec["within_tolerance"]:
            log(said)
        else:
            log(f"WARNING: {said}, below the {rec['min_agreement_pct']}% expected: check that the plugin library "
                "matches this TensorRT, or rebuild with --no-plugin to compare")

    def record(data: dict[str, Any]) -> None:
        for p, rec in records.items():
            entry(data, p)["verification"] = rec

    _update_bundle(workdir, record)


def _verify(workdir, precisions, eval_set, contract, latency_rounds, progress, log) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-1 and latency of every precision on ONNX Runtime; returns the held-out (clips, labels)."""
    from lvt_edge.variants.verify import accuracy_skipped, latency_side_by_side, top1, verification

    info = C.describe(eval_set)
    order = ["fp32", *(p for p in precisions if p != "fp32")]
    records: dict[str, dict[str, Any]] = {}
    clips, labels = _held_out_clips(eval_set, contract, progress)
    if labels is not None:
        ref_acc = ref_pred = None
        for p in order:
            acc, pred = top1(workdir, p, clips, labels, progress=progress)
            if p == "fp32":
                ref_acc, ref_pred = acc, pred
            rec = verification(p, acc, pred, ref_acc, ref_pred, info)
            if rec.get("within_tolerance") is False:
                log(f"WARNING: {p} top-1 is {rec['drop_pt']:.2f} points below fp32 on {len(clips)} held-out clips "
                    f"(tolerance {rec['tolerance_pt']}); calibrate on more or more typical clips, or --exclude "
                    "the sensitive nodes")
            records[p] = rec
    else:
        why = (f"the held-out clips ({eval_set.root}) are labelled {', '.join(sorted({c.label for c in eval_set.clips})[:6])}"
               f"{', ...' if len({c.label for c in eval_set.clips}) > 6 else ''}, which are not all the model's labels")
        log(f"note: {why}; skipping the accuracy check (latency is still measured). Pass clips labelled like the "
            "model with --eval CLIPSET to check top-1")
        records = {p: accuracy_skipped(info, why) for p in order}
    if latency_rounds > 0:
        lat = latency_side_by_side(workdir, order, clips[0], rounds=latency_rounds)
        for p, ms in lat.items():
            records[p].update(latency_ms_b1=round(ms, 3), speedup_vs_fp32=round(lat["fp32"] / ms, 3),
                              latency_rounds=latency_rounds)

    def record(data: dict[str, Any]) -> None:
        for p, rec in records.items():
            # fp32 keeps the export's own check (PyTorch vs ONNX) under "verification".
            data["variants"][p]["heldout"] = rec
            if p != "fp32":
                data["variants"][p]["verification"] = rec

    _update_bundle(workdir, record)
    return clips, labels
