"""`onnx_from_checkpoint`: checkpoint -> verified WORKDIR/model.onnx + WORKDIR/bundle.json,
under the work folder's rules (`lvt_edge.workdir`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import onnx

from lvt_edge import __version__
from lvt_edge.bundle import (
    BUNDLE_JSON, DEFAULT_WORKDIR, META_CONFIG, META_CONTRACT, META_LABELS, META_OPSET, META_PRECISION,
    META_SOURCE_SHA256, META_VERSION, PRECISIONS,
    engine_name, has_bundle, new_bundle, onnx_name, read_bundle, write_bundle,
)
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file
from lvt_edge.model.checkpoint import Checkpoint
from lvt_edge.export.ffla_function import ffla_body_sha256
from lvt_edge.export.node import DOMAIN, OP_TYPE, PLUGIN_VERSION
from lvt_edge.export.simplify import SIMPLIFIERS, simplified_onnx
from lvt_edge.export.step import STEP_ONNX, step_export
from lvt_edge.export.torch_export import MIN_OPSET, count_ffla_functions, count_ffla_nodes, onnx_from_model
from lvt_edge.export.verify import verify_onnx
from lvt_edge.workdir import commit, sweep_stale, temp_beside, workdir_lock

EXPORT_TEMPORARIES = (".model*.onnx.*.tmp", f".{BUNDLE_JSON}.*.tmp")  # what an interrupted export leaves


def onnx_from_checkpoint(
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    workdir: str | os.PathLike = DEFAULT_WORKDIR,
    *,
    simplifier: str = "onnxslim",
    fuse: bool = True,
    opset: int = 20,
    verify_clipset: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
    infer_architecture: bool = False,
    model: str | None = None,
) -> Path:
    """Export, simplify, verify against PyTorch, then write model.onnx and bundle.json.

    `checkpoint` None exports the bundled demo model; a loaded `Checkpoint` (e.g. from
    `random_init_checkpoint`) is exported as it is. Nothing is written unless ONNX Runtime
    matches PyTorch within `lvt_edge.export.verify.ATOL`, and a folder this call created is
    removed again when it fails. `model` names the config of an official checkpoint (default
    lvt-base); our checkpoints carry their own. Variants an earlier build made are
    kept when model.onnx comes out byte-identical, and removed (with a message) when it
    changed. Returns the ONNX path.
    """
    from lvt_edge.demo import demo_checkpoint
    from lvt_edge.model.checkpoint import load_checkpoint

    if log is None:
        from lvt_edge import console

        def log(msg: str) -> None:
            console.note(f"lvt-edge export: {msg}")
    if simplifier not in SIMPLIFIERS:
        raise LvtEdgeError(f"unknown simplifier {simplifier!r}; choose one of {', '.join(SIMPLIFIERS)}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise LvtEdgeError(f"opset {opset} is too old or not a whole number: use --opset {MIN_OPSET} or newer "
                           "(nvidia-modelopt drops the model-local functions of older opsets)")
    if verify_clipset is not None and not Path(verify_clipset).exists():
        raise LvtEdgeError(f"clip set {verify_clipset} not found (--verify-clips); pass a folder per class or a "
                           "manifest, or make one with `lvt-edge clips synth`")
    official_kw: dict[str, Any] = {"infer_architecture": infer_architecture}
    if model is not None:
        _check_model_for(checkpoint, model)
        official_kw["model"] = model
    workdir = Path(workdir)
    with removed_if_failed_empty(workdir), workdir_lock(workdir, log=log):
        sweep_stale(workdir, EXPORT_TEMPORARIES, log=log)
        if isinstance(checkpoint, Checkpoint):
            ckpt = checkpoint
        else:
            ckpt = load_checkpoint(_checkpoint_path(checkpoint) if checkpoint is not None else demo_checkpoint(),
                                   **official_kw)
        real = _load_real_clips(verify_clipset, ckpt.contract) if verify_clipset is not None else None

        t0 = time.perf_counter()
        proto = onnx_from_model(ckpt.model, fuse=fuse, opset=opset)
        _check_fused(proto, ckpt.config, fuse)
        proto = simplified_onnx(proto, simplifier)
        _set_metadata(proto, ckpt, opset)
        onnx.checker.check_model(proto)
        data = proto.SerializeToString()
        build_time = time.perf_counter() - t0
        verification = verify_onnx(ckpt.model, data, real_clips=real,
                                   real_name=str(verify_clipset) if verify_clipset is not None else None)
        step = step_export(ckpt.model, simplifier=simplifier, fuse=fuse, opset=opset,
                           set_metadata=lambda p: _set_metadata(p, ckpt, opset)) if ckpt.config.causal else None

        path = workdir / onnx_name("fp32")
        with temp_beside(path) as tmp, temp_beside(workdir / STEP_ONNX) as step_tmp:
            tmp.write_bytes(data)
            sha = sha256_file(tmp)
            source = ckpt.extra.get(RANDOM_INIT) or {
                "checkpoint": ckpt.path.name if ckpt.path else None, "sha256": ckpt.sha256,
                "path": str(ckpt.path.resolve()) if ckpt.path else None}
            bundle = new_bundle(ckpt.contract, ckpt.config.to_dict(), source)
            bundle["export"] = {
                "onnx": path.name, "sha256": sha, "opset": opset, "fused": fuse and count_ffla_nodes(proto) > 0,
                "ffla_nodes": count_ffla_nodes(proto), "simplifier": simplifier,
                "ffla_body_sha256": ffla_body_sha256() if count_ffla_nodes(proto) else None,
                "export_time_s": round(build_time, 3), "verification": verification,
                "tool_versions": _tool_versions(),
            }
            bundle["variants"]["fp32"] = {
                "precision": "fp32", "onnx": path.name, "sha256": sha, "size_bytes": len(data),
                "target": "onnxruntime", "build_time_s": round(build_time, 3), "verification": verification,
            }
            stale = _carry_over_variants(workdir, bundle, sha, log)
            moves = [(tmp, path)]
            if step is not None:  # a causal model streams: its step graph goes next to model.onnx
                step_tmp.write_bytes(step.data)
                bundle["step"] = step.bundle_entry(sha256_file(step_tmp))
                moves.append((step_tmp, workdir / STEP_ONNX))
            elif (workdir / STEP_ONNX).exists():
                stale.append(STEP_ONNX)
            stale += _carry_over_step(workdir, bundle, log)
            commit(moves, lambda: write_bundle(workdir, bundle))
        for name in stale:
            (workdir / name).unlink(missing_ok=True)
    return path


# A checkpoint made by random_init_checkpoint carries its bundle.json source under this key.
RANDOM_INIT = "random_init"
RANDOM_HEAD_STD = 1.0


def random_init_checkpoint(model: str, *, seed: int = 0, num_classes: int | None = None) -> Checkpoint:
    """An untrained `model` config with seeded random weights, as a Checkpoint to export.

    Labels: the synthetic motion clips' (`lvt_edge.data.synth.LABELS`), or class_0.. when
    `num_classes` is given. frame_interval: the synthetic clips' frame spacing at the contract's
    stride (2 / 15 s), so live streams can sample it. The last head layer is drawn wider than
    training's init so the classes do not tie. The bundle's source records it as untrained.
    """
    import torch

    from lvt_edge.data import synth
    from lvt_edge.model import create_model, get_config
    from lvt_edge.model.checkpoint import contract_for

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LvtEdgeError(f"--seed must be a whole number >= 0 (got {seed!r})")
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise LvtEdgeError(f"--num-classes must be a whole number >= 1 (got {num_classes!r})")
    labels = synth.LABELS if num_classes is None else tuple(f"class_{i}" for i in range(num_classes))
    get_config(model)  # unknown names fail here, with the list of configs
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        net = create_model(model, num_classes=len(labels))
        # At the training init (std 0.02) all classes tie to ~1e-6, below the ORT-vs-PyTorch
        # noise, so export verification's top-1 agreement would be a coin toss; spread them.
        net.head[-1].weight.normal_(0.0, RANDOM_HEAD_STD)
    net.eval()
    contract = contract_for(net.cfg, labels)
    contract = contract.replace(frame_interval=contract.stride / synth.FPS)
    source = {RANDOM_INIT: True, "model": model, "seed": seed}
    return Checkpoint(net, contract, None, None, {RANDOM_INIT: source})


def _checkpoint_path(checkpoint: str | os.PathLike) -> str | os.PathLike:
    """`checkpoint`, or a fix-it error when it names a model config rather than a file."""
    from lvt_edge.demo import resolve_checkpoint
    from lvt_edge.model import list_configs
    from lvt_edge.model.checkpoint import OFFICIAL_SUFFIXES, paths_of

    checkpoint = resolve_checkpoint(checkpoint)
    p = Path(checkpoint)
    if str(checkpoint) in list_configs() and not p.exists() and not any(q.exists() for q in paths_of(p)) \
            and p.suffix not in OFFICIAL_SUFFIXES:
        raise LvtEdgeError(
            f"{checkpoint} is a model config, not a checkpoint file: export it untrained with "
            f"`lvt-edge export --model {checkpoint} --random-init`, or train it first with "
            f"`lvt-edge train --model {checkpoint} ...` and export the checkpoint that writes")
    return checkpoint


def _check_model_for(checkpoint, model: str) -> None:
    from lvt_edge.model import get_config
    from lvt_edge.model.checkpoint import OFFICIAL_SUFFIXES

    get_config(model)
    if checkpoint is None or isinstance(checkpoint, Checkpoint) or Path(checkpoint).suffix not in OFFICIAL_SUFFIXES:
        raise LvtEdgeError(
            f"--model {model} names the config of an official checkpoint (.pth/.pyth/.pt/.ckpt) or, with "
            f"--random-init, the config to export untrained; an lvt_edge checkpoint carries its own config, "
            "so drop --model")


def checkpoint_sha256(checkpoint: str | os.PathLike) -> str:
    """The sha256 a bundle records as its source for this checkpoint file, without loading it."""
    from lvt_edge.model.checkpoint import OFFICIAL_SUFFIXES, paths_of

    p = Path(_checkpoint_path(checkpoint))
    weights = p if p.suffix in OFFICIAL_SUFFIXES else paths_of(p)[0]
    if not weights.is_file():
        raise LvtEdgeError(f"checkpoint {weights} not found; pass NAME, NAME.safetensors or NAME.json of an "
                           "lvt_edge checkpoint, or an official .pth/.pyth file")
    return sha256_file(weights)


@contextlib.contextmanager
def removed_if_failed_empty(folder: str | os.PathLike) -> Iterator[None]:
    """Remove the folders this block creates (`folder` and missing parents) again if the block
    fails and leaves them empty: a failed export must not leave an empty folder behind."""
    created = []
    p = Path(folder).absolute()
    while not os.path.lexists(p) and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        yield
    except BaseException:
        for d in created:
            try:
                d.rmdir()
            except OSError:
                break
        raise


def _carry_over_variants(workdir: Path, bundle: dict[str, Any], sha: str, log: Callable[[str], None]) -> list[str]:
    """Keep the previous bundle's variants that were built from this very model.onnx (same
    sha256); return the files of the others, to remove once the new bundle.json is in place."""
    if not has_bundle(workdir):
        return []
    try:
        old = read_bundle(workdir)
    except LvtEdgeError:
        return []
    old_variants = old.get("variants") or {}
    old_fp32_sha = (old_variants.get("fp32") or {}).get("sha256")
    kept, dropped, stale = [], [], []
    for p in PRECISIONS:
        entry = old_variants.get(p)
        if not entry:
            continue
        built_from = old_fp32_sha if p == "fp32" else entry.get("fp32_sha256", old_fp32_sha)
        if built_from == sha:
            if p == "fp32":
                if entry.get("tensorrt"):
                    bundle["variants"]["fp32"]["tensorrt"] = entry["tensorrt"]
            else:
                bundle["variants"][p] = entry
                kept.append(p)
            continue
        files = [] if p == "fp32" else [entry.get("onnx") or onnx_name(p)]
        files += [(entry.get("tensorrt") or {}).get("engine") or engine_name(p)]
        stale += [f for f in files if (workdir / f).exists()]
        if p != "fp32":
            dropped.append(p)
    if kept:
        log(f"{onnx_name('fp32')} is unchanged (same sha256): kept the {', '.join(kept)} variant(s) "
            f"already built in {workdir}")
    if dropped or stale:
        what = f"the {', '.join(dropped)} variant(s)" if dropped else "the old TensorRT engine"
        log(f"{onnx_name('fp32')} changed: removed {what} built from the previous export "
            f"({', '.join(stale) or 'files already gone'}); rebuild with `lvt-edge build {workdir}"
            f"{' --precision ' + ','.join(dropped) if dropped else ''}`")
    return stale


def _carry_over_step(workdir: Path, bundle: dict[str, Any], log: Callable[[str], None]) -> list[str]:
    """Keep the previous bundle's step variants and step engines when the new bundle's
    model.step.onnx is byte-identical to the one they were built from (same sha256); return the
    files of the others (all of them when the model is no longer causal), to remove once the new
    bundle.json is in place."""
    if not has_bundle(workdir):
        return []
    try:
        old = (read_bundle(workdir).get("step")) or {}
    except LvtEdgeError:
        return []
    new, old_sha = bundle.get("step"), old.get("sha256")
    same = new is not None and old_sha == new["sha256"]
    old_variants = old.get("variants") or {}
    # a step variant was built from model.step.onnx, a step engine from the step ONNX of its precision
    variants = {p: e for p, e in old_variants.items() if same and e.get("fp32_sha256", old_sha) == old_sha}
    engines = {}
    for p, rec in (old.get("engines") or {}).items():
        want = old_sha if p == "fp32" else (variants.get(p) or {}).get("sha256")
        if same and want and rec.get("onnx_sha256", want) == want:
            engines[p] = rec
    kept, dropped, stale = [], [], []
    for key, ours, file_key in (("variants", variants, "onnx"), ("engines", engines, "engine")):
        if ours:
            new[key] = ours
        for p, entry in (old.get(key) or {}).items():
            (kept if p in ours else dropped).append((p, "variant" if key == "variants" else "TensorRT engine"))
            if p not in ours and entry.get(file_key) and (workdir / entry[file_key]).exists():
                stale.append(entry[file_key])
    if kept:
        log(f"{STEP_ONNX} is unchanged (same sha256): kept the step model's "
            f"{', '.join(f'{p} {what}' for p, what in kept)} already built in {workdir}")
    if dropped:
        redo = ""
        if new is not None:
            precisions = [p for p in PRECISIONS if any(q == p for q, _ in dropped)]
            engine = " --target tensorrt" if any(what != "variant" for _, what in dropped) else ""
            redo = f"; rebuild with `lvt-edge build {workdir} --precision {','.join(precisions)}{engine}`"
        log(f"{STEP_ONNX} {'changed' if new is not None else 'is gone (the model is not causal)'}: removed the step "
            f"model's {', '.join(f'{p} {what}' for p, what in dropped)} built from the previous export "
            f"({', '.join(stale) or 'files already gone'}){redo}")
    return stale


def _check_fused(proto: onnx.ModelProto, cfg, fuse: bool) -> None:
    """The exporter can fall back silently to another tracing route; make sure ours took."""
    per_block = 1 if cfg.causal else 2  # a causal temporal attention exports plain ops (export/step.py)
    want = per_block * cfg.depth if fuse and cfg.attention != "softmax" else 0
    got, funcs = count_ffla_nodes(proto), count_ffla_functions(proto)
    if got != want or funcs != (1 if want else 0):
        raise RuntimeError(f"expected {want} {DOMAIN}::{OP_TYPE} nodes and {1 if want else 0} function, "
                           f"the export has {got} and {funcs}")


def _set_metadata(proto: onnx.ModelProto, ckpt, opset: int) -> None:
    meta = {
        META_CONTRACT: ckpt.contract.to_json(),
        META_CONFIG: json.dumps(ckpt.config.to_dict()),
        META_LABELS: json.dumps(list(ckpt.contract.labels)),
        META_SOURCE_SHA256: ckpt.sha256 or "",
        META_OPSET: str(opset),
        META_VERSION: __version__,
        META_PRECISION: "fp32",
    }
    onnx.helper.set_model_props(proto, meta)
    proto.producer_name, proto.producer_version = "lvt_edge", __version__


def _load_real_clips(clipset: str | os.PathLike, contract):
    try:
        from lvt_edge.data import load_clips, open_clipset
    except ImportError as e:
        raise LvtEdgeError(f"verifying on a clip set needs lvt_edge.data ({e}); reinstall lvt-edge") from e
    loaded = load_clips(open_clipset(clipset, labels=contract.labels), contract)
    if len(loaded.clips) == 0:
        raise LvtEdgeError(f"no readable clips in {clipset}; check the clip set (`lvt-edge clips`)")
    return loaded.clips


def _tool_versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"lvt_edge": __version__, "plugin_version": PLUGIN_VERSION}
    for pkg in ("torch", "onnx", "onnxruntime", "onnxscript", "onnxslim", "onnxsim"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out
