"""A bundle is a folder: ONNX files, optional TensorRT engines, and one `bundle.json`.

This module owns the folder's layout and the JSON's schema; it needs no torch.

    WORKDIR/model.onnx          fp32, written by `lvt-edge export`
    WORKDIR/model.fp16.onnx     written by `lvt-edge build --precision fp16`
    WORKDIR/model.int8.onnx     written by `lvt-edge build --precision int8`
    WORKDIR/model.<p>.engine    TensorRT engine of precision p (plain, loadable by trtexec)
    WORKDIR/model.step.onnx     causal models only: the step model (one frame + state), fp32
    WORKDIR/model.step.<p>.onnx its fp16 / int8 variants, written by `lvt-edge build` next to model.<p>.onnx
    WORKDIR/model.step.<p>.engine  TensorRT engine of the step model of precision p (`--target tensorrt`)
    WORKDIR/plugins/            the plugin library the engines were built with
    WORKDIR/timing-cache/       TensorRT timing caches, one per TensorRT release and GPU
    WORKDIR/bundle.json         everything below

bundle.json:
    format, format_version, lvt_edge_version
    contract        the clip contract (lvt_edge.contract.ClipContract.to_dict())
    model_config    the LVT config (lvt_edge.model.config.LVTConfig.to_dict())
    source          {"checkpoint": file name, "sha256": weights hash}, or for an untrained export
                    {"random_init": true, "model": config name, "seed": S}
    export          {"onnx", "sha256", "opset", "fused", "simplifier", "verification", "tool_versions"}
    variants        {precision: {"precision", "onnx", "sha256", "size_bytes", "build_time_s",
                                 "verification", ... precision-specific keys,
                                 "tensorrt": {"engine", "sha256", "tensorrt_version" (with its build
                                              number where TensorRT gives one), "gpu", "compute_capability",
                                              "batch" [min, opt, max], "tf32", "plugin_layers",
                                              "plugin": {...} or null, "timing_cache",
                                              "verification": the engine against ONNX Runtime on
                                              held-out clips} (optional)}}
    step            causal models only (lvt_edge.export.step): {"onnx", "sha256", "precision",
                    "frame": {"name", "shape"}, "logits", "horizon", "state": [{"name", "input",
                    "output", "shape" (after the batch axis), "dtype"}, ...] (zeros to start),
                    "state_bytes_fp32", "verification", ..., "variants": {precision: {"precision", "onnx",
                    "sha256", "size_bytes", "fp32_sha256" (of model.step.onnx), "frame" and "state" as above
                    with the variant's own dtypes, "state_bytes", "calibration", "conversion" or
                    "quantization", "verification": frame by frame against model.step.onnx}} (optional),
                    "engines": {precision (fp32 too): {"engine", "sha256", "onnx" (the step ONNX it was
                    built from), "onnx_sha256", and the rest of variants[p]["tensorrt"]: "tensorrt_version",
                    "gpu", "compute_capability", "batch" (the streams range), "plugin", ...}} (optional)}

Engines and plugin libraries are native code: load bundles only from sources you trust.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lvt_edge import __version__
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import dataclass_dict_errors, read_format_json, type_error, write_json_atomic

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


def step_onnx_name(precision: str) -> str:
    """The step model of a causal bundle in `precision`, named like the clip model's variant."""
    return "model.step" + onnx_name(precision)[len("model"):]


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
    """bundle.json of `workdir`, checked against the layout above (fields, types, label count)."""
    path = bundle_path(workdir)
    if not path.is_file():
        raise LvtEdgeError(f"no {BUNDLE_JSON} in {workdir}; run `lvt-edge export -o {workdir}` (or `lvt-edge build {workdir}`) first")
    data = read_format_json(path, FORMAT, FORMAT_VERSION, "an lvt_edge bundle",
                            f"re-run `lvt-edge export -o {workdir}`")
    problems = bundle_problems(data)
    if problems:
        raise LvtEdgeError(
            f"{path} is damaged or was edited by hand: {'; '.join(problems[:6])}"
            + (f" (+{len(problems) - 6} more)" if len(problems) > 6 else "")
            + f". Re-run `lvt-edge export CHECKPOINT -o {workdir}` (it rewrites {BUNDLE_JSON}), "
            f"then `lvt-edge build {workdir}` for the other precisions"
        )
    return data


