"""ONNX (any precision) -> TensorRT engine file, with the fused-op plugin.

Networks are strongly typed (TensorRT 10 and 11): precision comes from the ONNX (Q/DQ nodes,
fp16 tensors), never from builder flags. The one exception is TF32, on by default in TensorRT:
an "fp32" engine keeps float32 tensors, but its matrix products may round their inputs to TF32 on
Ampere and later GPUs (Orin included); the record says whether it was allowed.

`import tensorrt` happens only inside the builds (`engine_from_onnx`, `step_engine_from_onnx`);
everything before it (ONNX preparation, plugin lookup, profile shapes) is plain Python. Every
result TensorRT reports failure through (None, False, -1) is checked, and nothing after the
engine is written can fail the build.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import onnx

from lvt_edge import bundle as B
from lvt_edge.variants import plugin as P
from lvt_edge.variants.graph import fused_nodes, fused_op, input_name
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, sha256_file, write_bytes_atomic

if TYPE_CHECKING:
    from lvt_edge.runtime.trt_step import StepIO

PLUGIN_BUILD = P.PLUGIN_BUILD
TIMING_CACHE_DIR = "timing-cache"  # inside the bundle, one file per TensorRT release and GPU
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


def onnx_without_plugin(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with the fused op's function body inlined: no node is left that a plugin
    registered in this process (TensorRT >= 10.7 prefers it to the function) could take."""
    from onnx import inliner

    try:
        return inliner.inline_selected_functions(model, [fused_op()])
    except AttributeError:  # onnx < 1.16
        return inliner.inline_local_functions(model)


def timing_cache_path(workdir: str | os.PathLike, tensorrt_version: str, gpu: str, cc: tuple[int, int]) -> Path:
    """One timing cache per TensorRT release and GPU: TensorRT refuses a cache made by another."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", gpu).strip("-").lower() or "gpu"
    return Path(workdir) / TIMING_CACHE_DIR / f"trt{tensorrt_version}-{slug}-sm{cc[0]}{cc[1]}.cache"


def attach_timing_cache(config: Any, path: Path, log: Callable[[str], None]) -> Any:
    """Give the builder the timing cache at `path` (a new one where it is missing or refused);
    returns the cache, or None when TensorRT accepts none (the build then times from scratch)."""
    blob = path.read_bytes() if path.is_file() else b""
    for data in ((blob, b"") if blob else (b"",)):
        cache = config.create_timing_cache(data)
        if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
            return cache
        if data:
            log(f"TensorRT refused the timing cache {path} (made by another TensorRT or GPU?); starting a new one")
    log("TensorRT accepted no timing cache; building without one")
    return None


def save_timing_cache(config: Any, path: Path, log: Callable[[str], None]) -> str | None:
    """Write the builder's timing cache; never fails the build (the engine is already written).
    Returns its path inside the bundle folder, or None when none was saved."""
    try:
        cache = config.get_timing_cache()
        if cache is None:
            log("TensorRT returned no timing cache after the build; none saved")
            return None
        write_bytes_atomic(path, bytes(cache.serialize()))
    except Exception as e:  # a full disk or a TensorRT quirk must not lose the engine's record
        log(f"WARNING: could not save the timing cache {path} ({type(e).__name__}: {e}); the next build times from scratch")
        return None
    return f"{TIMING_CACHE_DIR}/{path.name}"


def plugin_layer_count(trt: Any, network: Any) -> int:
    return sum(1 for i in range(network.num_layers) if network.get_layer(i).type == trt.LayerType.PLUGIN_V3)


def engine_from_onnx(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    contract: ClipContract,
    *,
    workdir: str | os.PathLike,
    plugin: str | os.PathLike | None = None,
    use_plugin: bool = True,
    batch: tuple[int, int, int] = (1, 1, 8),
    tf32: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build and serialise an engine; returns bundle.json's variants[p]["tensorrt"] record.

    tf32: let TensorRT run float32 matrix products in TF32 (its default; 10-bit mantissa inputs on
    Ampere and later GPUs, Orin included). False keeps them in full float32, slower."""
    model = onnx.load(str(onnx_path), load_external_data=False)  # the parser reads external data via `path`
    return _engine(onnx_path, engine_path, model, {input_name(model): profile_shapes(contract, batch)},
                   fused=len(fused_nodes(model)), workdir=workdir, plugin=plugin, use_plugin=use_plugin, batch=batch,
                   tf32=tf32, log=log, desc=f"engine {Path(engine_path).name.split('.')[1]}")


def step_engine_name(precision: str) -> str:
    return f"model.step.{precision}.engine"


