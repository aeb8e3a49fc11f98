"""What this machine can run: one probe per row of `lvt-edge checks`, and which verbs are usable.

Torch-free and light at import. Every probe runs inside `_safe`, imports its package lazily and
never lets a broken install (a wheel without its libraries, a driver that does not answer) crash
the report; slow things (torch, nvidia-smi, nvcc) run as subprocesses with timeouts.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

SUBPROCESS_TIMEOUT_S = 3.0
TORCH_TIMEOUT_S = 4.0  # importing torch takes ~2 s; it runs while the other probes do
JETSON_MODEL = Path("/proc/device-tree/model")
TEGRA_RELEASE = Path("/etc/nv_tegra_release")
TORCH_CPU = "pip install torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_JETSON = "pip install torch  # NVIDIA's wheel for your JetPack (docs.nvidia.com: 'Installing PyTorch for Jetson Platform')"
# The runtime core of pyproject's `dependencies`: import name -> pip package.
CORE = {"numpy": "numpy", "onnx": "onnx", "onnxruntime": "onnxruntime"}

# verb -> (Python modules it needs beyond the core, tools it needs on PATH, what it needs them for).
# Modules map to their pip package and lvt-edge extra through cli.OPTIONAL.
VERB_NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "checks": ((), (), ""),
    "models": (("torch",), (), ""),
    "clips": (("cv2",), (), "synthetic clips and video decoding"),
    "train": (("torch", "safetensors", "cv2"), (), ""),
    "export": (("torch", "safetensors", "onnxscript", "onnxslim", "onnxsim"), (), ""),
    "build": (("torch", "safetensors", "onnxscript", "onnxslim", "modelopt", "onnx_graphsurgeon", "cv2"), (),
              "the default job: export the demo model, int8 calibration, held-out clips"),
    "report": (("cv2", "matplotlib"), (), "video clip sets and plots"),
    "bench": ((), (), ""),
    "predict": (("cv2",), (), "video decoding"),
    "live": (("cv2",), (), "cameras, streams and the display"),
    "plugin": ((), ("cmake", "nvcc"), "`plugin build` (also TensorRT's C++ headers); `plugin locate` needs nothing"),
}
# verb -> modules that enable an optional path of it, and which.
VERB_OPTIONAL: dict[str, tuple[tuple[str, ...], str]] = {
    "build": (("tensorrt", "cuda"), "--target tensorrt"),
    "report": (("tensorrt", "cuda"), "--backend tensorrt"),
    "bench": (("tensorrt", "cuda"), "--backend tensorrt"),
    "predict": (("tensorrt", "cuda"), "--backend tensorrt"),
    "live": (("tensorrt", "cuda"), "--backend tensorrt"),
}


@dataclass
class Check:
    """One row: `ok` is True (fine), False (missing or broken) or None (informational)."""

    key: str
    label: str
    value: str
    ok: bool | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class VerbStatus:
    verb: str
    usable: bool
    missing: list[str]
    install: list[str]
    note: str = ""
    optional: str = ""  # what an optional path needs, when it is missing


Facts = dict[str, Check]


# --- helpers ----------------------------------------------------------------------------------

def module_present(name: str) -> bool:
    """Whether `name` is installed, without importing it (a broken parent package counts as absent)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def dist_version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        except Exception:  # a corrupt dist-info
            continue
    return None