# bundle.json's own fields (the contract's and the variants' come from their own definitions)
_TOP_FIELDS = {"contract": "dict", "model_config": "dict", "source": "dict", "export": "dict", "variants": "dict",
               "step": "dict"}
_STEP_FIELDS = {"onnx": "str", "sha256": "str", "precision": "str", "frame": "dict", "logits": "str", "state": "list"}
_STATE_FIELDS = {"name": "str", "input": "str", "output": "str", "shape": "tuple[int, ...]", "dtype": "str"}
_STEP_VARIANT_FIELDS = {"precision": "str", "onnx": "str", "sha256": "str", "frame": "dict", "state": "list"}
_STEP_ENGINE_FIELDS = {"engine": "str", "sha256": "str", "onnx": "str"}
_REQUIRED = ("contract", "variants")
_VARIANT_FIELDS = {"precision": "str", "onnx": "str", "sha256": "str | None", "size_bytes": "int | None",
                   "build_time_s": "float | None", "tensorrt": "dict | None"}


def bundle_problems(data: dict[str, Any]) -> list[str]:
    """Every way `data` breaks the bundle.json layout, as "field: why" (empty when sound)."""
    problems = [f"no {k!r}" for k in _REQUIRED if k not in data]
    problems += [f"{k} {why}" for k, kind in _TOP_FIELDS.items() if k in data and (why := type_error(data[k], kind))]
    if problems:
        return problems
    contract = data["contract"]
    problems += dataclass_dict_errors(ClipContract, contract, "contract")
    if not problems:
        try:
            ClipContract.from_dict(contract)
        except LvtEdgeError as e:
            problems.append(f"contract: {e}")
    classes = (data.get("model_config") or {}).get("num_classes")
    if why := type_error(classes, "int | None"):
        problems.append(f"model_config.num_classes {why}")
    elif classes is not None and isinstance(contract.get("labels"), list) and len(contract["labels"]) != classes:
        problems.append(f"contract.labels has {len(contract['labels'])} labels but model_config.num_classes is {classes}")
    for p, entry in data["variants"].items():
        where = f"variants.{p}"
        if p not in PRECISIONS:
            problems.append(f"{where}: unknown precision (known: {', '.join(PRECISIONS)})")
        elif why := type_error(entry, "dict"):
            problems.append(f"{where} {why}")
        else:
            problems += [f"{where}.{k} {why}" for k, kind in _VARIANT_FIELDS.items()
                         if k in entry and (why := type_error(entry[k], kind))]
            if isinstance(entry.get("precision"), str) and entry["precision"] != p:
                problems.append(f"{where}.precision is {entry['precision']!r}, not {p!r} (variants mixed up)")
    if "step" in data:
        problems += step_problems(data["step"])
    return problems


def step_problems(step: dict[str, Any]) -> list[str]:
    """How bundle.json's `step` entry breaks its layout (missing or mistyped fields)."""
    problems = [f"step.{k} {why}" if k in step else f"step has no {k!r}" for k, kind in _STEP_FIELDS.items()
                if k not in step or (why := type_error(step[k], kind))]
    for i, t in enumerate(step.get("state") if isinstance(step.get("state"), list) else []):
        if why := type_error(t, "dict"):
            problems.append(f"step.state[{i}] {why}")
            continue
        problems += [f"step.state[{i}].{k} {why}" if k in t else f"step.state[{i}] has no {k!r}"
                     for k, kind in _STATE_FIELDS.items() if k not in t or (why := type_error(t[k], kind))]
    for key, fields, fp32 in (("variants", _STEP_VARIANT_FIELDS, False), ("engines", _STEP_ENGINE_FIELDS, True)):
        if why := type_error(step.get(key), "dict | None"):
            problems.append(f"step.{key} {why}")
            continue
        for p, entry in (step.get(key) or {}).items():
            where = f"step.{key}.{p}"
            if p not in PRECISIONS or (p == "fp32" and not fp32):
                problems.append(f"{where}: not a step variant precision (fp32 is the step model itself)" if p == "fp32"
                                else f"{where}: unknown precision (known: {', '.join(PRECISIONS)})")
            elif why := type_error(entry, "dict"):
                problems.append(f"{where} {why}")
            else:
                problems += [f"{where}.{k} {why}" if k in entry else f"{where} has no {k!r}"
                             for k, kind in fields.items() if k not in entry or (why := type_error(entry[k], kind))]
    return problems