def step_profile_shapes(step: dict[str, Any], batch: tuple[int, int, int]) -> dict[str, tuple[tuple[int, ...], ...]]:
    """(min, opt, max) shapes of every input of the step model (the frame and each state tensor):
    one batch range, the streams carried side by side, for all of them."""
    from lvt_edge.runtime.trt_step import step_io

    return {name: tuple((b, *shape) for b in batch) for name, shape in step_io(step).inputs.items()}


def step_engine_from_onnx(
    workdir: str | os.PathLike,
    precision: str,
    step: dict[str, Any],
    onnx_path: str | os.PathLike | None = None,
    *,
    plugin: str | os.PathLike | None = None,
    use_plugin: bool = True,
    batch: tuple[int, int, int] = (1, 1, 8),
    tf32: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the step model's engine (`model.step.<precision>.engine` in `workdir`) from the step
    ONNX that `step` describes (`onnx_path`, default: the file it names); returns the record for
    bundle.json's step["engines"][precision].

    step: bundle.json's step entry for `precision` (`lvt_edge.runtime.stream.step_variant`).
    batch: the streams range (min, opt, max) of the one optimisation profile, which covers the
    frame and every state input alike."""
    from lvt_edge.runtime.trt_step import step_io

    rebuild = f"remake it with `{B.rebuild_command(workdir, precision)}`"
    onnx_path = Path(workdir) / step["onnx"] if onnx_path is None else onnx_path
    model = onnx.load(str(onnx_path), load_external_data=False)
    problems = step_onnx_problems(model, step_io(step))
    if problems:
        raise LvtEdgeError(f"{onnx_path} does not have the inputs and outputs bundle.json's step entry describes: "
                           f"{'; '.join(problems)}; {rebuild}")
    fused = len(fused_nodes(model))
    expected = step.get("ffla_nodes", fused)
    if fused != expected:
        raise LvtEdgeError(f"{onnx_path} holds {fused} fused {'::'.join(fused_op())} nodes, bundle.json's step entry "
                           f"records {expected}: it is not the step model this bundle exported; {rebuild}")
    engine_path = Path(workdir) / step_engine_name(precision)
    rec = _engine(onnx_path, engine_path, model, step_profile_shapes(step, batch), fused=fused, workdir=workdir,
                  plugin=plugin, use_plugin=use_plugin, batch=batch, tf32=tf32, log=log,
                  desc=f"step engine {precision}")
    return {**rec, "onnx": Path(onnx_path).name}


def step_onnx_problems(model: onnx.ModelProto, io: StepIO) -> list[str]:
    """How the step graph's inputs and outputs differ from `io` (`lvt_edge.runtime.trt_step.step_io`)."""
    weights = {i.name for i in model.graph.initializer}
    graph = {"input": {v.name: _dims(v) for v in model.graph.input if v.name not in weights},
             "output": {v.name: _dims(v) for v in model.graph.output}}
    problems = []
    for what, want in (("input", io.inputs), ("output", io.outputs)):
        have = graph[what]
        problems += [f"an extra {what} {name!r}" for name in have if name not in want]
        for name, shape in want.items():
            dims = have.get(name)
            if dims is None:
                problems.append(f"no {what} {name!r}")
            elif len(dims) != len(shape) + 1 or any(None not in (d, w) and d != w for d, w in zip(dims[1:], shape)):
                problems.append(f"{what} {name!r} is {_shape_text(dims)}, the entry says {_shape_text([None, *shape])}")
    return problems


def _shape_text(dims: list[int | None]) -> str:
    return "x".join("?" if d is None else str(d) for d in dims)


def _dims(value_info: onnx.ValueInfoProto) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, model: onnx.ModelProto,
            shapes: dict[str, tuple[tuple[int, ...], ...]], *, fused: int, workdir: str | os.PathLike,
            plugin: str | os.PathLike | None, use_plugin: bool, batch: tuple[int, int, int], tf32: bool,
            log: Callable[[str], None] | None, desc: str) -> dict[str, Any]:
    """The build both engines share: parse `model` (loaded from `onnx_path`) with the plugin for its
    `fused` nodes, one optimisation profile of `shapes` (input -> (min, opt, max)), the timing cache,
    progress bars; writes `engine_path` and returns its record."""
    from lvt_edge.export.node import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION
    from lvt_edge.runtime.cuda import cuda_api
    from lvt_edge.runtime.trt import import_tensorrt, load_plugin

    log = log or (lambda msg: None)
    trt = import_tensorrt()
    api = cuda_api()  # before the long build: a missing binding or driver fails now
    gpu, cc = api.device_name(), api.compute_capability()
    lib = find_plugin(plugin, trt.__version__) if use_plugin and fused else None
    if lib is not None:
        load_plugin(trt, lib, (OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    prepared = onnx_for_tensorrt(model, trt.__version__) if lib is not None else onnx_without_plugin(model)
    if not parser.parse(prepared.SerializeToString(), path=str(Path(onnx_path).resolve())):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise LvtEdgeError(f"TensorRT {trt.__version__} cannot parse {onnx_path}: {errors}")
    found = plugin_layer_count(trt, network)
    _check_plugin_layers(found, fused if lib is not None else 0, lib, trt.__version__)
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    if config.add_optimization_profile(profile) < 0:
        raise LvtEdgeError(f"TensorRT refused the optimisation profile batch {':'.join(map(str, batch))} for "
                           f"{onnx_path}; check the model's input shape")
    if not tf32:
        config.clear_flag(trt.BuilderFlag.TF32)
    cache_path = timing_cache_path(workdir, trt.__version__, gpu, cc)
    attach_timing_cache(config, cache_path, log)
    monitor = attach_progress(trt, config, desc)
    try:
        serialized = builder.build_serialized_network(network, config)
    finally:
        if monitor is not None:
            monitor.close()
    if serialized is None:
        raise LvtEdgeError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path}; see its log above")
    write_bytes_atomic(engine_path, bytes(serialized))
    # From here on the engine is on disk: nothing below may fail the build for the cache's sake.
    cache_name = save_timing_cache(config, cache_path, log)
    return engine_record(engine_path, trt, workdir=workdir, lib=lib, plugin_layers=found, batch=batch,
                         gpu=gpu, cc=cc, tf32=bool(config.get_flag(trt.BuilderFlag.TF32)), timing_cache=cache_name)


def attach_progress(trt: Any, config: Any, desc: str) -> Any:
    """Progress bars for the engine build (one per optimizer phase), through TensorRT's
    IProgressMonitor; returns the monitor, which must outlive the build, or None without one."""
    if not hasattr(trt, "IProgressMonitor"):
        return None
    monitor = _progress_monitor_class(trt)(desc)
    config.progress_monitor = monitor
    return monitor


def _progress_monitor_class(trt: Any) -> type:
    import threading

    from lvt_edge import console

    class BuildProgress(trt.IProgressMonitor):
        """TensorRT calls these from its own threads; a phase nested in another gets the next line."""

        def __init__(self, desc: str) -> None:
            trt.IProgressMonitor.__init__(self)
            self._desc, self._bars, self._lock = desc, {}, threading.Lock()

        def phase_start(self, phase_name, parent_phase, num_steps):
            with self._lock:
                self._bars[phase_name] = console.bar(total=int(num_steps), desc=f"{self._desc}: {phase_name}",
                                                     unit="step", position=len(self._bars))

        def step_complete(self, phase_name, step):
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(int(step) + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            with self._lock:
                bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

        def close(self) -> None:
            with self._lock:
                bars, self._bars = list(self._bars.values()), {}
            for bar in bars:
                bar.close()

    return BuildProgress


def _check_plugin_layers(found: int, expected: int, lib: Path | None, version: str) -> None:
    if found == expected:
        return
    if lib is None:
        raise LvtEdgeError(
            f"the TensorRT network holds {found} plugin layers although this build uses no plugin: a plugin library "
            f"registered earlier in this process took the fused nodes. Run the --no-plugin build in a fresh process")
    raise LvtEdgeError(
        f"the TensorRT network holds {found} plugin layers for {expected} fused nodes: the parser did "
        f"not use the plugin from {lib}. Check that the library matches TensorRT {version}, "
        "or pass --no-plugin to build with the op's ONNX function body"
    )


def engine_record(engine_path: str | os.PathLike, trt: Any, *, workdir: str | os.PathLike, lib: Path | None,
                  plugin_layers: int, batch: tuple[int, int, int], gpu: str, cc: tuple[int, int], tf32: bool,
                  timing_cache: str | None) -> dict[str, Any]:
    return {
        "engine": Path(engine_path).name,
        "sha256": sha256_file(engine_path),
        "size_bytes": Path(engine_path).stat().st_size,
        "tensorrt_version": trt.__version__,
        "gpu": gpu,
        "compute_capability": f"{cc[0]}.{cc[1]}",
        "platform": platform.machine(),
        "batch": list(batch),
        "strongly_typed": True,
        # fp32 engines: float32 tensors; with tf32, matrix products round their inputs to TF32.
        "tf32": tf32,
        "plugin_layers": plugin_layers,
        "plugin": plugin_record(lib, workdir, trt, plugin_layers) if lib else None,
        "timing_cache": timing_cache,
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
