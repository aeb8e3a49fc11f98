"""`lvt-edge checks`: the environment table, its JSON, the per-verb install commands, and that a
broken probe or a missing package never crashes it."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

import lvt_edge.checks as C
from lvt_edge.cli import COMMANDS, main


def _hide(monkeypatch, *names: str) -> None:
    """Make `names` look uninstalled to importlib.util.find_spec (and so to module_present)."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in names:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def _rows(out: str) -> dict[str, str]:
    return {label: out.split("\n")[i][len(label):].strip()
            for i, line in enumerate(out.split("\n"))
            for label in [c[0] for c in C.PROBES.values()] if line.startswith(label + "  ")}


def test_table_renders_on_this_machine(capsys):
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == {label for label, _ in C.PROBES.values()}
    assert "CPUExecutionProvider" in rows["ONNX Runtime"]
    if not C.module_present("tensorrt"):
        assert rows["TensorRT"].startswith("not installed") and "lvt-edge[trt]" in rows["TensorRT"]
    if C.module_present("cv2"):
        assert "GStreamer NO" in rows["OpenCV"]  # pip's OpenCV wheels have no GStreamer
    assert rows["TensorRT plugin"].startswith(("none: run `lvt-edge plugin build`", "/"))
    verbs = out.split("\nverbs\n", 1)[1]
    for verb in COMMANDS:
        assert f"  {verb} " in verbs


def test_json_has_every_check_and_verb(capsys):
    assert main(["checks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["checks"]) == set(C.PROBES)
    assert set(data["verbs"]) == set(COMMANDS)
    for check in data["checks"].values():
        assert {"label", "value", "ok"} <= set(check)
    for verb in data["verbs"].values():
        assert {"usable", "missing", "install"} <= set(verb)
    assert data["checks"]["onnxruntime"]["providers"]
    assert data["verbs"]["checks"]["usable"] is True
    assert data["elapsed_s"] < 5


def test_every_verb_has_requirements_and_every_module_an_install_command():
    from lvt_edge.cli import OPTIONAL

    assert set(C.VERB_NEEDS) == set(COMMANDS)
    for modules, _, _ in C.VERB_NEEDS.values():
        assert all(m in OPTIONAL or m in C.CORE for m in modules)


def test_missing_torch_marks_the_torch_verbs_with_the_cpu_wheel_first(monkeypatch, capsys):
    _hide(monkeypatch, "torch")
    assert main(["checks", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    verbs = data["verbs"]
    for verb in ("models", "train", "export", "build"):
        assert not verbs[verb]["usable"] and "torch" in verbs[verb]["missing"]
    assert verbs["export"]["install"][:2] == [C.TORCH_CPU, "pip install 'lvt-edge[export]'"]
    for verb in ("bench", "predict", "live", "checks"):
        assert verbs[verb]["usable"], verb
    assert data["checks"]["torch"]["value"] == "not installed"


def test_missing_opencv_and_core_package(monkeypatch):
    present = {"cv2": False, "onnxruntime": False}
    status = {v.verb: v for v in C.verb_status(present=lambda m: present.get(m, True), tool=lambda t: True)}
    assert status["live"].missing == ["onnxruntime", "cv2"]
    assert status["live"].install == ["pip install onnxruntime", "pip install 'lvt-edge[video]'"]
    assert status["checks"].usable
    plugin = {v.verb: v for v in C.verb_status(present=lambda m: True, tool=lambda t: t != "cmake")}["plugin"]
    assert not plugin.usable and plugin.missing == ["cmake"] and "apt install cmake" in plugin.install[0]


def test_a_probe_that_raises_does_not_crash_the_command(monkeypatch, capsys):
    def broken(facts):
        raise RuntimeError("driver on fire")

    monkeypatch.setitem(C.PROBES, "onnxruntime", ("ONNX Runtime", broken))
    monkeypatch.setitem(C.PROBES, "gpu", ("GPU", broken))
    assert main(["checks"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["ONNX Runtime"] == "probe failed (RuntimeError: driver on fire)"
    assert rows["TensorRT plugin"]  # reads the failed gpu row and still answers


def test_tensorrt_bindings_without_libraries(monkeypatch):
    monkeypatch.setattr(C, "module_present", lambda name: True)  # tensorrt "is installed"...
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # ...but `import tensorrt` fails
    check = C.probe_tensorrt({})
    assert check.ok is False and "`import tensorrt` fails" in check.value
    assert check.data["installed"] is True and check.data["importable"] is False


def test_tensorrt_before_10_is_not_usable(monkeypatch):
    import types

    monkeypatch.setattr(C, "module_present", lambda name: True)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.2"))  # JetPack 6.0
    check = C.probe_tensorrt({})
    assert check.ok is False and "8.6.2 is too old" in check.value and check.data["too_old"]


def test_strict_exits_1_only_when_a_verb_is_unusable(monkeypatch, capsys):
    all_usable = all(v.usable for v in C.verb_status())
    assert main(["checks", "--strict"]) == (0 if all_usable else 1)
    _hide(monkeypatch, "torch")
    assert main(["checks", "--strict"]) == 1
    assert main(["checks"]) == 0


@pytest.mark.parametrize("text, want", [
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64", "R36.4.0"),
    ("# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref", "R35.5.0"),
    ("garbage", None),
])
def test_l4t_release(text, want):
    assert C.l4t_release(text) == want


def test_opencv_build_information():
    info = ("  GUI:                           GTK3\n  Video I/O:\n    FFMPEG:                      NO\n"
            "    GStreamer:                   YES (1.20.3)\n    v4l/v4l2:                    YES (linux/videodev2.h)\n")
    assert C.opencv_video_io(info) == {"gstreamer": True, "v4l2": True, "ffmpeg": False, "gui": "GTK3"}
    assert C.opencv_video_io("") == {"gstreamer": False, "v4l2": False, "ffmpeg": False, "gui": "unknown"}


def test_torch_version_read_without_importing_it(monkeypatch):
    build = C.torch_build()
    if build is None:
        pytest.skip("torch is not installed")
    assert build["__version__"]
