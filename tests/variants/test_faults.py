"""Builds under faults: concurrent runs, a corrupt cache, foreign labels, bad arguments, signals."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lvt_edge import bundle as B
from lvt_edge.variants import build_bundle
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file

pytestmark = pytest.mark.filterwarnings("ignore::lvt_edge.variants.clips.CalibrationWarning")
FAST = dict(calib_size=11, latency_rounds=2, progress=False)


def _build(workdir, precisions, clips, **kw):
    return build_bundle(workdir, precisions, **dict(FAST, calib=clips, **kw))


def test_concurrent_builds_keep_every_variant(fake_bundle, synth_clips):
    errors, logs = [], []

    def run(p):
        try:
            _build(fake_bundle, p, synth_clips, eval_size=0, log=logs.append)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,)) for p in ("int8", "fp16")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {"fp32", "fp16", "int8"} <= set(B.read_bundle(fake_bundle)["variants"]), "one variant was dropped"
    assert any("in use by another lvt-edge run" in m for m in logs), "the second build says it waits"
    assert not (fake_bundle / ".lock").exists()


def test_lock_times_out_with_a_message(fake_bundle):
    from lvt_edge.workdir import workdir_lock

    result = {}

    def second():
        try:
            with workdir_lock(fake_bundle, timeout=0.3):
                result["got"] = True
        except LvtEdgeError as e:
            result["error"] = str(e)

    with workdir_lock(fake_bundle):
        t = threading.Thread(target=second)
        t.start()
        t.join()
        with workdir_lock(fake_bundle):  # re-entrant in the holding thread
            pass
    assert "still in use by another lvt-edge run" in result["error"] and f"pid {os.getpid()}" in result["error"]


def test_incomplete_synthetic_cache_is_made_again(tmp_path):
    from lvt_edge.variants import clips as C

    folder = tmp_path / ".cache" / "synth" / "calib-seed0-n3"
    folder.mkdir(parents=True)
    (folder / "left").mkdir()  # what an interrupted or colliding generator leaves
    clips = C.synthetic_clipset(tmp_path, split="calib", num=3, seed=0, progress=False)
    assert len(clips) == 3


def test_corrupt_cache_entry_is_reported_and_rebuilt(fake_bundle, synth_clips):
    _build(fake_bundle, "fp16", synth_clips, eval_size=0)
    good = B.read_bundle(fake_bundle)["variants"]["fp16"]
    (entry,) = (fake_bundle / ".cache" / "calib").glob("fp16-*")
    with open(entry / "model.onnx", "r+b") as f:
        f.seek(100)
        f.write(b"\0" * 64)
    logs = []
    again = _build(fake_bundle, "fp16", synth_clips, eval_size=0, log=logs.append)["variants"]["fp16"]
    assert any(f"calibration cache entry {entry.name} is corrupt" in m and "recalibrating" in m for m in logs)
    assert not again["calibration"]["reused"] and again["sha256"] == good["sha256"]
    third = _build(fake_bundle, "fp16", synth_clips, eval_size=0)["variants"]["fp16"]
    assert third["calibration"]["reused"], "the rebuilt entry is good again"


def _foreign_bundle(tmp_path, make_model):
    import onnx

    from lvt_edge.io import sha256_file

    contract = ClipContract(frames=4, size=32, resize=32, labels=tuple(f"class{i}" for i in range(7)))
    workdir = tmp_path / "foreign"
    workdir.mkdir()
    path = workdir / "model.onnx"
    onnx.save(make_model(contract), str(path))
    data = B.new_bundle(contract, {"name": "fake"}, {"checkpoint": None, "sha256": None})
    data["variants"]["fp32"] = {"precision": "fp32", "onnx": path.name, "sha256": sha256_file(path),
                                "size_bytes": path.stat().st_size, "verification": {"source": "export"}}
    B.write_bundle(workdir, data)
    return workdir


def test_calibrating_on_clips_labelled_otherwise(tmp_path, synth_clips, make_model):
    workdir = _foreign_bundle(tmp_path, make_model)
    logs = []
    data = _build(workdir, "fp16", synth_clips, eval_size=5, log=logs.append)
    fp16 = data["variants"]["fp16"]
    assert fp16["calibration"]["clipset"]["clips"] == 11
    assert "not all the model's labels" in fp16["heldout"]["accuracy_skipped"]
    assert "latency_ms_b1" in fp16["heldout"] and "top1" not in fp16["heldout"]
    assert any("skipping the accuracy check" in m for m in logs)
    from lvt_edge.commands.build import summary_table

    assert "top-1 not checked" in summary_table(data)


@pytest.mark.parametrize("kw, match", [
    (dict(calib_size=math.nan), "calib-size must be >= 1"),
    (dict(calib_size=0), "calib-size must be >= 1"),
    (dict(calib_size=2.5), "calib-size must be >= 1"),
    (dict(eval_size=-1), "eval-size must be >= 0"),
    (dict(latency_rounds=-3), "latency_rounds must be >= 0"),
    (dict(batch="8:1:1"), "MIN:OPT:MAX"),
    (dict(batch="1:nan:8"), "MIN:OPT:MAX"),
    (dict(method="percentile"), "calibration method"),
    (dict(exclude=["("]), "regular expression"),
    (dict(calib="MISSING"), "not found"),
    (dict(eval_clips="MISSING"), "not found"),
])
def test_arguments_are_checked_before_any_work(tmp_path, synth_clips, monkeypatch, kw, match):
    def no_export(*a, **k):
        raise AssertionError("exported before checking the arguments")

    monkeypatch.setattr("lvt_edge.export.onnx_from_checkpoint", no_export)
    kw = {k: (tmp_path / "missing" if v == "MISSING" else v) for k, v in kw.items()}
    with pytest.raises(LvtEdgeError, match=match):
        build_bundle(tmp_path / "fresh", "int8", **dict(dict(FAST, calib=synth_clips), **kw))
    assert not (tmp_path / "fresh").exists()


def test_output_that_is_a_file_or_read_only(tmp_path, synth_clips):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LvtEdgeError, match="is a file, not a folder"):
        _build(tmp_path / "file", "int8", synth_clips)
    if os.geteuid() == 0:
        return  # root writes into read-only folders
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(LvtEdgeError, match="not writable"):
            _build(ro, "int8", synth_clips)
    finally:
        ro.chmod(0o755)


# -- signals: a real `lvt-edge build` process, killed at a few points -------------------------

def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _start(workdir, clips, pidfile):
    env = dict(os.environ, LVT_EDGE_WORKER_PIDFILE=str(pidfile))
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "lvt_edge.cli", "build", str(workdir), "--precision", "fp16,int8",
           "--target", "onnxruntime", "--calib", str(clips), "--calib-size", "11", "--eval-size", "0"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(cond, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert proc.poll() is None, f"build ended early: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


_seen: dict[str, set[int]] = {}


def _worker_pids(pidfile: Path, parent: int | None = None) -> list[int]:
    """Workers the pid file names, plus modelopt workers seen among `parent`'s children."""
    seen = _seen.setdefault(str(pidfile), set())
    if pidfile.is_file():
        seen.update(int(x) for x in pidfile.read_text().split())
    if parent is not None:
        try:
            children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
        except OSError:
            children = []
        for c in children:
            try:
                if b"_modelopt_worker" in Path(f"/proc/{c}/cmdline").read_bytes():
                    seen.add(int(c))
            except OSError:
                pass
    return sorted(seen)


