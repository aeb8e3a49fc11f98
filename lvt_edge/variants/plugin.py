"""plugins/ (C++/CUDA) -> the fused op's TensorRT plugin library, built once per machine and cached.

`plugin_from_sources` finds TensorRT's headers, nvcc, cmake, a C++ compiler and the GPU's compute
capability, runs the plugins/ CMake project and keeps the library under a key of TensorRT version,
CUDA version and GPU architectures:

    <cache>/plugins/trt10.3.0-cuda12.6-sm87/liblvt_edge_ffla_trt10.so
                                           /plugin.json   (versions, archs, sha256, source hash)

<cache> is $LVT_EDGE_CACHE, else $XDG_CACHE_HOME/lvt_edge, else ~/.cache/lvt_edge. An entry
appears in one rename, so a failed or interrupted build leaves none behind. Nothing here installs
anything: a missing tool is an LvtEdgeError that names the install command.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import read_format_json, sha256_file, write_json_atomic

PLUGIN_BUILD = "lvt-edge plugin build"
PLUGIN_JSON = "plugin.json"
FORMAT = "lvt_edge.plugin"
FORMAT_VERSION = 1
LIBRARY_RE = re.compile(r"^liblvt_edge_ffla_trt(\d+)\.so$")
SOURCE_SUFFIXES = {".cu", ".cuh", ".h", ".hpp", ".cpp", ".cc", ".c", ".cmake", ".in"}
SOURCE_ENV = "LVT_EDGE_PLUGIN_SOURCE"
INCLUDE_ENV = "TENSORRT_INCLUDE_DIR"
ROOT_ENVS = ("TENSORRT_ROOT", "TRT_ROOT", "TensorRT_ROOT")
# Where distributions put TensorRT's headers: JetPack and NVIDIA's apt packages (libnvinfer-dev)
# use the multiarch folders; a tar unpacked by hand often lands in /usr/local/tensorrt.
MULTIARCH_INCLUDE_DIRS = (Path("/usr/include/aarch64-linux-gnu"), Path("/usr/include/x86_64-linux-gnu"))
SYSTEM_INCLUDE_DIRS = (Path("/usr/local/tensorrt/include"), Path("/usr/include"))
CUDA_BIN_DIRS = (Path("/usr/local/cuda/bin"),)
TEMP_MAX_AGE_S = 24 * 3600  # a build temp folder older than this was left by a killed build

HEADERS_HELP = (
    "Get TensorRT's C++ headers for the TensorRT you run: on a Jetson `sudo apt install libnvinfer-dev` "
    "(JetPack's TensorRT; the same package on Ubuntu with NVIDIA's CUDA apt repository); otherwise the "
    "include/ folder of the TensorRT tar of your version, or include/ of github.com/NVIDIA/TensorRT on the "
    "branch of your version (e.g. release/10.3). Then pass --tensorrt-include DIR or set TENSORRT_INCLUDE_DIR"
)
INSTALL = {
    "cmake": "cmake: `sudo apt install cmake` (or `pip install cmake`)",
    "nvcc": ("nvcc (the CUDA toolkit): on a Jetson `sudo apt install nvidia-jetpack` puts it in /usr/local/cuda/bin; "
             "on a desktop install the CUDA toolkit (developer.nvidia.com/cuda-downloads) and put its bin/ on "
             "PATH or set CUDA_HOME"),
    "c++": "a C++ compiler: `sudo apt install g++`",
}


def _log(msg: str) -> None:
    from lvt_edge import console

    console.write(f"lvt-edge plugin: {msg}")


# --- TensorRT headers -------------------------------------------------------------------------

@dataclass(frozen=True)
class TensorRTHeaders:
    include: Path
    version: str  # "major.minor.patch"
    build: int | None
    found_by: str  # how the folder was found, for messages

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


def read_header_version(path: str | os.PathLike) -> tuple[str, int | None]:
    """("major.minor.patch", build) from NvInferVersion.h.

    10.x defines NV_TENSORRT_MAJOR as a number; 11.x defines it as TRT_MAJOR_ENTERPRISE, a number."""
    defines: dict[str, str] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        m = re.match(r"\s*#\s*define\s+(\w+)\s+([^\s/]+)", line)
        if m:
            defines[m.group(1)] = m.group(2)

    def number(part: str) -> int | None:
        names = [f"NV_TENSORRT_{part}", f"TRT_{part}_ENTERPRISE",
                 *sorted(k for k in defines if k.startswith(f"TRT_{part}_"))]
        for name in names:
            value, seen = defines.get(name), set()
            while value is not None and not value.isdigit() and value not in seen:
                seen.add(value)
                value = defines.get(value)
            if value is not None and value.isdigit():
                return int(value)
        return None

    parts = [number(p) for p in ("MAJOR", "MINOR", "PATCH")]
    if parts[0] is None or parts[1] is None:
        raise LvtEdgeError(f"{path} defines no TensorRT version (NV_TENSORRT_MAJOR / TRT_MAJOR_ENTERPRISE); "
                           f"is it TensorRT's NvInferVersion.h? {HEADERS_HELP}")
    return ".".join(str(p or 0) for p in parts), number("BUILD")


def headers_at(include: str | os.PathLike, found_by: str) -> TensorRTHeaders | None:
    folder = Path(include)
    version_h = folder / "NvInferVersion.h"
    if not (version_h.is_file() and (folder / "NvInferRuntime.h").is_file()):
        return None
    version, build = read_header_version(version_h)
    return TensorRTHeaders(folder, version, build, found_by)


def header_search_path(env: Mapping[str, str] = os.environ) -> list[tuple[Path, str]]:
    """(folder, how it was found) in search order, after --tensorrt-include and TENSORRT_INCLUDE_DIR."""
    out = [(d, "JetPack / libnvinfer-dev") for d in MULTIARCH_INCLUDE_DIRS]
    for name in ROOT_ENVS:
        if env.get(name):
            out.append((Path(env[name]) / "include", f"${name}"))
    for d in env.get("LD_LIBRARY_PATH", "").split(os.pathsep):
        if d and any(Path(d).glob("libnvinfer.so*")):
            out.append((Path(d).parent / "include", "a TensorRT tar (libnvinfer on LD_LIBRARY_PATH)"))
    pkg = _tensorrt_package_dir()
    if pkg is not None:
        out += [(p / "include", "a TensorRT tar next to the tensorrt Python package") for p in pkg.parents[:4]]
    out += [(d, "system") for d in SYSTEM_INCLUDE_DIRS]
    return out


def _tensorrt_package_dir() -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec("tensorrt")  # finds the package without importing it
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def find_tensorrt_headers(include: str | os.PathLike | None = None, *, want: str | None = None,
                          env: Mapping[str, str] = os.environ) -> TensorRTHeaders:
    """TensorRT's headers: `include`, else $TENSORRT_INCLUDE_DIR, else the first folder on the
    search path, preferring headers of the `want` TensorRT version (the installed one)."""
    for given, flag in ((include, "--tensorrt-include"), (env.get(INCLUDE_ENV), INCLUDE_ENV)):
        if given:
            found = headers_at(given, flag)
            if found is None:
                nested = Path(given) / "include"
                hint = f"; did you mean {nested}?" if (nested / "NvInferVersion.h").is_file() else ""
                raise LvtEdgeError(f"{flag} {given} holds no TensorRT headers (NvInferVersion.h, NvInferRuntime.h){hint}. "
                                   + HEADERS_HELP)
            return found
    searched, found_all = [], []
    for folder, how in header_search_path(env):
        if folder in searched:
            continue
        searched.append(folder)
        found = headers_at(folder, how)
        if found is not None:
            found_all.append(found)
    if not found_all:
        raise LvtEdgeError("TensorRT's C++ headers (NvInferVersion.h) were not found in "
                           f"{', '.join(map(str, searched))}. {HEADERS_HELP}")
    if want is None:
        return found_all[0]
    for same in (lambda h: h.version == short_version(want), lambda h: h.major == int(want.split(".")[0])):
        match = [h for h in found_all if same(h)]
        if match:
            return match[0]
    others = ", ".join(f"{h.version} in {h.include}" for h in found_all)
    raise LvtEdgeError(f"the installed TensorRT is {want}, but the only headers found are TensorRT {others}; a plugin "
                       "works only with the TensorRT major it was compiled against. " + HEADERS_HELP)


def short_version(version: str) -> str:
    """"10.3.0.30" -> "10.3.0"."""
    parts = re.findall(r"\d+", str(version))[:3]
    return ".".join(parts + ["0"] * (3 - len(parts)))


def installed_tensorrt() -> tuple[str | None, str]:
    """(version, where it came from) of the TensorRT Python package, or (None, why not)."""
    try:
        import tensorrt

        return str(tensorrt.__version__), "the tensorrt Python package"
    except Exception as e:  # the bindings wheel can install without its libraries
        why = f"`import tensorrt` fails ({type(e).__name__}: {e})"
    from importlib import metadata

    for dist in ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings", "tensorrt-cu12-bindings"):
        try:
            return metadata.version(dist), f"the {dist} package's metadata ({why})"
        except metadata.PackageNotFoundError:
            continue
    return None, why


# --- toolchain and GPU ------------------------------------------------------------------------

@dataclass(frozen=True)
class Toolchain:
    cmake: Path
    nvcc: Path
    cxx: Path
    cuda_version: str
    cuda_archs: frozenset[str] | None  # what this nvcc can compile for ("87"); None: it did not say


def _which(name: str, env: Mapping[str, str]) -> Path | None:
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    return Path(found) if found else None


def find_nvcc(env: Mapping[str, str] = os.environ) -> Path | None:
    found = _which("nvcc", env)
    if found:
        return found
    dirs = [Path(env[v]) / "bin" for v in ("CUDA_HOME", "CUDA_PATH") if env.get(v)] + list(CUDA_BIN_DIRS)
    return next((d / "nvcc" for d in dirs if os.access(d / "nvcc", os.X_OK)), None)


def _output(cmd: list[str], env: Mapping[str, str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout if r.returncode == 0 else ""


def find_toolchain(env: Mapping[str, str] = os.environ) -> Toolchain:
    cxx_env = env.get("CXX")
    tools = {"cmake": _which("cmake", env), "nvcc": find_nvcc(env),
             "c++": Path(cxx_env) if cxx_env else (_which("g++", env) or _which("c++", env))}
    missing = [INSTALL[name] for name, path in tools.items() if path is None]
    if missing:
        raise LvtEdgeError("building the plugin needs " + "; ".join(missing))
    nvcc = tools["nvcc"]
    m = re.search(r"release (\d+\.\d+)", _output([str(nvcc), "--version"], env))
    if not m:
        raise LvtEdgeError(f"{nvcc} --version does not name a CUDA release; check the CUDA toolkit install")
    codes = re.findall(r"sm_(\d+[a-z]?)", _output([str(nvcc), "--list-gpu-code"], env))
    return Toolchain(tools["cmake"], nvcc, tools["c++"], m.group(1), frozenset(codes) or None)


def parse_archs(spec: str | None) -> list[str] | None:
    """"87", "8.7", "sm_87", "87,90" -> ["87", "90"]; "all" -> None (the CMake project's default list)."""
    if spec is None or spec.strip().lower() == "all":
        return None
    out = []
    for item in re.split(r"[,;\s]+", spec.strip()):
        m = re.fullmatch(r"(?:sm_|compute_)?(\d+)(?:\.(\d))?([af]?)", item.lower())
        if not item or not m:
            raise LvtEdgeError(f"--arch {spec!r}: expected compute capabilities like 87, 8.7 or 87,90, or all")
        arch = m.group(1) + (m.group(2) or "") + m.group(3)
        if arch not in out:
            out.append(arch)
    return out


def gpu_archs(env: Mapping[str, str] = os.environ) -> tuple[list[str] | None, str]:
    """This machine's GPU compute capabilities as CMake archs (["87"]) and who said so, or (None, why not)."""
    tried = []
    try:
        from lvt_edge.runtime.cuda import cuda_api

        api = cuda_api()
        ccs = sorted({"%d%d" % api.compute_capability(i) for i in range(api.device_count())})
        return ccs, f"the GPU via {api.name}"
    except Exception as e:  # no binding, no driver, no device: ask the next source
        tried.append(f"CUDA bindings: {str(e).split(';')[0][:100]}")
    smi = _which("nvidia-smi", env)
    if smi:
        text = _output([str(smi), "--query-gpu=compute_cap", "--format=csv,noheader"], env)
        ccs = sorted({line.strip().replace(".", "") for line in text.splitlines() if re.fullmatch(r"\d+\.\d", line.strip())})
        if ccs:
            return ccs, "nvidia-smi"
        tried.append("nvidia-smi gave no compute capability")
    else:
        tried.append("no nvidia-smi")
    try:
        if b"nvidia,tegra234" in Path("/proc/device-tree/compatible").read_bytes():
            return ["87"], "Jetson Orin (tegra234)"
    except OSError:
        pass
    return None, "; ".join(tried)


# --- sources and cache ------------------------------------------------------------------------

def _checkout_sources() -> Path:
    return Path(__file__).resolve().parents[2] / "plugins"


def _packaged_sources() -> Path:
    return Path(__file__).resolve().parents[1] / "plugin_src"


def find_sources(source: str | os.PathLike | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """The plugins/ CMake project: `source`, $LVT_EDGE_PLUGIN_SOURCE, the checkout beside the
    package (editable installs), or the copy packaged in the wheel as lvt_edge/plugin_src."""
    given = source or env.get(SOURCE_ENV)
    if given:
        folder = Path(given)
        if not (folder / "CMakeLists.txt").is_file():
            raise LvtEdgeError(f"{folder} has no CMakeLists.txt; pass the plugins/ folder of an lvt_edge checkout")
        return folder
    places = [_checkout_sources(), _packaged_sources()]
    for folder in places:
        if (folder / "CMakeLists.txt").is_file():
            return folder
    raise LvtEdgeError(f"the plugin's sources (plugins/CMakeLists.txt) are not in {' or '.join(map(str, places))}; "
                       "clone the lvt_edge repository and pass --source REPO/plugins (or install it with "
                       "`pip install -e REPO`)")


def source_hash(folder: str | os.PathLike) -> str:
    """sha256 over the build inputs under `folder` (relative names and contents; docs and build trees ignored)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(d.startswith((".", "build")) or d == "__pycache__" for d in rel.parts[:-1]) or rel.name.startswith("."):
            continue
        if path.is_file() and (path.suffix in SOURCE_SUFFIXES or path.name == "CMakeLists.txt"):
            h.update(rel.as_posix().encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def current_source_hash(source: str | os.PathLike | None = None) -> str | None:
    try:
        return source_hash(find_sources(source))
    except LvtEdgeError:
        return None


def cache_root(env: Mapping[str, str] = os.environ) -> Path:
    if env.get("LVT_EDGE_CACHE"):
        return Path(env["LVT_EDGE_CACHE"])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "lvt_edge"


def plugin_cache(env: Mapping[str, str] = os.environ) -> Path:
    return cache_root(env) / "plugins"


def cache_key(tensorrt_version: str, cuda_version: str, archs: list[str] | None) -> str:
    """"trt10.3.0-cuda12.6-sm87" ("sm87_90" for several, "all" for the CMake default list)."""
    return f"trt{short_version(tensorrt_version)}-cuda{cuda_version}-{'sm' + '_'.join(archs) if archs else 'all'}"


def library_name(major: int) -> str:
    return f"liblvt_edge_ffla_trt{major}.so"


def read_plugin_json(folder: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(folder) / PLUGIN_JSON
    if not path.is_file():
        return None
    return read_format_json(path, FORMAT, FORMAT_VERSION, "an lvt_edge plugin record",
                            f"delete {Path(folder)} and run `{PLUGIN_BUILD}`")


def library_info(lib: str | os.PathLike) -> tuple[int | None, dict[str, Any] | None]:
    """(TensorRT major, plugin.json) of a library: plugin.json beside it, else the trt<MAJOR> in its name."""
    lib = Path(lib)
    try:
        record = read_plugin_json(lib.parent)
    except LvtEdgeError:
        record = None
    if record is not None and record.get("library") != lib.name:
        record = None  # describes another library in the same folder
    if record is not None and record.get("tensorrt_major") is not None:
        return int(record["tensorrt_major"]), record
    m = LIBRARY_RE.match(lib.name)
    return (int(m.group(1)) if m else None), record


# --- building ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class PluginBuild:
    folder: Path
    library: Path
    record: dict[str, Any]
    reused: bool


def _valid_entry(folder: Path, src_hash: str) -> tuple[dict[str, Any] | None, str]:
    """(plugin.json, "") of a reusable cache entry, else (None, why it cannot be reused)."""
    try:
        record = read_plugin_json(folder)
    except LvtEdgeError as e:
        return None, str(e)
    if record is None:
        return None, "no plugin.json"
    lib = folder / record.get("library", "")
    if not lib.is_file() or sha256_file(lib) != record.get("sha256"):
        return None, "its library is missing or changed"
    if record.get("source_sha256") != src_hash:
        return None, "the plugins/ sources changed since it was built"
    return record, ""


def plugin_from_sources(
    *,
    tensorrt_include: str | os.PathLike | None = None,
    arch: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    source: str | os.PathLike | None = None,
    verbose: bool = False,
    env: Mapping[str, str] | None = None,
    log: Callable[[str], None] = _log,
) -> PluginBuild:
    """Build (or reuse) the plugin library for this machine's TensorRT, CUDA and GPU.

    arch: "87" / "87,90" / "all"; None means this GPU's, or all where no GPU answers."""
    env = dict(os.environ if env is None else env)
    requested = parse_archs(arch) if arch is not None else None  # a bad --arch fails before any search
    src = find_sources(source, env)
    installed, _ = installed_tensorrt()
    headers = find_tensorrt_headers(tensorrt_include, want=installed, env=env)
    if installed and int(short_version(installed).split(".")[0]) != headers.major:
        log(f"WARNING: building against TensorRT {headers.version} headers ({headers.found_by}) while the installed "
            f"TensorRT is {installed}: this TensorRT will refuse the library")
    tools = find_toolchain(env)
    archs, arch_source = _choose_archs(arch is not None, requested, tools, env)
    key = cache_key(headers.version, tools.cuda_version, archs)
    root = plugin_cache(env)
    final = root / key
    src_hash = source_hash(src)
    if final.exists() and not force:
        record, why = _valid_entry(final, src_hash)
        if record is not None:
            log(f"reusing {final} (same TensorRT, CUDA, archs and sources; --force rebuilds)")
            return PluginBuild(final, final / record["library"], record, True)
        log(f"rebuilding {key}: {why}")
    log(f"building for TensorRT {headers.version} (headers: {headers.include}, {headers.found_by}), "
        f"CUDA {tools.cuda_version}, {'sm ' + ', '.join(archs) if archs else 'all architectures'} ({arch_source}"
        f"{'' if archs else '; --arch 87 builds for one GPU, faster'})")
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    except OSError as e:
        raise LvtEdgeError(f"cannot write the plugin cache {root}: {e.strerror}; set LVT_EDGE_CACHE to a writable "
                           "folder") from e
    _remove_stale_temps(root, keep=tmp)
    failed_log = root / f"{key}.failed.log"
    try:
        t0 = time.perf_counter()
        lib, tested = _run_cmake(src, tmp, headers, tools, archs, jobs or os.cpu_count() or 1, verbose, env,
                                 failed_log, log)
        out = tmp / "entry"
        out.mkdir()
        shutil.copy2(lib, out / library_name(headers.major))
        record = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "library": library_name(headers.major),
            "sha256": sha256_file(out / library_name(headers.major)),
            **_plugin_identity(),
            "tensorrt_version": headers.version, "tensorrt_major": headers.major, "tensorrt_build": headers.build,
            "tensorrt_include": str(headers.include), "tensorrt_headers_found_by": headers.found_by,
            "cuda_version": tools.cuda_version, "archs": archs or "all", "archs_from": arch_source,
            "source_sha256": src_hash, "ctest_passed": tested, "key": key, "platform": platform.machine(),
            "lvt_edge_version": _lvt_edge_version(), "build_time_s": round(time.perf_counter() - t0, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_json_atomic(out / PLUGIN_JSON, record)
        _replace_dir(out, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed_log.unlink(missing_ok=True)
    log(f"built {final / record['library']} in {record['build_time_s']} s")
    return PluginBuild(final, final / record["library"], record, False)


def _plugin_identity() -> dict[str, str]:
    from lvt_edge.export.node import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

    return {"plugin_version": PLUGIN_VERSION, "plugin_name": OP_TYPE, "plugin_namespace": PLUGIN_NAMESPACE}


def _lvt_edge_version() -> str:
    from lvt_edge import __version__

    return __version__


def _choose_archs(given: bool, requested: list[str] | None, tools: Toolchain,
                  env: Mapping[str, str]) -> tuple[list[str] | None, str]:
    if given:
        archs, source = requested, "--arch"
    else:
        archs, why = gpu_archs(env)
        source = why if archs else f"no GPU found ({why}): the CMake project's default list"
    if archs and tools.cuda_archs is not None:
        bad = [a for a in archs if a not in tools.cuda_archs]
        if bad:
            raise LvtEdgeError(
                f"nvcc {tools.cuda_version} ({tools.nvcc}) cannot compile for sm_{', sm_'.join(bad)} (from {source}); "
                f"it supports sm_{', sm_'.join(sorted(tools.cuda_archs))}. Use a CUDA toolkit that supports this GPU, "
                "or choose --arch")
    return archs, source


def _remove_stale_temps(root: Path, keep: Path) -> None:
    now = time.time()
    for p in root.glob(".*"):
        try:
            if p != keep and p.is_dir() and now - p.stat().st_mtime > TEMP_MAX_AGE_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def _replace_dir(new: Path, final: Path) -> None:
    """Move `new` to `final` in one rename, replacing an old entry."""
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)  # put the old entry back
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


_PROGRESS = re.compile(r"^\s*\[\s*\d+(%|/\d+)\]|error|warning|tests passed|Test\s+#", re.IGNORECASE)


def _run_cmake(src: Path, tmp: Path, headers: TensorRTHeaders, tools: Toolchain, archs: list[str] | None,
               jobs: int, verbose: bool, env: Mapping[str, str], failed_log: Path,
               log: Callable[[str], None]) -> tuple[Path, bool]:
    """Configure, build and test plugins/ in tmp/cmake: (the library, whether ctest ran and passed)."""
    build = tmp / "cmake"
    configure = [str(tools.cmake), "-S", str(src), "-B", str(build), f"-DTENSORRT_INCLUDE_DIR={headers.include}",
                 "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_CUDA_COMPILER={tools.nvcc}"]
    if archs:
        configure.append(f"-DCMAKE_CUDA_ARCHITECTURES={';'.join(archs)}")
    steps = [("cmake configure", configure),
             ("cmake build", [str(tools.cmake), "--build", str(build), "--config", "Release", "-j", str(jobs)])]
    # The project's own tests (the library driven through dlopen and IPluginV3, its exports; with a
    # GPU, enqueue against a reference) gate the cache: they take a fraction of a second.
    ctest = tools.cmake.with_name("ctest") if tools.cmake.with_name("ctest").is_file() else _which("ctest", env)
    if ctest is not None:
        steps.append(("ctest", [str(ctest), "--output-on-failure", "-C", "Release"]))
    else:
        log("no ctest next to cmake: the library's conformance tests are skipped")
    log_path = tmp / "build.log"
    with open(log_path, "w") as out:
        for step, cmd in steps:
            log(f"{step}: {' '.join(cmd)}")
            out.write(f"$ {' '.join(cmd)}\n")
            rc = _stream(cmd, out, verbose, env, cwd=build)
            if rc != 0:
                out.flush()
                shutil.copyfile(log_path, failed_log)
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
                raise LvtEdgeError(f"{step} failed (exit {rc}); nothing was cached. Last lines:\n{tail}\n"
                                   f"Full log: {failed_log}")
    lib = build / library_name(headers.major)
    if not lib.is_file():
        made = [p.name for p in build.rglob("*.so")]
        raise LvtEdgeError(f"the CMake project in {src} built no {lib.name} (it made: {', '.join(made) or 'no .so'}); "
                           "does its TensorRT major match the headers?")
    return lib, ctest is not None


def _stream(cmd: list[str], out: Any, verbose: bool, env: Mapping[str, str], cwd: Path | None = None) -> int:
    """Run `cmd`, copying its output to `out` and to stderr (progress and diagnostics only unless verbose)."""
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=dict(env), cwd=cwd if cwd is not None and cwd.is_dir() else None)
    except OSError as e:
        raise LvtEdgeError(f"cannot run {cmd[0]}: {e.strerror}; {INSTALL['cmake']}") from e
    try:
        for line in proc.stdout:
            out.write(line)
            if verbose or _PROGRESS.search(line):
                sys.stderr.write(line)
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted: stop the build before its folder is removed
            proc.kill()
            proc.wait()
        proc.stdout.close()


def cache_entries(env: Mapping[str, str] = os.environ) -> list[tuple[Path, dict[str, Any] | None]]:
    """(folder, plugin.json or None) of every cache entry, newest first."""
    root = plugin_cache(env)
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    out = []
    for folder in sorted(folders, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            out.append((folder, read_plugin_json(folder)))
        except LvtEdgeError:
            out.append((folder, None))
    return out


def describe(record: dict[str, Any]) -> str:
    archs = record.get("archs")
    return (f"TensorRT {record.get('tensorrt_version')}, CUDA {record.get('cuda_version')}, "
            f"{'sm ' + ', '.join(archs) if isinstance(archs, list) else 'all architectures'}, "
            f"plugin version {record.get('plugin_version')}")
