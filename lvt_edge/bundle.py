"""A bundle is a folder: ONNX files, optional TensorRT engines, and one `bundle.json`.

This module owns the folder's layout and the JSON's schema; it needs no torch.

    WORKDIR/model.onnx          fp32, written by `lvt-edge export`
    WORKDIR/model.fp16.onnx     written by `lvt-edge build --precision fp16`
    WORKDIR/model.int8.onnx     written by `lvt-edge build --precision int8`
    WORKDIR/model.<p>.engine    TensorRT engine of precision p (plain, loadable by trtexec)
    WORKDIR/bundle.json         everything below

bundle.json:
    format, format_version, lvt_edge_version
    contract        the clip contract (lvt_edge.contract.ClipContract.to_dict())
    model_config    the LVT config (lvt_edge.model.config.LVTConfig.to_dict())
    source          {"checkpoint": file name, "sha256": weights hash}
    export          {"onnx", "sha256", "opset", "fused", "simplifier", "verification", "tool_versions"}
    variants        {precision: {"precision", "onnx", "sha256", "size_bytes", "build_time_s",
                                 "verification", ... precision-specific keys,
                                 "tensorrt": {"engine", "sha256", "tensorrt_version", "gpu",
                                              "compute_capability", "plugin": {...}} (optional)}}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lvt_edge import __version__
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import read_format_json, write_json_atomic

FORMAT = "lvt_edge.bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_WORKDIR = "lvt-bundle"

# Keys under which artifacts carry lvt_edge metadata in ONNX metadata_props.
META_CONTRACT = "lvt_edge.contract"
META_CONFIG = "lvt_edge.model_config"
META_VERSION = "lvt_edge.version"
META_SOURCE_SHA256 = "lvt_edge.source_sha256"
META_PRECISION = "lvt_edge.precision"
META_LABELS = "lvt_edge.labels"
META_OPSET = "lvt_edge.opset"


def onnx_name(precision: str) -> str:
    return "model.onnx" if precision == "fp32" else f"model.{precision}.onnx"


def engine_name(precision: str) -> str:
    return f"model.{precision}.engine"


def new_bundle(contract: ClipContract, model_config: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lvt_edge_version": __version__,
        "contract": contract.to_dict(),
        "model_config": model_config,
        "source": source,
        "export": {},
        "variants": {},
    }


def bundle_path(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / BUNDLE_JSON


def has_bundle(workdir: str | os.PathLike) -> bool:
    return bundle_path(workdir).is_file()


def read_bundle(workdir: str | os.PathLike) -> dict[str, Any]:
    path = bundle_path(workdir)
    if not path.is_file():
        raise LvtEdgeError(f"no {BUNDLE_JSON} in {workdir}; run `lvt-edge export -o {workdir}` (or `lvt-edge build {workdir}`) first")
    return read_format_json(path, FORMAT, FORMAT_VERSION, "an lvt_edge bundle",
                            f"re-run `lvt-edge export -o {workdir}`")


def write_bundle(workdir: str | os.PathLike, data: dict[str, Any]) -> None:
    write_json_atomic(bundle_path(workdir), data)


def bundle_contract(data: dict[str, Any]) -> ClipContract:
    return ClipContract.from_dict(data["contract"])


def variant(data: dict[str, Any], precision: str, workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The bundle's entry for `precision`, with a fix-it error when it was not built."""
    if precision not in PRECISIONS:
        raise LvtEdgeError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    entry = data.get("variants", {}).get(precision)
    if entry is None:
        where = workdir or "WORKDIR"
        raise LvtEdgeError(
            f"the bundle has no {precision} variant (built: {', '.join(data.get('variants', {})) or 'none'}); "
            f"run `lvt-edge build {where} --precision {precision}`"
        )
    return entry