def _our_temporaries(workdir: Path) -> list[Path]:
    return [p for p in workdir.rglob("*") if p.name.startswith(".") and p.name not in (".cache",)
            and (p.suffix == ".tmp" or p.name.startswith(".int8-") or p.parent.name in ("calib", "synth"))]


def _interrupt(workdir, clips, pidfile, sig, ready):
    """Start a build, send `sig` once `ready(pid)`, and check it leaves no worker and a valid bundle."""
    proc = _start(workdir, clips, pidfile)
    try:
        _wait_for(lambda: ready(proc.pid), proc)
        proc.send_signal(sig)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in _worker_pids(pidfile)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in _worker_pids(pidfile) if _alive(p)], "the quantization worker outlived the build"
    assert rc != 0
    if rc == 130:  # KeyboardInterrupt (SIGINT, or SIGTERM once the CLI turns it into one): all cleaned up
        assert "interrupted" in err
        assert not _our_temporaries(workdir), _our_temporaries(workdir)
    for p, v in B.read_bundle(workdir)["variants"].items():  # bundle.json still describes its files
        assert sha256_file(workdir / v["onnx"]) == v["sha256"], p
    assert not (workdir / ".lock").exists() or rc != 130


def test_signals_leave_no_orphan_and_a_rerun_succeeds(fake_bundle, synth_clips, tmp_path):
    pids = [tmp_path / f"workers{i}.txt" for i in range(3)]
    t0 = time.monotonic()
    _interrupt(fake_bundle, synth_clips, pids[0], signal.SIGTERM, lambda pid: time.monotonic() - t0 > 2)
    # SIGTERM after the first variant (fp16 is built before int8), while modelopt's worker runs
    _interrupt(fake_bundle, synth_clips, pids[1], signal.SIGTERM,
               lambda pid: (fake_bundle / "model.fp16.onnx").exists() and _worker_pids(pids[1], pid))
    _interrupt(fake_bundle, synth_clips, pids[2], signal.SIGINT, lambda pid: _worker_pids(pids[2], pid))
    rerun = _start(fake_bundle, synth_clips, tmp_path / "rerun.txt")  # no --force
    _, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err
    assert {"fp16", "int8"} <= set(B.read_bundle(fake_bundle)["variants"])
    assert not (fake_bundle / ".lock").exists()