def _short_error(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


def _output(cmd: list[str], timeout: float = SUBPROCESS_TIMEOUT_S) -> str | None:
    """stdout of `cmd`, or None when it cannot run, fails or times out."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode(errors="replace").replace("\0", "").strip()
    except OSError:
        return None


def _package_check(key: str, label: str, module: str, *dists: str) -> Check:
    if not module_present(module):
        return Check(key, label, "not installed", False, {"installed": False})
    version = dist_version(*dists) or "installed (version unknown)"
    return Check(key, label, version, True, {"installed": True, "version": version})


# --- probes -----------------------------------------------------------------------------------

def probe_lvt_edge(facts: Facts) -> Check:
    from lvt_edge import __version__

    return Check("lvt_edge", "lvt_edge", __version__, True, {"version": __version__})


def probe_python(facts: Facts) -> Check:
    bits, _ = platform.architecture(sys.executable)
    version = platform.python_version()
    value = f"{version} ({platform.python_implementation()}, {bits} {platform.machine()}) {sys.executable}"
    return Check("python", "Python", value, True,
                 {"version": version, "implementation": platform.python_implementation(), "bits": bits,
                  "machine": platform.machine(), "executable": sys.executable})


def l4t_release(text: str) -> str | None:
    """"# R36 (release), REVISION: 4.0, GCID: ..." -> "R36.4.0"."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"R{m.group(1)}.{m.group(2)}" if m else None


def probe_os(facts: Facts) -> Check:
    data: dict[str, Any] = {"system": platform.system(), "release": platform.release(), "machine": platform.machine()}
    value = f"{platform.system()} {platform.release()} {platform.machine()}"
    try:
        distro = platform.freedesktop_os_release().get("PRETTY_NAME")
    except (OSError, AttributeError):
        distro = None
    if distro:
        data["distro"] = distro
        value += f" ({distro})"
    model = _read_text(JETSON_MODEL)
    if model:
        data["jetson_model"] = model
        value += f"; {model}"
    release = _read_text(TEGRA_RELEASE)
    if release:
        l4t = l4t_release(release) or release.splitlines()[0][:80]
        data["l4t"] = l4t
        value += f"; L4T {l4t}"
    return Check("os", "OS / machine", value, None, data)


def probe_cpu(facts: Facts) -> Check:
    count = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = count
    value = f"{count}" + (f" ({usable} usable by this process)" if usable != count else "")
    return Check("cpu", "CPUs", value, None, {"count": count, "usable": usable})


def probe_numpy(facts: Facts) -> Check:
    return _package_check("numpy", "numpy", "numpy", "numpy")


def probe_onnx(facts: Facts) -> Check:
    return _package_check("onnx", "onnx", "onnx", "onnx")


def probe_onnxruntime(facts: Facts) -> Check:
    if not module_present("onnxruntime"):
        return Check("onnxruntime", "ONNX Runtime", "not installed: pip install onnxruntime", False, {"installed": False})
    try:
        import onnxruntime as ort

        providers = list(ort.get_available_providers())
        version = str(ort.__version__)
    except Exception as e:
        return Check("onnxruntime", "ONNX Runtime", f"installed but broken ({_short_error(e)})", False,
                     {"installed": True, "error": _short_error(e)})
    return Check("onnxruntime", "ONNX Runtime", f"{version}; providers: {', '.join(providers)}", True,
                 {"installed": True, "version": version, "providers": providers})


def probe_tensorrt(facts: Facts) -> Check:
    dists = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu13-bindings", "tensorrt-cu12-bindings",
             "tensorrt-cu11")
    if not module_present("tensorrt"):
        return Check("tensorrt", "TensorRT", "not installed: pip install 'lvt-edge[trt]' ([trt-cu13] for CUDA 13 "
                     "drivers; Jetson: JetPack's python3-libnvinfer with 'lvt-edge[jetpack6]')",
                     False, {"installed": False, "importable": False})
    try:
        import tensorrt

        version = str(tensorrt.__version__)
    except Exception as e:  # the bindings wheel installs without its libraries
        meta = dist_version(*dists)
        why = _short_error(e)
        return Check("tensorrt", "TensorRT",
                     f"bindings {meta or ''} installed but `import tensorrt` fails, its libraries are missing? ({why})".replace("  ", " "),
                     False, {"installed": True, "importable": False, "version": meta, "error": why})
    from lvt_edge.runtime.trt import version_floor_problem

    too_old = version_floor_problem(version)
    if too_old:
        return Check("tensorrt", "TensorRT", too_old, False,
                     {"installed": True, "importable": True, "version": version, "too_old": True})
    return Check("tensorrt", "TensorRT", version, True, {"installed": True, "importable": True, "version": version})


