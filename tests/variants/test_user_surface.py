"""`lvt-edge build` as a user meets it: which model a folder without model.onnx gets (the demo
model only without DIR), `--checkpoint` for export-and-build in one step, the untrained note."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lvt_edge import bundle as B
from lvt_edge.cli import main
from lvt_edge.commands.build import summary_table
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file

pytestmark = pytest.mark.filterwarnings("ignore::lvt_edge.variants.clips.CalibrationWarning")
FP32_ONLY = ["--precision", "fp32", "--eval-size", "0"]


def _checkpoint(path: Path, seed: int) -> Path:
    import torch

    from lvt_edge.model import create_model
    from lvt_edge.model.checkpoint import contract_for, save_checkpoint

    torch.manual_seed(seed)
    model = create_model("lvt-test")
    with torch.no_grad():  # spread the classes so export's top-1 check is not a coin toss
        model.head[-1].weight.normal_(0, 1.0)
    save_checkpoint(path, model, contract_for(model.cfg))
    return path


@pytest.fixture
def no_export(monkeypatch):
    """Record onnx_from_checkpoint calls and stop there, so no test pays for an export."""
    calls = []

    def fake(checkpoint, workdir, **kw):
        calls.append((checkpoint, Path(workdir)))
        raise LvtEdgeError("stopped before exporting")

    monkeypatch.setattr("lvt_edge.export.onnx_from_checkpoint", fake)
    return calls


def test_dir_without_model_fails_and_writes_nothing(tmp_path, capsys, no_export):
    typo = tmp_path / "lvt-bundel"
    assert main(["build", str(typo)]) == 1
    err = capsys.readouterr().err
    assert f"no model.onnx in {typo}: export one with `lvt-edge export CKPT -o {typo}`" in err
    assert f"`lvt-edge build {typo} --checkpoint CKPT`" in err and "`lvt-edge build` alone uses the bundled demo" in err
    assert "Traceback" not in err and no_export == []
    assert not typo.exists()
    # naming the default folder is naming a folder: only a bare `lvt-edge build` exports the demo
    assert main(["build", str(tmp_path / B.DEFAULT_WORKDIR)]) == 1 and no_export == []


def test_no_dir_exports_the_demo_model_into_the_default_folder(tmp_path, monkeypatch, capsys, no_export):
    monkeypatch.chdir(tmp_path)
    assert main(["build", *FP32_ONLY]) == 1
    assert "stopped before exporting" in capsys.readouterr().err
    assert no_export == [(None, Path(B.DEFAULT_WORKDIR))]
    assert not (tmp_path / B.DEFAULT_WORKDIR).exists()  # the failed run's empty folder is gone


def test_checkpoint_exports_then_builds_and_reuses_only_the_same_source(tmp_path, capsys, monkeypatch):
    ckpt = _checkpoint(tmp_path / "ckpts" / "mine", seed=0)
    work = tmp_path / "work"
    assert main(["build", str(work), "--checkpoint", str(ckpt), *FP32_ONLY]) == 0
    data = json.loads((work / B.BUNDLE_JSON).read_text())
    assert data["source"]["checkpoint"] == "mine.safetensors"
    assert data["source"]["sha256"] == sha256_file(ckpt.with_suffix(".safetensors"))
    assert "fp32" in capsys.readouterr().out
    onnx_sha = sha256_file(work / "model.onnx")

    def must_not_export(*a, **k):
        raise AssertionError("re-exported a model.onnx that came from the same checkpoint")

    monkeypatch.setattr("lvt_edge.export.onnx_from_checkpoint", must_not_export)
    assert main(["build", str(work), "--checkpoint", str(ckpt) + ".json", *FP32_ONLY]) == 0

    other = _checkpoint(tmp_path / "ckpts" / "other", seed=1)
    capsys.readouterr()
    assert main(["build", str(work), "--checkpoint", str(other), *FP32_ONLY]) == 1
    err = capsys.readouterr().err
    assert f"{work} already holds model.onnx exported from mine.safetensors, not from {other}" in err
    assert f"`lvt-edge export {other} -o {work}`" in err and f"`lvt-edge build NEWDIR --checkpoint {other}`" in err
    assert sha256_file(work / "model.onnx") == onnx_sha


def test_checkpoint_that_is_missing_or_fails_leaves_no_folder(tmp_path, capsys, no_export):
    assert main(["build", str(tmp_path / "a"), "--checkpoint", str(tmp_path / "nope")]) == 1
    assert "checkpoint " in capsys.readouterr().err and not (tmp_path / "a").exists()
    ckpt = tmp_path / "c.safetensors"
    ckpt.write_bytes(b"x")
    assert main(["build", str(tmp_path / "b" / "c"), "--checkpoint", str(ckpt), *FP32_ONLY]) == 1
    assert no_export == [(str(ckpt), tmp_path / "b" / "c")]
    assert not (tmp_path / "b").exists()


def test_other_verbs_keep_their_default_folder():
    from lvt_edge.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["report", "--eval", "clips"]).workdir == B.DEFAULT_WORKDIR
    assert parser.parse_args(["bench"]).workdir == B.DEFAULT_WORKDIR
    assert parser.parse_args(["build"]).workdir is None


def test_summary_says_when_the_model_is_untrained():
    data = {"variants": {}, "source": {"random_init": True, "model": "lvt-small", "seed": 3}}
    assert "untrained: lvt-small with random weights (seed 3)" in summary_table(data)
    assert "untrained" not in summary_table({"variants": {}, "source": {"checkpoint": "x", "sha256": "0"}})
