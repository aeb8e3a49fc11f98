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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import onnx

from lvt_edge.variants import plugin as P
from lvt_edge.variants.graph import fused_nodes, fused_op, input_name
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, sha256_file, write_bytes_atomic

PLUGIN_BUILD = P.PLUGIN_BUILD
TIMING_CACHE = "tensorrt.timing-cache"
PLUGIN_DIR = "plugins"  # inside the bundle: the plugin library travels with its engines
PLUGIN_GLOB = "liblvt*.so"
FUNCTION_WINS_BEFORE = (10, 7)  # up to 10.6 a model-local function hides the registered plugin
# What bundle.json keeps of a library's plugin.json (no paths of the build machine).
PLUGIN_BUILD_FIELDS = ("plugin_version", "tensorrt_version", "cuda_version", "archs", "source_sha256", "key",
                       "lvt_edge_version", "built_at")


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
    """Where plugin libraries are looked for, in order: the cache of `lvt-edge plugin build`, then
    where `cmake -S plugins -B build/plugins` leaves the library, from here or the checkout."""
    checkout = Path(__file__).resolve().parents[2]
    dirs = [P.plugin_cache(), Path.cwd() / "build" / "plugins", checkout / "build" / "plugins"]
    return [d for i, d in enumerate(dirs) if d not in dirs[:i]]


@dataclass(frozen=True)
class PluginChoice:
    path: Path
    why: str
    major: int | None  # the TensorRT major it was built for (None: nothing says)
    record: dict[str, Any] | None  # its plugin.json
    passed_over: tuple[str, ...] = ()  # other libraries seen, and why they were not taken


def other_major_message(lib: Path, lib_major: int, tensorrt_version: str) -> str:
    return (f"{lib} was built for TensorRT {lib_major}, this machine has TensorRT {tensorrt_version}: a plugin library "
            f"works only with the TensorRT major it was compiled against. Build one for this TensorRT with `{PLUGIN_BUILD}` "
            "(it finds the installed TensorRT's headers; --tensorrt-include DIR points it at others)")


def _arch_runs_on(arch: str, cc: str) -> bool:
    """Does code built for `arch` ("87", "90a") run on a GPU of compute capability `cc` ("89")?
    Same-major SASS runs on later minors and CMake's default PTX JIT-compiles for later GPUs;
    arch-specific ("a"/"f") code runs only on its own GPU."""
    if not arch[-1].isdigit():
        return arch[:-1] == cc
    return (int(arch[:-1]), int(arch[-1])) <= (int(cc[:-1]), int(cc[-1]))


def _libraries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob(PLUGIN_GLOB)
                  if p.is_file() and not any(s.startswith(".") for s in p.relative_to(folder).parts))


def choose_plugin(tensorrt_version: str | None, *, dirs: list[Path] | None = None,
                  gpu: Callable[[], list[str] | None] | None = None,
                  sources: Callable[[], str | None] | None = None) -> PluginChoice:
    """The plugin library for `tensorrt_version` (None: not known here): the first folder of `dirs`
    holding one built for its major, preferring the exact version, this GPU and current sources.

    gpu: this GPU's archs (["87"]); sources: the current plugins/ source hash (both asked lazily)."""
    want = P.short_version(tensorrt_version) if tensorrt_version else None
    major = int(want.split(".")[0]) if want else None
    gpu_archs = _memo(gpu or (lambda: P.gpu_archs()[0]))
    src_hash = _memo(sources or P.current_source_hash)
    dirs = default_plugin_dirs() if dirs is None else dirs
    passed: list[str] = []
    other_major: list[tuple[Path, int]] = []
    for folder in dirs:
        ranked = []
        for lib in _libraries(folder):
            lib_major, rec = P.library_info(lib)
            if major is not None and lib_major is not None and lib_major != major:
                passed.append(f"{lib} (built for TensorRT {lib_major})")
                other_major.append((lib, lib_major))
                continue
            archs = rec.get("archs") if rec else None
            exact_gpu = 1
            if isinstance(archs, list) and gpu_archs():
                if not all(any(_arch_runs_on(a, cc) for a in archs) for cc in gpu_archs()):
                    passed.append(f"{lib} (built for sm {', '.join(archs)}, this GPU is sm {', '.join(gpu_archs())})")
                    continue
                exact_gpu = 0 if set(gpu_archs()) <= set(archs) else 1
            built = rec.get("tensorrt_version") if rec else None
            vrank = (0 if want and built == want else 1 if want and built and built.split(".")[:2] == want.split(".")[:2]
                     else 2 if lib_major is not None else 3)
            stale = bool(rec and rec.get("source_sha256") and src_hash() and rec["source_sha256"] != src_hash())
            ranked.append(((vrank, exact_gpu, stale, -lib.stat().st_mtime), lib, lib_major, rec, stale))
        if ranked:
            ranked.sort(key=lambda r: r[0])
            (vrank, _, _, _), lib, lib_major, rec, stale = ranked[0]
            why = _why(folder, dirs, vrank, lib_major, rec, tensorrt_version, stale)
            return PluginChoice(lib, why, lib_major, rec, tuple(passed + [str(r[1]) for r in ranked[1:]]))
    if other_major and tensorrt_version:
        lib, lib_major = other_major[0]
        raise LvtEdgeError(other_major_message(lib, lib_major, tensorrt_version))
    seen = f" (passed over: {'; '.join(passed)})" if passed else ""
    raise LvtEdgeError(
        f"no fused-op plugin library{f' for TensorRT {tensorrt_version}' if tensorrt_version else ''} found "
        f"(looked for {PLUGIN_GLOB} under {', '.join(str(d) for d in dirs)}){seen}; build it with `{PLUGIN_BUILD}`, "
        "pass --plugin LIB, or --no-plugin to let TensorRT run the op's ONNX function body"
    )


