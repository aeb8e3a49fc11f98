"""`onnx_from_checkpoint`: checkpoint -> verified WORKDIR/model.onnx + WORKDIR/bundle.json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import onnx

from lvt_edge import __version__
from lvt_edge.bundle import (
    DEFAULT_WORKDIR, META_CONFIG, META_CONTRACT, META_LABELS, META_OPSET, META_PRECISION,
    META_SOURCE_SHA256, META_VERSION,
    new_bundle, onnx_name, write_bundle,
)
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, sha256_file
from lvt_edge.export.node import DOMAIN, OP_TYPE, PLUGIN_VERSION
from lvt_edge.export.simplify import SIMPLIFIERS, simplified_onnx
from lvt_edge.export.torch_export import count_ffla_functions, count_ffla_nodes, onnx_from_model
from lvt_edge.export.verify import verify_onnx


def onnx_from_checkpoint(
    checkpoint: str | os.PathLike | None = None,
    workdir: str | os.PathLike = DEFAULT_WORKDIR,
    *,
    simplifier: str = "onnxslim",
    fuse: bool = True,
    opset: int = 20,
    verify_clipset: str | os.PathLike | None = None,
) -> Path:
    """Export, simplify, verify against PyTorch, then write model.onnx and bundle.json.

    `checkpoint` None exports the bundled demo model. Nothing is written unless ONNX Runtime
    matches PyTorch within `lvt_edge.export.verify.ATOL`. Returns the ONNX path.
    """
    from lvt_edge.demo import demo_checkpoint
    from lvt_edge.model.checkpoint import load_checkpoint

    if simplifier not in SIMPLIFIERS:
        raise LvtEdgeError(f"unknown simplifier {simplifier!r}; choose one of {', '.join(SIMPLIFIERS)}")
    workdir = Path(workdir)
    _check_writable(workdir)
    ckpt = load_checkpoint(checkpoint if checkpoint is not None else demo_checkpoint())
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

    path = workdir / onnx_name("fp32")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    sha = sha256_file(path)
    source = {"checkpoint": ckpt.path.name if ckpt.path else None, "sha256": ckpt.sha256,
              "path": str(ckpt.path.resolve()) if ckpt.path else None}
    bundle = new_bundle(ckpt.contract, ckpt.config.to_dict(), source)
    bundle["export"] = {
        "onnx": path.name, "sha256": sha, "opset": opset, "fused": fuse and count_ffla_nodes(proto) > 0,
        "ffla_nodes": count_ffla_nodes(proto), "simplifier": simplifier, "export_time_s": round(build_time, 3),
        "verification": verification, "tool_versions": _tool_versions(),
    }
    bundle["variants"]["fp32"] = {
        "precision": "fp32", "onnx": path.name, "sha256": sha, "size_bytes": path.stat().st_size,
        "target": "onnxruntime", "build_time_s": round(build_time, 3), "verification": verification,
    }
    write_bundle(workdir, bundle)
    return path


def _check_writable(workdir: Path) -> None:
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LvtEdgeError(f"cannot create output folder {workdir}: {e.strerror}; choose a writable -o folder") from e
    if not workdir.is_dir() or not os.access(workdir, os.W_OK | os.X_OK):
        raise LvtEdgeError(f"output folder {workdir} is not writable; choose another -o folder")


def _check_fused(proto: onnx.ModelProto, cfg, fuse: bool) -> None:
    """The exporter can fall back silently to another tracing route; make sure ours took."""
    want = 2 * cfg.depth if fuse and cfg.attention != "softmax" else 0
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
