"""Faults of the input and of the machine: bad numbers, damaged JSON, a full or read-only disk,
a missing optional package, SIGTERM. Each ends in one fix-it line, never a traceback."""

from __future__ import annotations

import errno
import json
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lvt_edge import bundle as B
from lvt_edge.cli import main
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, write_bytes_atomic, write_json_atomic


# -- numbers that would make a gate that cannot fail, or invalid JSON ----------------------
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "101"])
def test_report_refuses_a_max_drop_that_cannot_gate(tmp_path, capsys, value):
    out = tmp_path / "rep"
    rc = main(["report", str(tmp_path / "no-bundle"), "--eval", str(tmp_path), f"--max-drop={value}", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "--max-drop must be a number >= 0 and <= 100" in err and value in err
    assert not out.exists()  # refused up front, before the bundle is even looked for


@pytest.mark.parametrize("flag,value", [("--runs", "0"), ("--warmup", "-1"), ("--batch", "0"), ("--e2e-clips", "0"),
                                        ("--threads", "0")])
def test_report_refuses_bad_counts_up_front(tmp_path, capsys, flag, value):
    assert main(["report", str(tmp_path / "no-bundle"), "--eval", str(tmp_path), flag, value]) == 1
    assert f"{flag} must be an integer" in capsys.readouterr().err


@pytest.mark.parametrize("flag,value", [("--runs", "0"), ("--warmup", "-2"), ("--threads", "0")])
def test_bench_refuses_bad_counts_up_front(tmp_path, capsys, flag, value):
    assert main(["bench", str(tmp_path / "no-bundle"), flag, value]) == 1
    assert f"{flag} must be an integer" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_json_writers_refuse_nan_and_infinity(tmp_path, bad):
    path = tmp_path / "x.json"
    path.write_text('{"old": 1}\n')
    with pytest.raises(ValueError, match=r"NaN/infinity .*\$\.rows\[1\]\.p50"):
        write_json_atomic(path, {"rows": [{"p50": 1.0}, {"p50": bad}]})
    assert json.loads(path.read_text()) == {"old": 1} and [p.name for p in tmp_path.iterdir()] == ["x.json"]
    write_json_atomic(path, {"missing": None})  # a missing number is null
    assert json.loads(path.read_text()) == {"missing": None}


# -- a full disk while writing any artifact -----------------------------------------------
def _full_disk_after(monkeypatch, nbytes: int):
    """Make every Path.write_bytes write `nbytes` and then fail as a full disk does."""
    def write_bytes(self, data):
        with open(self, "wb") as f:
            f.write(data[:nbytes])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_a_full_disk_removes_the_partial_file_and_names_the_path(tmp_path, monkeypatch):
    target = tmp_path / "model.int8.onnx"
    target.write_bytes(b"previous")
    _full_disk_after(monkeypatch, 3)
    with pytest.raises(LvtEdgeError, match=rf"no space left .*{target.name}.* needs about 2\.0 MB"):
        write_bytes_atomic(target, b"x" * 2_000_000)
    monkeypatch.undo()
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no .tmp left behind


def test_a_full_disk_inside_atomic_path_from_other_writers(tmp_path):
    target = tmp_path / "w.safetensors"
    with pytest.raises(LvtEdgeError, match=rf"no space left on the device holding {tmp_path}"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp))
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_folder_says_choose_a_writable_one(tmp_path):
    with pytest.raises(LvtEdgeError, match=r"cannot write .*x\.json \(read-only file system\); choose a writable"):
        with atomic_path(tmp_path / "x.json"):
            raise OSError(errno.EROFS, "Read-only file system")
    assert list(tmp_path.iterdir()) == []


# -- environment faults through the CLI: one line, exit 1; bugs keep their traceback ------
def _verb_raising(monkeypatch, exc: BaseException) -> None:
    import lvt_edge.commands.models as models

    def run(args):
        raise exc

    monkeypatch.setattr(models, "run", run)


@pytest.mark.parametrize("exc,says", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/model.onnx"),
     "no space left on the device holding /data/out/model.onnx"),
    (OSError(errno.EROFS, "Read-only file system", "/ro/report.json"),
     "cannot write /ro/report.json (read-only file system); choose a writable"),
    (PermissionError(errno.EACCES, "Permission denied", "/srv/x"), "/srv/x (permission denied)"),
    (ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib"),
     "this verb needs matplotlib (matplotlib is not installed); install it with pip install 'lvt-edge[report]'"),
    (ModuleNotFoundError("No module named 'modelopt.onnx'", name="modelopt.onnx"), "pip install 'lvt-edge[quant]'"),
    (ModuleNotFoundError("No module named 'cv2'", name="cv2"), "pip install 'lvt-edge[video]'"),
    (ModuleNotFoundError("No module named 'torch'", name="torch"), "pip install 'lvt-edge[export]'"),
])
def test_environment_faults_are_one_line_without_traceback(monkeypatch, capsys, exc, says):
    _verb_raising(monkeypatch, exc)
    assert main(["models"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lvt-edge models: error: ") and says in err and "Traceback" not in err


@pytest.mark.parametrize("exc", [ValueError("a bug"), FileNotFoundError(errno.ENOENT, "gone", "x"),
                                 ModuleNotFoundError("No module named 'lvt_edge.nope'", name="lvt_edge.nope")])
def test_bugs_keep_their_traceback(monkeypatch, exc):
    _verb_raising(monkeypatch, exc)
    with pytest.raises(type(exc)):
        main(["models"])


def test_help_documents_the_exit_codes():
    from lvt_edge.cli import build_parser

    text = build_parser().format_help()
    assert "exit codes:" in text and "130" in text and "gate failed" in text


# -- SIGTERM behaves like Ctrl-C in every verb --------------------------------------------
def test_sigterm_stops_a_verb_like_ctrl_c():
    code = textwrap.dedent("""
        import os, signal, sys, time
        import lvt_edge.commands.models as models
        from lvt_edge.cli import main

        def run(args):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
            return 0

        models.run = run
        before = signal.getsignal(signal.SIGTERM)
        rc = main(["models"])
        assert signal.getsignal(signal.SIGTERM) is before, "main() must restore the SIGTERM handler"
        sys.exit(rc)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert "lvt-edge models: interrupted" in r.stderr and "Traceback" not in r.stderr


def test_sigterm_handler_is_left_alone_off_the_main_thread():
    import threading

    from lvt_edge.cli import sigterm_as_interrupt

    seen = []

    def body():
        with sigterm_as_interrupt():  # signal.signal would raise ValueError here
            seen.append(signal.getsignal(signal.SIGTERM))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert seen == [signal.getsignal(signal.SIGTERM)]


# -- bundle.json with missing or ill-typed fields -------------------------------------------
def _bundle_json(tmp_path: Path, edit) -> Path:
    contract = ClipContract(frames=4, size=56, resize=56, labels=("a", "b", "c"))
    data = B.new_bundle(contract, {"name": "lvt-test", "num_classes": 3}, {"checkpoint": "src.safetensors"})
    data["variants"]["fp32"] = {"precision": "fp32", "onnx": "model.onnx", "sha256": "0" * 64, "size_bytes": 10}
    edit(data)
    (tmp_path / B.BUNDLE_JSON).write_text(json.dumps(data))
    return tmp_path


def _set(path: str, value):
    def edit(data):
        *parents, last = path.split(".")
        for p in parents:
            data = data[p]
        data[last] = value
    return edit


@pytest.mark.parametrize("edit,field", [
    (lambda d: d.pop("contract"), "no 'contract'"),
    (_set("variants", ["fp32"]), "variants must be an object"),
    (_set("variants.fp32", "model.onnx"), "variants.fp32 must be an object"),
    (_set("variants.fp32.onnx", 3), "variants.fp32.onnx must be a string"),
    (_set("variants.fp32.precision", "int8"), "variants.fp32.precision is 'int8', not 'fp32'"),
    (_set("variants.bf16", {}), "variants.bf16: unknown precision"),
    (_set("contract.frames", "4"), "contract.frames must be an integer, got '4'"),
    (_set("contract.labels", "abc"), "contract.labels must be a list of strings"),
    (_set("contract.std", [0.5, 0.0, 0.5]), "std > 0"),
    (_set("model_config.num_classes", 5), "contract.labels has 3 labels but model_config.num_classes is 5"),
    (_set("model_config.num_classes", "3"), "model_config.num_classes must be an integer"),
])
def test_a_damaged_bundle_json_names_the_field_and_the_fix(tmp_path, edit, field):
    work = _bundle_json(tmp_path, edit)
    with pytest.raises(LvtEdgeError) as e:
        B.read_bundle(work)
    msg = str(e.value)
    assert field in msg and str(work / B.BUNDLE_JSON) in msg and "lvt-edge export" in msg


def test_a_sound_bundle_json_reads(tmp_path):
    assert B.read_bundle(_bundle_json(tmp_path, lambda d: None))["variants"]["fp32"]["onnx"] == "model.onnx"