def _memo(fn: Callable[[], Any]) -> Callable[[], Any]:
    box: list[Any] = []

    def get() -> Any:
        if not box:
            box.append(fn())
        return box[0]
    return get


def _why(folder: Path, dirs: list[Path], vrank: int, lib_major: int | None, rec: dict[str, Any] | None,
         tensorrt_version: str | None, stale: bool) -> str:
    where = "the `lvt-edge plugin build` cache" if folder == P.plugin_cache() else str(folder)
    if rec:
        what = f"built for {P.describe(rec)}"
    elif lib_major is not None:
        what = f"built for TensorRT {lib_major} (its name says so; no plugin.json beside it)"
    else:
        what = "built for an unknown TensorRT (no plugin.json, no trt<MAJOR> in its name)"
    if tensorrt_version is None:
        match = "TensorRT's version is not known here, so the match is unchecked"
    else:
        match = {0: f"matches TensorRT {tensorrt_version} exactly",
                 1: f"matches TensorRT {tensorrt_version} (same major.minor)",
                 2: f"matches TensorRT {tensorrt_version} (same major: the plugin ABI holds within a major)",
                 3: f"taken for TensorRT {tensorrt_version} unchecked"}[vrank]
    note = f"; built from older plugins/ sources: `{PLUGIN_BUILD}` rebuilds it" if stale else ""
    first = "" if folder == dirs[0] else f" (nothing usable in {', '.join(str(d) for d in dirs[:dirs.index(folder)])})"
    return f"from {where}{first}: {what}; {match}{note}"


def find_plugin(plugin: str | os.PathLike | None, tensorrt_version: str | None = None) -> Path:
    """The plugin library to load: `plugin`, else the best match for `tensorrt_version` (default:
    the installed TensorRT's) in default_plugin_dirs(). A library for another major is refused."""
    if tensorrt_version is None:
        tensorrt_version = P.installed_tensorrt()[0]
    if plugin is not None:
        path = Path(plugin)
        if not path.is_file():
            raise LvtEdgeError(f"plugin library not found at {path}; build it with `{PLUGIN_BUILD}`")
        lib_major, _ = P.library_info(path)
        if tensorrt_version and lib_major is not None and lib_major != version_tuple(tensorrt_version)[0]:
            raise LvtEdgeError(other_major_message(path, lib_major, tensorrt_version))
        return path
    return choose_plugin(tensorrt_version).path


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
    lib = find_plugin(plugin, trt.__version__) if use_plugin and fused_nodes(model) else None
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
    """Copy the plugin library into the bundle (engines need exactly this build) and describe it:
    its hash, plugin version, TensorRT major and, where `lvt-edge plugin build` made it, how."""
    from lvt_edge.export.node import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

    dest = Path(workdir) / PLUGIN_DIR / lib.name
    if lib.resolve() != dest.resolve():
        with atomic_path(dest) as tmp:
            shutil.copyfile(lib, tmp)
    lib_major, built = P.library_info(lib)
    creator = trt.get_plugin_registry().get_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE)
    return {
        "path": f"{PLUGIN_DIR}/{lib.name}",
        "sha256": sha256_file(dest),
        "name": OP_TYPE,
        "version": getattr(creator, "plugin_version", None) if creator else PLUGIN_VERSION,
        "namespace": PLUGIN_NAMESPACE,
        "layers": layers,
        "tensorrt_major": lib_major if lib_major is not None else version_tuple(trt.__version__)[0],
        "build": {k: built.get(k) for k in PLUGIN_BUILD_FIELDS} if built else None,
    }
