"""Export over an existing bundle: built variants kept or removed loudly, interruptions, the lock."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from lvt_edge import bundle as B  # noqa: E402
from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.export import onnx_from_checkpoint  # noqa: E402
from lvt_edge.io import sha256_file  # noqa: E402


def _fake_variant(workdir, p="int8"):
    """Record a built variant of the current model.onnx, as `lvt-edge build` would."""
    data = B.read_bundle(workdir)
    path = workdir / B.onnx_name(p)
    path.write_bytes(b"variant of " + (workdir / "model.onnx").read_bytes()[:64])
    data["variants"][p] = {"precision": p, "onnx": path.name, "sha256": sha256_file(path),
                           "fp32_sha256": data["variants"]["fp32"]["sha256"]}
    B.write_bundle(workdir, data)


def test_reexport_keeps_matching_variants_and_removes_stale_ones(tmp_path, test_ckpt, checkpoint_factory):
    out = tmp_path / "b"
    onnx_from_checkpoint(test_ckpt, out, simplifier="none")
    _fake_variant(out)
    logs = []
    onnx_from_checkpoint(test_ckpt, out, simplifier="none", log=logs.append)
    same = B.read_bundle(out)["variants"]
    if same["fp32"]["sha256"] == same.get("int8", {}).get("fp32_sha256"):
        assert any("unchanged" in m and "kept the int8" in m for m in logs), logs
        assert (out / "model.int8.onnx").is_file()
    else:  # the exporter is not byte-deterministic here: the variant counts as stale
        assert "int8" not in same and not (out / "model.int8.onnx").exists()
        _fake_variant(out)
    other = checkpoint_factory(tmp_path / "other", seed=1)
    logs.clear()
    onnx_from_checkpoint(other, out, simplifier="none", log=logs.append)
    assert "int8" not in B.read_bundle(out)["variants"]
    assert not (out / "model.int8.onnx").exists(), "the stale variant's file is orphaned"
    assert any("changed: removed the int8 variant" in m and "model.int8.onnx" in m
               and "--precision int8" in m for m in logs), logs


def test_interrupted_export_keeps_the_previous_bundle(tmp_path, test_ckpt, checkpoint_factory, monkeypatch):
    import lvt_edge.export.pipeline as P

    out = tmp_path / "b"
    onnx_from_checkpoint(test_ckpt, out, simplifier="none")
    before = {n: (out / n).read_bytes() for n in ("model.onnx", B.BUNDLE_JSON)}

    def interrupted(*a, **k):
        raise KeyboardInterrupt  # SIGTERM/Ctrl-C between model.onnx and bundle.json

    monkeypatch.setattr(P, "write_bundle", interrupted)
    with pytest.raises(KeyboardInterrupt):
        onnx_from_checkpoint(checkpoint_factory(tmp_path / "other", seed=1), out, simplifier="none")
    assert {n: (out / n).read_bytes() for n in before} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(before), "no temporaries or lock left"


def test_export_checks_arguments_first(tmp_path, test_ckpt):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LvtEdgeError, match="is a file, not a folder"):
        onnx_from_checkpoint(test_ckpt, tmp_path / "file")
    with pytest.raises(LvtEdgeError, match="not found"):
        onnx_from_checkpoint(test_ckpt, tmp_path / "o", verify_clipset=tmp_path / "missing")
    with pytest.raises(LvtEdgeError, match="opset"):
        onnx_from_checkpoint(test_ckpt, tmp_path / "o", opset=float("nan"))
    assert not (tmp_path / "o").exists()


def test_sweeps_stale_temporaries_only(tmp_path, test_ckpt):
    import os
    import time

    out = tmp_path / "b"
    out.mkdir()
    old, young, foreign = out / ".model.onnx.abc.tmp", out / ".bundle.json.def.tmp", out / ".keep.tmp"
    for p in (old, young, foreign):
        p.write_text("x")
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    os.utime(foreign, (day_ago, day_ago))
    logs = []
    onnx_from_checkpoint(test_ckpt, out, simplifier="none", log=logs.append)
    assert not old.exists() and young.exists() and foreign.exists()
    assert any("left by an interrupted run" in m for m in logs)
