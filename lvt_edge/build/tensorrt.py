"""ONNX (any precision) -> TensorRT engine file, with the fused-op plugin.

Networks are strongly typed (TensorRT 10 and 11): precision comes from the ONNX (Q/DQ nodes,
fp16 tensors), never from builder flags. `import tensorrt` happens only in `engine_from_onnx`;
everything before it (ONNX preparation, plugin lookup, profile shapes) is plain Python.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from pathlib import Path
from typing import Any

import onnx

from lvt_edge.build.graph import fused_nodes, fused_op, input_name
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, sha256_file, write_bytes_atomic

TIMING_CACHE = "tensorrt.timing-cache"
PLUGIN_DIR = "plugins"  # inside the bundle: the plugin library travels with its engines
PLUGIN_GLOB = "liblvt*.so"
FUNCTION_WINS_BEFORE = (10, 7)  # up to 10.6 a model-local function hides the registered plugin


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", str(version))[:3])


def onnx_for_tensorrt(model: onnx.ModelProto, tensorrt_version: str) -> onnx.ModelProto:
    """The model the parser sees: for TensorRT < 10.7 without the fused op's local function,
    so the parser resolves the node to the registered plugin instead of inlining the body."""
    if version_tuple(tensorrt_version) >= FUNCTION_WINS_BEFORE:
        return model
    domain, op_type = fused_op()
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep = [f for f in out.functions if not (f.domain == domain and f.name == op_type)]
    del out.functions[:]
    out.functions.extend(keep)
    return out


def default_plugin_dirs() -> list[Path]:
    """Where `cmake -S plugins -B build/plugins` leaves the library, from here or the checkout."""
    checkout = Path(__file__).resolve().parents[2]
    return [Path.cwd() / "build" / "plugins", checkout / "build" / "plugins"]


def find_plugin(plugin: str | os.PathLike | None) -> Path:
    """The plugin library to load: `plugin`, else the one built from plugins/."""
    from lvt_edge.runtime.trt import PLUGIN_BUILD

    if plugin is not None:
        path = Path(plugin)
        if not path.is_file():
            raise LvtEdgeError(f"plugin library not found at {path}; build it with `{PLUGIN_BUILD}`")
        return path
    for folder in default_plugin_dirs():
        found = sorted(folder.rglob(PLUGIN_GLOB)) if folder.is_dir() else []
        if found:
            return found[0]
    raise LvtEdgeError(
        f"no fused-op plugin library found (looked for {PLUGIN_GLOB} under "
        f"{', '.join(str(d) for d in default_plugin_dirs())}); build it with `{PLUGIN_BUILD}`, "
        "pass --plugin LIB, or --no-plugin to let TensorRT run the op's ONNX function body"
    )


def profile_shapes(contract: ClipContract, batch: tuple[int, int, int]) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) input shapes of the optimisation profile."""
    return tuple((b, *contract.input_shape) for b in batch)


def engine_from_onnx(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    contract: ClipContract,
    *,
    workdir: str | os.PathLike,
    plugin: str | os.PathLike | None = None,
    use_plugin: bool = True,
    batch: tuple[int, int, int] = (1, 1, 8),
) -> dict[str, Any]:
    """Build and serialise an engine; returns bundle.json's variants[p]["tensorrt"] record."""
    from lvt_edge.runtime.trt import import_tensorrt

    trt = import_tensorrt()
    model = onnx.load(str(onnx_path))
    expected = len(fused_nodes(model)) if use_plugin else 0
    lib = find_plugin(plugin) if use_plugin and fused_nodes(model) else None
    logger = trt.Logger(trt.Logger.WARNING)
    if lib is not None:
        trt.get_plugin_registry().load_library(str(lib))
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    prepared = onnx_for_tensorrt(model, trt.__version__) if use_plugin else model
    if not parser.parse(prepared.SerializeToString()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise LvtEdgeError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors}")
    found = sum(1 for i in range(network.num_layers) if network.get_layer(i).type == trt.LayerType.PLUGIN_V3)
    if use_plugin and found != expected:
        raise LvtEdgeError(
            f"the TensorRT network holds {found} plugin layers for {expected} fused nodes: the parser did "
            f"not use the plugin from {lib}. Check that the library matches TensorRT {trt.__version__}, "
            "or pass --no-plugin to build with the op's ONNX function body"
        )
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name(model), *profile_shapes(contract, batch))
    config.add_optimization_profile(profile)
    cache_file = Path(workdir) / TIMING_CACHE
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise LvtEdgeError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path}; see its log above")
    write_bytes_atomic(engine_path, bytes(serialized))
    write_bytes_atomic(cache_file, bytes(config.get_timing_cache().serialize()))
    return engine_record(engine_path, trt, workdir=workdir, lib=lib, plugin_layers=found, batch=batch)


def engine_record(engine_path: str | os.PathLike, trt: Any, *, workdir: str | os.PathLike, lib: Path | None,
                  plugin_layers: int, batch: tuple[int, int, int]) -> dict[str, Any]:
    from lvt_edge.runtime.cuda import cuda_api

    api = cuda_api()
    major, minor = api.compute_capability()
    return {
        "engine": Path(engine_path).name,
        "sha256": sha256_file(engine_path),
        "size_bytes": Path(engine_path).stat().st_size,
        "tensorrt_version": trt.__version__,
        "gpu": api.device_name(),
        "compute_capability": f"{major}.{minor}",
        "platform": platform.machine(),
        "batch": list(batch),
        "strongly_typed": True,
        "plugin": plugin_record(lib, workdir, trt, plugin_layers) if lib else None,
        "timing_cache": TIMING_CACHE,
    }


def plugin_record(lib: Path, workdir: str | os.PathLike, trt: Any, layers: int) -> dict[str, Any]:
    """Copy the plugin library into the bundle (engines need exactly this build) and describe it."""
    from lvt_edge.export.node import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

    dest = Path(workdir) / PLUGIN_DIR / lib.name
    if lib.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(lib, tmp)
    creator = trt.get_plugin_registry().get_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    return {
        "path": f"{PLUGIN_DIR}/{lib.name}",
        "sha256": sha256_file(dest),
        "name": OP_TYPE,
        "version": getattr(creator, "plugin_version", None) if creator else PLUGIN_VERSION,
        "namespace": PLUGIN_NAMESPACE,
        "layers": layers,
    }