def probe_cuda_binding(facts: Facts) -> Check:
    data: dict[str, Any] = {"binding": None, "driver": None, "gpus": 0, "devices": []}
    if module_present("cuda.bindings"):
        version = dist_version("cuda-bindings", "cuda-python") or "?"
        data["binding"], data["version"] = "cuda-python", version
        try:
            from cuda.bindings import runtime as rt

            err, driver = rt.cudaDriverGetVersion()
            ok = err == rt.cudaError_t.cudaSuccess and driver > 0
            data["driver"] = f"{driver // 1000}.{driver % 1000 // 10}" if ok else None
            err, n = rt.cudaGetDeviceCount()
            data["gpus"] = int(n) if err == rt.cudaError_t.cudaSuccess else 0
            for i in range(data["gpus"]):
                err, prop = rt.cudaGetDeviceProperties(i)
                if err == rt.cudaError_t.cudaSuccess:
                    name = prop.name.split(b"\0")[0].decode() if isinstance(prop.name, bytes) else str(prop.name)
                    data["devices"].append({"name": name.strip(), "compute_capability": f"{prop.major}.{prop.minor}"})
        except Exception as e:
            data["error"] = _short_error(e)
            return Check("cuda", "CUDA binding", f"cuda-python {version}, but it fails: {data['error']}", False, data)
    elif module_present("pycuda"):
        version = dist_version("pycuda") or "?"
        data["binding"], data["version"] = "pycuda", version
        try:
            import pycuda.driver as drv

            drv.init()
            data["driver"] = ".".join(str(p) for p in drv.get_version())
            data["gpus"] = drv.Device.count()
            for i in range(data["gpus"]):
                major, minor = drv.Device(i).compute_capability()
                data["devices"].append({"name": str(drv.Device(i).name()), "compute_capability": f"{major}.{minor}"})
        except Exception as e:
            data["error"] = _short_error(e)
            return Check("cuda", "CUDA binding", f"pycuda {version}, no driver or device ({data['error']})", False, data)
    else:
        return Check("cuda", "CUDA binding", "none (pip install 'lvt-edge[trt]' for cuda-python; [trt-cu13] or "
                     "[jetpack6] to match other drivers)", False, data)
    driver = f"driver {data['driver']}" if data["driver"] else "no NVIDIA driver"
    return Check("cuda", "CUDA binding", f"{data['binding']} {data['version']}; {driver}; {data['gpus']} GPU(s)",
                 bool(data["driver"] and data["gpus"]), data)


