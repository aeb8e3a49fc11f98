"""Export errors are LvtEdgeErrors that say how to fix the problem; nothing half-written remains."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from lvt_edge.cli import main  # noqa: E402
from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.export import onnx_from_checkpoint  # noqa: E402


def test_not_an_lvt_checkpoint(tmp_path):
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(LvtEdgeError, match="not an lvt_edge checkpoint"):
        onnx_from_checkpoint(tmp_path / "other", tmp_path / "out")
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(LvtEdgeError, match="not valid JSON"):
        onnx_from_checkpoint(tmp_path / "junk", tmp_path / "out")


def test_config_checkpoint_shape_mismatch(tmp_path, test_ckpt):
    import shutil

    for suffix in (".safetensors", ".json"):
        shutil.copy(str(test_ckpt) + suffix, tmp_path / f"ck{suffix}")
    meta = json.loads((tmp_path / "ck.json").read_text())
    meta["config"]["embed_dim"] = 48  # the weights are for 32
    (tmp_path / "ck.json").write_text(json.dumps(meta))
    with pytest.raises(LvtEdgeError, match="does not fit the model config"):
        onnx_from_checkpoint(tmp_path / "ck", tmp_path / "out")


def test_unwritable_output_folder(tmp_path, test_ckpt):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LvtEdgeError, match="writable"):
        onnx_from_checkpoint(test_ckpt, tmp_path / "file" / "out")


def test_bad_options(tmp_path, test_ckpt):
    with pytest.raises(LvtEdgeError, match="opset 17"):
        onnx_from_checkpoint(test_ckpt, tmp_path, opset=17)
    with pytest.raises(LvtEdgeError, match="unknown simplifier"):
        onnx_from_checkpoint(test_ckpt, tmp_path, simplifier="magic")


def test_verification_failure_writes_nothing(tmp_path, test_ckpt, monkeypatch):
    import lvt_edge.export.verify as verify

    monkeypatch.setattr(verify, "ATOL", -1.0)
    with pytest.raises(LvtEdgeError, match="disagrees with PyTorch"):
        onnx_from_checkpoint(test_ckpt, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_missing_demo_model(tmp_path, monkeypatch):
    import lvt_edge.demo as demo

    monkeypatch.setattr(demo, "ASSETS", tmp_path / "absent")
    with pytest.raises(LvtEdgeError, match="bundled model 'demo' is missing.*reinstall"):
        onnx_from_checkpoint(None, tmp_path / "out")


def test_cli(tmp_path, test_ckpt, capsys):
    assert main(["export", str(test_ckpt), "-o", str(tmp_path / "out"), "--simplifier", "none"]) == 0
    out = capsys.readouterr().out
    assert "FFLinearAttention nodes" in out and "top-1 agreement 100%" in out
    assert (tmp_path / "out" / "model.onnx").is_file() and (tmp_path / "out" / "bundle.json").is_file()
    assert main(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "o2")]) == 1
    assert "lvt-edge export: error:" in capsys.readouterr().err