def write_bundle(workdir: str | os.PathLike, data: dict[str, Any]) -> None:
    write_json_atomic(bundle_path(workdir), data)


def bundle_contract(data: dict[str, Any]) -> ClipContract:
    return ClipContract.from_dict(data["contract"])


def variant(data: dict[str, Any], precision: str, workdir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The bundle's entry for `precision`, with a fix-it error when it was not built."""
    if precision not in PRECISIONS:
        raise LvtEdgeError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    entry = data.get("variants", {}).get(precision)
    where = workdir or "WORKDIR"
    if entry is None:
        raise LvtEdgeError(
            f"the bundle has no {precision} variant (built: {', '.join(data.get('variants', {})) or 'none'}); "
            f"run `lvt-edge build {where} --precision {precision}`"
        )
    return entry


def rebuild_command(workdir: str | os.PathLike, precision: str) -> str:
    """The command that remakes one variant's ONNX file (and its bundle.json entry)."""
    if precision == "fp32":
        return f"lvt-edge export CHECKPOINT -o {workdir}"
    return f"lvt-edge build {workdir} --precision {precision} --force"


def onnx_metadata_problems(meta: dict[str, str], data: dict[str, Any], precision: str) -> list[str]:
    """How an ONNX file's own metadata_props (written by export and build) contradict bundle.json
    for the variant `precision`. Keys the file lacks are not compared (ONNX files from elsewhere)."""
    problems = []
    if META_PRECISION in meta and meta[META_PRECISION] != precision:
        problems.append(f"the file is the {meta[META_PRECISION]} model ({META_PRECISION}), "
                        f"but bundle.json lists it as the {precision} variant")
    labels = list(data["contract"].get("labels", []))
    if META_LABELS in meta:
        try:
            own = json.loads(meta[META_LABELS])
        except json.JSONDecodeError:
            own = None
        if own != labels:
            problems.append(f"its labels ({META_LABELS}) {_label_difference(own, labels)}")
    if META_CONTRACT in meta and not problems:
        try:  # both through ClipContract, so fields added later compare at their defaults
            own = ClipContract.from_json(meta[META_CONTRACT]).to_dict()
        except (LvtEdgeError, ValueError, TypeError) as e:
            own = None
            problems.append(f"its {META_CONTRACT} cannot be read ({e})")
        if own is not None:
            ours = ClipContract.from_dict(data["contract"]).to_dict()
            # frame_interval may be filled in after export; everything else is fixed by the model
            diff = sorted(k for k in ours if k != "frame_interval" and own.get(k) != ours[k])
            if diff:
                problems.append(f"its clip contract ({META_CONTRACT}) differs from bundle.json's in "
                                + ", ".join(f"{k} (file {own.get(k)!r}, bundle.json {ours[k]!r})" for k in diff[:4]))
    return problems


def _label_difference(own: Any, labels: list[str]) -> str:
    if not isinstance(own, list):
        return "are not a JSON list"
    if len(own) != len(labels):
        return f"are {len(own)} labels, bundle.json's contract has {len(labels)}"
    i = next(i for i, (a, b) in enumerate(zip(own, labels)) if a != b)
    return f"differ from bundle.json's contract: class {i} is {own[i]!r} in the file, {labels[i]!r} in bundle.json"


def untrained_note(data: dict[str, Any]) -> str | None:
    """One line saying the bundle's model is untrained (`export --random-init`), or None."""
    src = data.get("source") or {}
    if not src.get("random_init"):
        return None
    return (f"untrained: {src.get('model')} with random weights (seed {src.get('seed')}); its predictions mean "
            "nothing; export a trained checkpoint for real use")