def probe_gpu(facts: Facts) -> Check:
    cuda = facts.get("cuda")
    devices = list(cuda.data.get("devices", [])) if cuda else []
    source = f"via {cuda.data.get('binding')}" if devices else ""
    if not devices:
        smi = shutil.which("nvidia-smi")
        if smi:
            text = _output([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"]) or ""
            for line in text.splitlines():
                name, _, cc = line.rpartition(",")
                if name.strip():
                    devices.append({"name": name.strip(), "compute_capability": cc.strip()})
            source = "via nvidia-smi"
    data = {"devices": devices, "source": source or None,
            "archs": sorted({d["compute_capability"].replace(".", "") for d in devices
                             if re.fullmatch(r"\d+\.\d", d["compute_capability"])})}
    if not devices:
        return Check("gpu", "GPU", "none found (no CUDA device through a binding or nvidia-smi)", None, data)
    value = "; ".join(f"{d['name']} (compute {d['compute_capability']})" for d in devices) + f" {source}"
    return Check("gpu", "GPU", value, True, data)


def probe_plugin(facts: Facts) -> Check:
    from lvt_edge.variants import plugin as P
    from lvt_edge.variants.tensorrt import choose_plugin
    from lvt_edge.errors import LvtEdgeError

    trt = facts.get("tensorrt")
    version = trt.data.get("version") if trt else None
    archs = (facts["gpu"].data.get("archs") or None) if "gpu" in facts else None
    try:
        choice = choose_plugin(version, gpu=lambda: archs, sources=P.current_source_hash)
    except LvtEdgeError as e:
        return Check("plugin", "TensorRT plugin", f"none: run `{P.PLUGIN_BUILD}`", False,
                     {"library": None, "why": str(e), "tensorrt": version})
    return Check("plugin", "TensorRT plugin", f"{choice.path} ({choice.why})", True,
                 {"library": str(choice.path), "why": choice.why, "tensorrt": version})


def probe_nvcc(facts: Facts) -> Check:
    from lvt_edge.variants.plugin import INSTALL, find_nvcc

    nvcc = find_nvcc()
    if nvcc is None:
        return Check("nvcc", "nvcc", "not found (needed by `lvt-edge plugin build`)", False, {"path": None})
    m = re.search(r"release (\d+\.\d+)", _output([str(nvcc), "--version"]) or "")
    version = m.group(1) if m else "version unknown"
    return Check("nvcc", "nvcc", f"CUDA {version} ({nvcc})", True, {"path": str(nvcc), "version": version,
                                                                   "install": INSTALL["nvcc"]})


def probe_cmake(facts: Facts) -> Check:
    cmake = shutil.which("cmake")
    if cmake is None:
        return Check("cmake", "cmake", "not found (needed by `lvt-edge plugin build`)", False, {"path": None})
    m = re.search(r"version (\S+)", _output([cmake, "--version"]) or "")
    version = m.group(1) if m else "version unknown"
    return Check("cmake", "cmake", f"{version} ({cmake})", True, {"path": cmake, "version": version})


def opencv_video_io(info: str) -> dict[str, Any]:
    """GStreamer / V4L2 / FFMPEG (True/False) and the GUI backend from cv2.getBuildInformation()."""

    def flag(pattern: str) -> bool:
        m = re.search(rf"^\s*{pattern}:\s*(\S+)", info, re.IGNORECASE | re.MULTILINE)
        return bool(m and m.group(1).upper() not in ("NO", "NONE"))

    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    return {"gstreamer": flag("GStreamer"), "v4l2": flag(r"v4l/v4l2") or flag("v4l2"),
            "ffmpeg": flag("FFMPEG"), "gui": gui.group(1) if gui else "unknown"}


def probe_opencv(facts: Facts) -> Check:
    if not module_present("cv2"):
        return Check("opencv", "OpenCV", "not installed", False, {"installed": False})
    try:
        import cv2

        version = str(cv2.__version__)
        io = opencv_video_io(cv2.getBuildInformation())
    except Exception as e:
        return Check("opencv", "OpenCV", f"installed but broken ({_short_error(e)})", False,
                     {"installed": True, "error": _short_error(e)})
    yn = {True: "YES", False: "NO"}
    value = (f"{version}; GStreamer {yn[io['gstreamer']]}, V4L2 {yn[io['v4l2']]}, FFMPEG {yn[io['ffmpeg']]}, "
             f"GUI {io['gui']}")
    return Check("opencv", "OpenCV", value, True, {"installed": True, "version": version, **io})


def probe_ffmpeg(facts: Facts) -> Check:
    path = shutil.which("ffmpeg")
    return Check("ffmpeg", "ffmpeg", path or "not on PATH", bool(path), {"path": path})


TORCH_SNIPPET = "import json, torch; print(json.dumps([torch.__version__, torch.cuda.is_available()]))"


def torch_build() -> dict[str, str | None] | None:
    """torch's version and the CUDA / HIP it was built for, read from torch/version.py without
    importing torch; None when that file is not there or not readable."""
    try:
        spec = importlib.util.find_spec("torch")
        text = (Path(spec.origin).parent / "version.py").read_text()
    except Exception:
        return None
    out: dict[str, str | None] = {}
    for name in ("__version__", "cuda", "hip"):
        m = re.search(rf"^{name}\s*(?::[^=]*)?=\s*(.+?)\s*$", text, re.MULTILINE)
        out[name] = m.group(1).strip("'\"") if m and m.group(1) != "None" else None
    return out


def start_torch_probe() -> subprocess.Popen | None:
    """torch is imported in a child process: it is slow to import and a broken one can abort Python.
    A CPU-only build is known from its version.py, without starting anything."""
    if not module_present("torch"):
        return None
    build = torch_build()
    if build and build.get("__version__") and not build.get("cuda") and not build.get("hip"):
        return None
    try:
        return subprocess.Popen([sys.executable, "-c", TORCH_SNIPPET], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    except OSError:
        return None


def torch_check(proc: subprocess.Popen | None, timeout: float = TORCH_TIMEOUT_S) -> Check:
    import json

    if proc is None:
        build = torch_build() if module_present("torch") else None
        if build and build.get("__version__"):
            return Check("torch", "torch", f"{build['__version__']}; CUDA not available (a CPU-only build)", True,
                         {"installed": True, "version": build["__version__"], "cuda": False})
        return Check("torch", "torch", "not installed", False, {"installed": False})
    version = dist_version("torch")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return Check("torch", "torch", f"{version or '?'}; `import torch` took over {timeout:.0f} s", None,
                     {"installed": True, "version": version, "cuda": None})
    try:
        version, cuda = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        why = (err.strip().splitlines() or ["no output"])[-1][:160]
        return Check("torch", "torch", f"{version or '?'} installed but `import torch` fails ({why})", False,
                     {"installed": True, "version": version, "error": why})
    return Check("torch", "torch", f"{version}; CUDA {'available' if cuda else 'not available'}", True,
                 {"installed": True, "version": version, "cuda": bool(cuda)})


def probe_modelopt(facts: Facts) -> Check:
    return _package_check("modelopt", "nvidia-modelopt", "modelopt", "nvidia-modelopt")


Probe = Callable[[Facts], Check]
# In report order; a probe may read the facts of those before it (gpu reads cuda, plugin reads both).
PROBES: dict[str, tuple[str, Probe]] = {
    "lvt_edge": ("lvt_edge", probe_lvt_edge),
    "python": ("Python", probe_python),
    "os": ("OS / machine", probe_os),
    "cpu": ("CPUs", probe_cpu),
    "numpy": ("numpy", probe_numpy),
    "onnx": ("onnx", probe_onnx),
    "onnxruntime": ("ONNX Runtime", probe_onnxruntime),
    "tensorrt": ("TensorRT", probe_tensorrt),
    "cuda": ("CUDA binding", probe_cuda_binding),
    "gpu": ("GPU", probe_gpu),
    "plugin": ("TensorRT plugin", probe_plugin),
    "nvcc": ("nvcc", probe_nvcc),
    "cmake": ("cmake", probe_cmake),
    "opencv": ("OpenCV", probe_opencv),
    "ffmpeg": ("ffmpeg", probe_ffmpeg),
    "torch": ("torch", lambda facts: torch_check(None)),  # replaced in `collect` by the child-process probe
    "modelopt": ("nvidia-modelopt", probe_modelopt),
}


def _safe(key: str, label: str, probe: Probe, facts: Facts) -> Check:
    try:
        check = probe(facts)
    except Exception as e:  # a probe's own bug or an install broken in a way nobody foresaw
        return Check(key, label, f"probe failed ({_short_error(e)})", False, {"error": _short_error(e)})
    return check


def collect(probes: dict[str, tuple[str, Probe]] | None = None) -> list[Check]:
    """Run every probe in order, each fenced off from the others."""
    probes = dict(PROBES if probes is None else probes)
    if probes.get("torch", (None, None))[1] is PROBES["torch"][1]:
        proc = _safe_start_torch()
        probes["torch"] = ("torch", lambda facts: torch_check(proc))
    facts: Facts = {}
    for key, (label, probe) in probes.items():
        facts[key] = _safe(key, label, probe, facts)
    return list(facts.values())


def _safe_start_torch() -> subprocess.Popen | None:
    try:
        return start_torch_probe()
    except Exception:
        return None


# --- verbs ------------------------------------------------------------------------------------

def _cpu_only(facts: Facts) -> bool:
    gpu = facts.get("gpu")
    return not (gpu and gpu.data.get("devices"))


def _jetson(facts: Facts) -> bool:
    os_check = facts.get("os")
    return bool(os_check and (os_check.data.get("jetson_model") or os_check.data.get("l4t")))


def install_commands(missing: list[str], facts: Facts | None = None) -> list[str]:
    """The pip commands that install `missing` modules (import names), the torch wheel first."""
    from lvt_edge.variants.plugin import INSTALL
    from lvt_edge.cli import OPTIONAL

    facts = facts or {}
    out: list[str] = []
    if "torch" in missing:
        out.append(TORCH_JETSON if _jetson(facts) else TORCH_CPU if _cpu_only(facts) else "pip install torch")
    core = [CORE[m] for m in missing if m in CORE]
    if core:
        out.append("pip install " + " ".join(core))
    extras = sorted({OPTIONAL[m][1] for m in missing if m in OPTIONAL})
    if extras:
        out.append(f"pip install 'lvt-edge[{','.join(extras)}]'")
    out += [INSTALL[t] for t in missing if t in INSTALL]
    return out


def verb_status(facts: Facts | None = None, present: Callable[[str], bool] = module_present,
                tool: Callable[[str], bool] | None = None) -> list[VerbStatus]:
    """One VerbStatus per verb of the CLI, from VERB_NEEDS."""
    from lvt_edge.variants.plugin import find_nvcc
    from lvt_edge.cli import COMMANDS

    facts = facts or {}
    if tool is None:
        def tool(name: str) -> bool:
            return (find_nvcc() if name == "nvcc" else shutil.which(name)) is not None
    out = []
    for verb in COMMANDS:
        modules, tools, note = VERB_NEEDS.get(verb, ((), (), "not in lvt_edge.checks.VERB_NEEDS"))
        needed = list(modules) if verb == "checks" else [*CORE, *modules]
        missing = [m for m in needed if not _quiet(present, m)] + [t for t in tools if not _quiet(tool, t)]
        optional = ""
        opt_modules, purpose = VERB_OPTIONAL.get(verb, ((), ""))
        opt_missing = [m for m in opt_modules if not _quiet(present, m)]
        if opt_missing:
            optional = f"{purpose}: " + "; ".join(install_commands(opt_missing, facts))
        out.append(VerbStatus(verb, not missing, missing, install_commands(missing, facts), note, optional))
    return out


def _quiet(check: Callable[[str], bool], name: str) -> bool:
    try:
        return bool(check(name))
    except Exception:
        return False


# --- output -----------------------------------------------------------------------------------

def as_json(checks: list[Check], verbs: list[VerbStatus]) -> dict[str, Any]:
    return {
        "checks": {c.key: {"label": c.label, "value": c.value, "ok": c.ok, **c.data} for c in checks},
        "verbs": {v.verb: {"usable": v.usable, "missing": v.missing, "install": v.install, "note": v.note,
                           "optional": v.optional} for v in verbs},
    }


def render(checks: list[Check], verbs: list[VerbStatus], elapsed_s: float | None = None) -> str:
    width = max(len(c.label) for c in checks)
    lines = [f"{c.label.ljust(width)}  {c.value}" for c in checks]
    lines += ["", "verbs"]
    vwidth = max(len(v.verb) for v in verbs)
    for v in verbs:
        if v.usable:
            lines.append(f"  {v.verb.ljust(vwidth)}  yes" + (f"   (optional, {v.optional})" if v.optional else ""))
            continue
        lines.append(f"  {v.verb.ljust(vwidth)}  no    missing {', '.join(v.missing)}" + (f" ({v.note})" if v.note else ""))
        lines += [f"  {' ' * vwidth}        {c}" for c in v.install]
    if elapsed_s is not None:
        lines.append(f"\n(checked in {elapsed_s:.1f} s)")
    return "\n".join(lines)


def run_checks() -> tuple[list[Check], list[VerbStatus], float]:
    t0 = time.perf_counter()
    checks = collect()
    facts = {c.key: c for c in checks}
    try:
        verbs = verb_status(facts)
    except Exception as e:  # never lose the environment report over the verb table
        verbs = [VerbStatus("?", False, [], [], f"verb table failed ({_short_error(e)})")]
    return checks, verbs, time.perf_counter() - t0
