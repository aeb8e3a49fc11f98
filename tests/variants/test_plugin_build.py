"""`lvt-edge plugin build` / `locate` and the plugin lookup of `build --target tensorrt`: header
discovery, the cache (keys, atomic entries, reuse), choosing a library for the installed TensorRT;
with a fake cmake in milliseconds, and one real cmake + nvcc build against the fixture headers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from lvt_edge.variants import plugin as P
from lvt_edge.variants import tensorrt as TR
from lvt_edge.cli import main
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file

REPO = Path(__file__).resolve().parents[2]
FIXTURE_HEADERS = REPO.parent / "shared" / "third_party" / "tensorrt-headers"
REAL_BUILD_LIMIT_S = 90  # on 2 CI cores; the real build runs in CI only below this

FAKE_CMAKE = r'''#!{python}
"""Stands in for cmake: configure records the TensorRT major, build writes the library."""
import json, os, pathlib, re, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CMAKE_LOG"], "a") as f:
    f.write(json.dumps(args) + "\n")
mode = os.environ.get("FAKE_CMAKE", "ok")
if args[0] == "--build":
    out = pathlib.Path(args[1])
    print("[ 50%] Building CUDA object ffla/CMakeFiles/ffla.dir/ffla_kernel.cu.o", flush=True)
    if mode == "fail":
        print("ffla_kernel.cu(12): error: identifier \"oops\" is undefined")
        sys.exit(2)
    major = (out / "major").read_text()
    name = "liblvt_edge_other.so" if mode == "nolib" else f"liblvt_edge_ffla_trt{major}.so"
    (out / name).write_bytes(b"\x7fELF fake " + os.urandom(8))
    print("[100%] Built target lvt_edge_ffla")
else:
    out = pathlib.Path(args[args.index("-B") + 1])
    out.mkdir(parents=True, exist_ok=True)
    inc = next(a.split("=", 1)[1] for a in args if a.startswith("-DTENSORRT_INCLUDE_DIR="))
    text = (pathlib.Path(inc) / "NvInferVersion.h").read_text()
    (out / "major").write_text(re.search(r"(?:NV_TENSORRT_MAJOR|TRT_MAJOR_ENTERPRISE) (\d+)", text).group(1))
    print("-- Configuring done")
'''
FAKE_CTEST = r'''#!{python}
import os, sys
print("1/1 Test #1: ffla_conformance .........   " + ("***Failed" if os.environ.get("FAKE_CTEST") == "fail" else "Passed"))
sys.exit(8 if os.environ.get("FAKE_CTEST") == "fail" else 0)
'''
FAKE_NVCC = r'''#!{python}
import sys
if "--version" in sys.argv:
    print("nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 12.6, V12.6.68")
elif "--list-gpu-code" in sys.argv:
    print("\n".join(f"sm_{a}" for a in (75, 80, 86, 87, 89, 90)))
'''


def fake_headers(folder: Path, major: int, minor: int, patch: int = 0, enterprise: bool = False) -> Path:
    """An include/ folder with NvInferVersion.h spelled like 10.x (numbers) or 11.x (TRT_*_ENTERPRISE)."""
    folder.mkdir(parents=True, exist_ok=True)
    if enterprise:
        text = (f"#define TRT_MAJOR_ENTERPRISE {major}\n#define TRT_MINOR_ENTERPRISE {minor}\n"
                f"#define TRT_PATCH_ENTERPRISE {patch}\n#define TRT_BUILD_ENTERPRISE 7\n"
                "#define NV_TENSORRT_MAJOR TRT_MAJOR_ENTERPRISE //!< major\n"
                "#define NV_TENSORRT_MINOR TRT_MINOR_ENTERPRISE\n#define NV_TENSORRT_PATCH TRT_PATCH_ENTERPRISE\n")
    else:
        text = (f"#define NV_TENSORRT_MAJOR {major} //!< TensorRT major version.\n#define NV_TENSORRT_MINOR {minor}\n"
                f"#define NV_TENSORRT_PATCH {patch}\n#define NV_TENSORRT_BUILD 26\n")
    (folder / "NvInferVersion.h").write_text(f"#ifndef NV_INFER_VERSION_H\n{text}#endif\n")
    (folder / "NvInferRuntime.h").write_text("// fake\n")
    return folder


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A fake machine: cmake, nvcc and g++ on PATH, TensorRT 10.3 headers, plugin sources, an empty
    cache, no GPU and no TensorRT Python package; nothing of the real machine is searched."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("cmake", FAKE_CMAKE), ("ctest", FAKE_CTEST), ("nvcc", FAKE_NVCC), ("g++", "#!/bin/sh\n")):
        (bin_dir / name).write_text(text.replace("{python}", sys.executable))
        (bin_dir / name).chmod(0o755)
    src = tmp_path / "plugins"
    (src / "ffla").mkdir(parents=True)
    (src / "CMakeLists.txt").write_text("project(fake)\n")
    (src / "ffla" / "ffla_kernel.cu").write_text("// kernel v1\n")
    (src / "ffla" / "README.md").write_text("docs\n")
    include = fake_headers(tmp_path / "trt10" / "include", 10, 3)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home"), "LVT_EDGE_CACHE": str(tmp_path / "cache"),
           "FAKE_CMAKE_LOG": str(tmp_path / "cmake.log"), P.SOURCE_ENV: str(src)}
    for var in ("TENSORRT_INCLUDE_DIR", "TENSORRT_ROOT", "TRT_ROOT", "TensorRT_ROOT", "LD_LIBRARY_PATH", "CXX",
                "CUDA_HOME", "CUDA_PATH", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setattr(P, "MULTIARCH_INCLUDE_DIRS", (tmp_path / "usr-include-multiarch",))
    monkeypatch.setattr(P, "SYSTEM_INCLUDE_DIRS", (tmp_path / "usr-include",))
    monkeypatch.setattr(P, "CUDA_BIN_DIRS", (tmp_path / "cuda" / "bin",))
    monkeypatch.setattr(P, "_tensorrt_package_dir", lambda: None)
    monkeypatch.setattr(P, "installed_tensorrt", lambda: (None, "no tensorrt in this test"))
    monkeypatch.setattr(P, "gpu_archs", lambda env=None: (None, "no GPU in this test"))
    return types.SimpleNamespace(root=tmp_path, bin=bin_dir, src=src, include=include, env=env,
                                 cache=tmp_path / "cache" / "plugins", log=tmp_path / "cmake.log")


def cmake_calls(m) -> list[list[str]]:
    return [json.loads(line) for line in m.log.read_text().splitlines()] if m.log.is_file() else []


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_dir()) if cache.is_dir() else []


def quiet(msg: str) -> None:
    pass


# --- headers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version,want,build", [("10.3", "10.3.0", 26), ("11.1", "11.1.0", 106)])
def test_fixture_header_versions(version, want, build):
    include = FIXTURE_HEADERS / version / "include"
    if not include.is_dir():
        pytest.skip(f"no TensorRT {version} fixture headers at {include}")
    found = P.headers_at(include, "test")
    assert (found.version, found.build, found.major) == (want, build, int(version.split(".")[0]))


def test_header_version_spellings(tmp_path):
    assert P.read_header_version(fake_headers(tmp_path / "a", 10, 16, 1) / "NvInferVersion.h") == ("10.16.1", 26)
    assert P.read_header_version(fake_headers(tmp_path / "b", 11, 2, 0, enterprise=True) / "NvInferVersion.h") == ("11.2.0", 7)
    only_trt = tmp_path / "c" / "NvInferVersion.h"
    only_trt.parent.mkdir()
    only_trt.write_text("#define TRT_MAJOR_ENTERPRISE 12\n#define TRT_MINOR_ENTERPRISE 0\n")
    assert P.read_header_version(only_trt) == ("12.0.0", None)
    only_trt.write_text("#define SOMETHING 1\n")
    with pytest.raises(LvtEdgeError, match="defines no TensorRT version"):
        P.read_header_version(only_trt)


def test_header_search_order(machine, monkeypatch):
    root = machine.root
    jetpack = fake_headers(root / "usr-include-multiarch", 10, 3)
    tar = fake_headers(root / "TensorRT-11.1.0" / "include", 11, 1, enterprise=True)
    assert P.find_tensorrt_headers().include == jetpack and "JetPack" in P.find_tensorrt_headers().found_by
    monkeypatch.setenv("TENSORRT_ROOT", str(tar.parent))
    # the installed TensorRT decides between several: the same version, else the same major
    assert P.find_tensorrt_headers(want="11.1.0.5").include == tar
    assert P.find_tensorrt_headers(want="10.16.1").include == jetpack
    with pytest.raises(LvtEdgeError, match=r"installed TensorRT is 12.0.*only headers found.*10.3.0.*11.1.0"):
        P.find_tensorrt_headers(want="12.0")
    # a tar found through LD_LIBRARY_PATH
    monkeypatch.delenv("TENSORRT_ROOT")
    (tar.parent / "lib").mkdir()
    (tar.parent / "lib" / "libnvinfer.so.11").write_bytes(b"")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tar.parent / "lib"))
    assert P.find_tensorrt_headers(want="11.1").include == tar
    # an explicit folder wins over everything, the flag over the environment
    monkeypatch.setenv("TENSORRT_INCLUDE_DIR", str(machine.include))
    assert P.find_tensorrt_headers(want="11.1").include == machine.include
    assert P.find_tensorrt_headers(tar).found_by == "--tensorrt-include"
    with pytest.raises(LvtEdgeError, match=r"holds no TensorRT headers.*did you mean .*include"):
        P.find_tensorrt_headers(tar.parent)


def test_no_headers_says_where_it_looked_and_how_to_get_them(machine):
    with pytest.raises(LvtEdgeError) as e:
        P.find_tensorrt_headers()
    msg = str(e.value)
    assert str(machine.root / "usr-include-multiarch") in msg and str(machine.root / "usr-include") in msg
    assert "sudo apt install libnvinfer-dev" in msg and "github.com/NVIDIA/TensorRT" in msg
    assert "--tensorrt-include" in msg


# --- small pieces -----------------------------------------------------------------------------

@pytest.mark.parametrize("spec,want", [("87", ["87"]), ("8.7", ["87"]), ("sm_87,90", ["87", "90"]),
                                       ("87;87 89", ["87", "89"]), ("90a", ["90a"]), ("all", None), (None, None)])
def test_parse_archs(spec, want):
    assert P.parse_archs(spec) == want


@pytest.mark.parametrize("spec", ["ampere", "8.", "87,,x"])
def test_parse_archs_rejects(spec):
    with pytest.raises(LvtEdgeError, match="--arch"):
        P.parse_archs(spec)


def test_cache_key_and_root(tmp_path):
    assert P.cache_key("10.3.0.30", "12.6", ["87"]) == "trt10.3.0-cuda12.6-sm87"
    assert P.cache_key("11.1", "13.0", ["89", "90"]) == "trt11.1.0-cuda13.0-sm89_90"
    assert P.cache_key("10.3.0", "13.0", None) == "trt10.3.0-cuda13.0-all"
    home = {"HOME": str(tmp_path)}
    assert P.cache_root({"LVT_EDGE_CACHE": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert P.plugin_cache({"XDG_CACHE_HOME": "/x"}) == Path("/x/lvt_edge/plugins")
    assert P.library_name(11) == "liblvt_edge_ffla_trt11.so"
    assert P.cache_root(home).name == "lvt_edge"


def test_source_hash_follows_build_inputs_only(machine):
    h = P.source_hash(machine.src)
    (machine.src / "ffla" / "README.md").write_text("other docs\n")
    (machine.src / "build").mkdir()
    (machine.src / "build" / "junk.cpp").write_text("x")
    assert P.source_hash(machine.src) == h
    (machine.src / "ffla" / "ffla_kernel.cu").write_text("// kernel v2\n")
    assert P.source_hash(machine.src) != h


def test_find_sources(machine, monkeypatch, tmp_path):
    assert P.find_sources() == machine.src
    assert P.find_sources(machine.src) == machine.src
    with pytest.raises(LvtEdgeError, match="no CMakeLists.txt"):
        P.find_sources(tmp_path / "bin")
    monkeypatch.delenv(P.SOURCE_ENV)
    monkeypatch.setattr(P, "_checkout_sources", lambda: tmp_path / "nope")
    monkeypatch.setattr(P, "_packaged_sources", lambda: machine.src)
    assert P.find_sources() == machine.src
    monkeypatch.setattr(P, "_packaged_sources", lambda: tmp_path / "nope2")
    with pytest.raises(LvtEdgeError, match="--source REPO/plugins"):
        P.find_sources()


# --- building with a fake cmake ---------------------------------------------------------------

def test_build_records_and_reuses(machine):
    built = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    key = "trt10.3.0-cuda12.6-sm87"
    assert built.folder == machine.cache / key and not built.reused
    assert built.library == machine.cache / key / "liblvt_edge_ffla_trt10.so"
    rec = json.loads((built.folder / "plugin.json").read_text())
    assert rec["sha256"] == sha256_file(built.library) and rec["plugin_version"] == "1"
    assert (rec["tensorrt_version"], rec["tensorrt_major"], rec["cuda_version"], rec["archs"]) == ("10.3.0", 10, "12.6", ["87"])
    assert rec["source_sha256"] == P.source_hash(machine.src) and rec["ctest_passed"] is True
    configure = cmake_calls(machine)[0]
    assert configure[:4] == ["-S", str(machine.src), "-B", configure[3]]
    assert f"-DTENSORRT_INCLUDE_DIR={machine.include}" in configure and "-DCMAKE_CUDA_ARCHITECTURES=87" in configure
    assert cmake_calls(machine)[1][:2] == ["--build", configure[3]]
    assert entries(machine.cache) == [key], "the build folder is gone"

    lines: list[str] = []
    again = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=lines.append)
    assert again.reused and again.library == built.library and len(cmake_calls(machine)) == 2
    assert "reusing" in lines[0] and "--force" in lines[0]
    sha = sha256_file(built.library)
    forced = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", force=True, log=quiet)
    assert not forced.reused and len(cmake_calls(machine)) == 4 and sha256_file(forced.library) != sha
    (machine.src / "ffla" / "ffla_kernel.cu").write_text("// kernel v2\n")
    lines.clear()
    changed = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=lines.append)
    assert not changed.reused and "sources changed" in lines[0]
    changed.library.write_bytes(b"tampered")
    assert not P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet).reused
    assert entries(machine.cache) == [key]


def test_arch_from_the_gpu_else_all(machine, monkeypatch):
    built = P.plugin_from_sources(tensorrt_include=machine.include, log=quiet)
    assert built.folder.name == "trt10.3.0-cuda12.6-all" and built.record["archs"] == "all"
    assert not any(a.startswith("-DCMAKE_CUDA_ARCHITECTURES") for a in cmake_calls(machine)[0])
    monkeypatch.setattr(P, "gpu_archs", lambda env=None: (["89"], "the GPU via test"))
    built = P.plugin_from_sources(tensorrt_include=machine.include, log=quiet)
    assert built.folder.name == "trt10.3.0-cuda12.6-sm89" and built.record["archs_from"] == "the GPU via test"
    with pytest.raises(LvtEdgeError, match=r"cannot compile for sm_72.*supports sm_75"):
        P.plugin_from_sources(tensorrt_include=machine.include, arch="72", log=quiet)


def test_11x_headers_make_a_trt11_library(machine):
    inc = fake_headers(machine.root / "trt11" / "include", 11, 1, enterprise=True)
    built = P.plugin_from_sources(tensorrt_include=inc, arch="90", log=quiet)
    assert built.library.name == "liblvt_edge_ffla_trt11.so" and built.folder.name == "trt11.1.0-cuda12.6-sm90"


def test_headers_follow_the_installed_tensorrt(machine, monkeypatch):
    fake_headers(machine.root / "usr-include-multiarch", 10, 3)
    tar = fake_headers(machine.root / "TensorRT-11.1.0" / "include", 11, 1, enterprise=True)
    monkeypatch.setenv("TRT_ROOT", str(tar.parent))
    monkeypatch.setattr(P, "installed_tensorrt", lambda: ("11.1.0.106", "test"))
    assert P.plugin_from_sources(arch="87", log=quiet).library.name == "liblvt_edge_ffla_trt11.so"
    lines: list[str] = []  # headers given by hand win, loudly, when they do not match
    built = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=lines.append)
    assert built.library.name == "liblvt_edge_ffla_trt10.so"
    assert "WARNING" in lines[0] and "installed TensorRT is 11.1.0.106" in lines[0]


def test_a_failed_build_leaves_nothing(machine, monkeypatch):
    monkeypatch.setenv("FAKE_CMAKE", "fail")
    with pytest.raises(LvtEdgeError, match=r"(?s)cmake build failed \(exit 2\); nothing was cached.*identifier \"oops\""):
        P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    assert entries(machine.cache) == [] and not any(machine.cache.glob(".*"))
    assert (machine.cache / "trt10.3.0-cuda12.6-sm87.failed.log").is_file()
    monkeypatch.setenv("FAKE_CMAKE", "ok")
    monkeypatch.setenv("FAKE_CTEST", "fail")
    with pytest.raises(LvtEdgeError, match=r"(?s)ctest failed \(exit 8\); nothing was cached.*Failed"):
        P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    assert entries(machine.cache) == []
    monkeypatch.setenv("FAKE_CTEST", "ok")
    monkeypatch.setenv("FAKE_CMAKE", "nolib")
    with pytest.raises(LvtEdgeError, match="built no liblvt_edge_ffla_trt10.so.*liblvt_edge_other.so"):
        P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    assert entries(machine.cache) == []


def test_a_failed_rebuild_keeps_the_old_entry(machine, monkeypatch):
    good = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    sha = sha256_file(good.library)
    monkeypatch.setenv("FAKE_CMAKE", "fail")
    with pytest.raises(LvtEdgeError, match="cmake build failed"):
        P.plugin_from_sources(tensorrt_include=machine.include, arch="87", force=True, log=quiet)
    assert sha256_file(good.library) == sha and entries(machine.cache) == [good.folder.name]


def test_an_interrupted_build_leaves_nothing(machine, monkeypatch):
    def interrupted(cmd, out, verbose, env, cwd=None):
        if cmd[1] == "--build":
            raise KeyboardInterrupt
        return subprocess.run(cmd, env=dict(env), capture_output=True).returncode

    monkeypatch.setattr(P, "_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    assert entries(machine.cache) == [] and not any(machine.cache.glob(".*"))


def test_stale_temp_folders_are_removed(machine):
    stale = machine.cache / ".trt10.3.0-cuda12.6-sm87.killed"
    stale.mkdir(parents=True)
    old = time.time() - P.TEMP_MAX_AGE_S - 60
    os.utime(stale, (old, old))
    P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    assert not stale.exists()


def test_missing_tools_name_the_install_commands(machine, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(LvtEdgeError) as e:
        P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    msg = str(e.value)
    assert "sudo apt install cmake" in msg and "sudo apt install g++" in msg and "CUDA toolkit" in msg
    cuda_bin = tmp_path / "cuda" / "bin"  # nvcc found in /usr/local/cuda/bin when not on PATH
    cuda_bin.mkdir(parents=True)
    shutil.copy(machine.bin / "nvcc", cuda_bin / "nvcc")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert P.find_nvcc() == cuda_bin / "nvcc"
    shutil.copy(machine.bin / "cmake", tmp_path / "cmake")  # no ctest beside it: built, not tested
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CXX", str(machine.bin / "g++"))
    built = P.plugin_from_sources(tensorrt_include=machine.include, arch="87", log=quiet)
    assert f"-DCMAKE_CUDA_COMPILER={cuda_bin / 'nvcc'}" in cmake_calls(machine)[0] and built.library.is_file()
    assert built.record["ctest_passed"] is False


# --- choosing a library -----------------------------------------------------------------------

def cache_entry(cache: Path, version: str, archs: list[str] | None = None, source: str = "src") -> Path:
    """A cache entry as `plugin build` writes it, without building."""
    major = int(version.split(".")[0])
    folder = cache / P.cache_key(version, "12.6", archs)
    folder.mkdir(parents=True)
    lib = folder / P.library_name(major)
    lib.write_bytes(f"lib {version}".encode())
    (folder / "plugin.json").write_text(json.dumps({
        "format": P.FORMAT, "format_version": 1, "library": lib.name, "sha256": sha256_file(lib),
        "plugin_version": "1", "tensorrt_version": version, "tensorrt_major": major, "cuda_version": "12.6",
        "archs": archs or "all", "source_sha256": source, "key": folder.name}))
    return lib


def choose(version, dirs, gpu=None, sources="src"):
    return TR.choose_plugin(version, dirs=dirs, gpu=lambda: gpu, sources=lambda: sources)


def test_choose_plugin_by_tensorrt_version(tmp_path):
    cache = tmp_path / "cache"
    t10 = cache_entry(cache, "10.3.0", ["87"])
    t10new = cache_entry(cache, "10.16.1", ["87"])
    t11 = cache_entry(cache, "11.1.0", ["87"])
    assert choose("10.3.0.30", [cache]).path == t10
    c = choose("10.16.1", [cache])
    assert c.path == t10new and "exactly" in c.why and c.major == 10
    c = choose("10.8.0", [cache])
    assert c.major == 10 and "same major" in c.why
    assert choose("11.1.0", [cache]).path == t11
    assert choose("11.2.0", [cache]).path == t11
    with pytest.raises(LvtEdgeError, match=r"built for TensorRT 1[01], this machine has TensorRT 12.0.*lvt-edge plugin build"):
        choose("12.0.0", [cache])


def test_choose_plugin_gpu_sources_and_folders(tmp_path):
    cache, build = tmp_path / "cache", tmp_path / "build" / "plugins"
    orin = cache_entry(cache, "10.3.0", ["87"])
    assert choose("10.3.0", [cache], gpu=["89"]).path == orin  # sm87 code runs on 8.9 (same major, PTX)
    with pytest.raises(LvtEdgeError, match=r"passed over: .*built for sm 87, this GPU is sm 80"):
        choose("10.3.0", [cache], gpu=["80"])
    exact = cache_entry(cache, "10.3.0", ["80", "90"])
    assert choose("10.3.0", [cache], gpu=["90"]).path == exact
    c = choose("10.3.0", [cache], gpu=["87"], sources="changed")
    assert c.path == orin and "older plugins/ sources" in c.why
    # a plain `cmake -B build/plugins` build: its name gives the major, later folders come after the cache
    build.mkdir(parents=True)
    plain = build / "liblvt_edge_ffla_trt10.so"
    plain.write_bytes(b"plain")
    assert choose("10.3.0", [tmp_path / "empty", build]).path == plain
    assert choose("10.3.0", [cache, build], gpu=["87"]).path == orin
    with pytest.raises(LvtEdgeError, match="built for TensorRT 10, this machine has TensorRT 11.1.0"):
        choose("11.1.0", [cache, build])
    unnamed = build / "liblvt_edge_plugins.so"  # nothing says its major: taken last, and said so
    unnamed.write_bytes(b"old name")
    c = choose("11.1.0", [cache, build])
    assert c.path == unnamed and c.major is None and "unknown TensorRT" in c.why


def test_find_plugin_refuses_another_major(tmp_path, monkeypatch):
    lib11 = cache_entry(tmp_path / "cache", "11.1.0", ["87"])
    with pytest.raises(LvtEdgeError, match=r"built for TensorRT 11, this machine has TensorRT 10.3.0.*`lvt-edge plugin build`"):
        TR.find_plugin(lib11, "10.3.0")
    assert TR.find_plugin(lib11, "11.1.0") == lib11
    renamed = tmp_path / "liblvt_edge_ffla_trt11.so"
    renamed.write_bytes(b"x")
    with pytest.raises(LvtEdgeError, match="built for TensorRT 11"):
        TR.find_plugin(renamed, "10.3.0.30")
    monkeypatch.setattr(TR, "default_plugin_dirs", lambda: [tmp_path / "cache"])
    monkeypatch.setattr(P, "gpu_archs", lambda env=None: (None, "test"))
    with pytest.raises(LvtEdgeError, match="built for TensorRT 11, this machine has TensorRT 10.3.0"):
        TR.find_plugin(None, "10.3.0.30")
    assert TR.find_plugin(None, "11.1.0.106") == lib11


def test_default_dirs_start_with_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("LVT_EDGE_CACHE", str(tmp_path / "c"))
    dirs = TR.default_plugin_dirs()
    assert dirs[0] == tmp_path / "c" / "plugins" and dirs[-1] == REPO / "build" / "plugins"
    assert len(dirs) == len(set(dirs))


def test_plugin_record_names_version_hash_and_major(tmp_path):
    lib = cache_entry(tmp_path / "cache", "10.3.0", ["87"])
    registry = types.SimpleNamespace(get_creator=lambda *a: types.SimpleNamespace(plugin_version="1"))
    trt = types.SimpleNamespace(__version__="10.3.0.30", get_plugin_registry=lambda: registry)
    rec = TR.plugin_record(lib, tmp_path / "bundle", trt, layers=6)
    assert (tmp_path / "bundle" / rec["path"]).read_bytes() == lib.read_bytes()
    assert rec["sha256"] == sha256_file(lib) and rec["version"] == "1" and rec["tensorrt_major"] == 10
    assert rec["build"]["tensorrt_version"] == "10.3.0" and rec["build"]["archs"] == ["87"]
    assert str(tmp_path) not in json.dumps(rec), "no path of the build machine in bundle.json"
    plain = tmp_path / "liblvt_edge_plugins.so"
    plain.write_bytes(b"plain")
    rec = TR.plugin_record(plain, tmp_path / "bundle", trt, layers=6)
    assert rec["tensorrt_major"] == 10 and rec["build"] is None


# --- the command line -------------------------------------------------------------------------

def test_cli_build_then_locate(machine, capsys):
    assert main(["plugin", "build", "--tensorrt-include", str(machine.include), "--arch", "87", "-j", "1"]) == 0
    out, err = capsys.readouterr()
    lib = machine.cache / "trt10.3.0-cuda12.6-sm87" / "liblvt_edge_ffla_trt10.so"
    assert out.strip() == str(lib) and "[ 50%]" in err and "built" in err
    assert main(["plugin", "build", "--tensorrt-include", str(machine.include), "--arch", "87"]) == 0
    assert "reusing" in capsys.readouterr().err
    assert main(["plugin", "locate", "--tensorrt-version", "10.3.0"]) == 0
    out = capsys.readouterr().out
    assert f"library:  {lib}" in out and "exactly" in out and "trt10.3.0-cuda12.6-sm87" in out
    assert main(["plugin", "info", "--tensorrt-version", "10.3.0", "--path"]) == 0
    assert capsys.readouterr().out.strip() == str(lib)
    assert main(["plugin", "locate", "--tensorrt-version", "10.3.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["plugin_json"]["archs"] == ["87"]
    assert main(["plugin", "locate", "--tensorrt-version", "11.1.0"]) == 1
    assert "built for TensorRT 10, this machine has TensorRT 11.1.0" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--arch", "ampere"], "--arch 'ampere'"),
    (["--jobs", "0"], "--jobs 0"),
    (["--tensorrt-include", "/nonexistent"], "holds no TensorRT headers"),
    ([], "were not found in"),
    (["--source", "/nonexistent"], "has no CMakeLists.txt"),
])
def test_cli_errors_are_one_message(machine, capsys, argv, message):
    assert main(["plugin", "build", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lvt-edge plugin: error:") and message in err and "Traceback" not in err


def test_cli_needs_an_action(capsys):
    with pytest.raises(SystemExit) as e:
        main(["plugin"])
    assert e.value.code == 2 and "build" in capsys.readouterr().err


# --- the real thing ---------------------------------------------------------------------------

def _real_build_ready() -> str | None:
    if not (FIXTURE_HEADERS / "10.3" / "include" / "NvInferVersion.h").is_file():
        return f"no TensorRT 10.3 fixture headers at {FIXTURE_HEADERS}"
    if not (REPO / "plugins" / "CMakeLists.txt").is_file():
        return "plugins/CMakeLists.txt is not written yet"
    missing = [t for t in ("cmake", "g++") if shutil.which(t) is None]
    if P.find_nvcc() is None:
        missing.append("nvcc")
    return f"{', '.join(missing)} not installed" if missing else None


def test_real_build_against_the_fixture_headers(tmp_path, monkeypatch):
    """cmake + nvcc for sm_87 against the TensorRT 10.3 headers: a library that exports only
    getCreators and setLoggerFinder, needs no libnvinfer, is cached, reused and chosen."""
    why = _real_build_ready()
    if why:
        pytest.skip(why)
    monkeypatch.setenv("LVT_EDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(P, "installed_tensorrt", lambda: (None, "test"))
    include = FIXTURE_HEADERS / "10.3" / "include"
    built = P.plugin_from_sources(tensorrt_include=include, arch="87", source=REPO / "plugins", jobs=2, log=quiet)
    assert built.library.name == "liblvt_edge_ffla_trt10.so" and built.record["cuda_version"]
    assert built.record["tensorrt_version"] == "10.3.0" and built.record["archs"] == ["87"]
    if shutil.which("nm"):
        nm = subprocess.run(["nm", "-D", "--defined-only", str(built.library)], capture_output=True, text=True).stdout
        exported = {line.split()[-1] for line in nm.splitlines() if line.split()[1:2] in (["T"], ["W"])}
        assert exported == {"getCreators", "setLoggerFinder"}, exported
    if shutil.which("readelf"):
        dynamic = subprocess.run(["readelf", "-d", str(built.library)], capture_output=True, text=True).stdout
        assert "libnvinfer" not in dynamic and "libcudart" not in dynamic
    assert P.plugin_from_sources(tensorrt_include=include, arch="87", source=REPO / "plugins", log=quiet).reused
    assert TR.choose_plugin("10.3.0.26", dirs=[P.plugin_cache()], gpu=lambda: ["87"],
                            sources=lambda: P.source_hash(REPO / "plugins")).path == built.library
