"""`lvt-edge export --model NAME --random-init`: untrained, seeded, verified, recorded as such;
the errors around --model; failed exports leave no folder; bare `export` is still the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from lvt_edge.bundle import read_bundle  # noqa: E402
from lvt_edge.cli import main  # noqa: E402
from lvt_edge.data import synth  # noqa: E402
from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.export.pipeline import random_init_checkpoint  # noqa: E402


def test_cli_exports_an_untrained_model_and_records_it(tmp_path, capsys):
    out = tmp_path / "rand"
    assert main(["export", "--model", "lvt-test", "--random-init", "--seed", "3", "--num-classes", "4",
                 "-o", str(out), "--simplifier", "none"]) == 0
    assert "untrained: lvt-test with random weights (seed 3)" in capsys.readouterr().out
    b = read_bundle(out)
    assert b["source"] == {"random_init": True, "model": "lvt-test", "seed": 3}
    assert b["contract"]["labels"] == ["class_0", "class_1", "class_2", "class_3"]
    assert b["contract"]["frame_interval"] == pytest.approx(2 / 15)
    assert b["model_config"]["name"] == "lvt-test" and b["model_config"]["num_classes"] == 4
    assert b["export"]["verification"]["passed"] and b["export"]["ffla_nodes"] == 4
    meta = {p.key: p.value for p in __import__("onnx").load(out / "model.onnx").metadata_props}
    assert json.loads(meta["lvt_edge.contract"])["frame_interval"] == pytest.approx(2 / 15)


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    x = torch.rand(2, 3, 4, 56, 56) * 2 - 1
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = random_init_checkpoint("lvt-test")
    assert torch.equal(torch.rand(1), expected_next)
    b, c = random_init_checkpoint("lvt-test", seed=0), random_init_checkpoint("lvt-test", seed=1)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x)) and not torch.equal(a.model(x), c.model(x))
    assert a.contract.labels == synth.LABELS and a.config.num_classes == len(synth.LABELS)
    assert a.extra["random_init"] == {"random_init": True, "model": "lvt-test", "seed": 0}
    assert not a.model.training


@pytest.mark.parametrize("args, match", [
    (["--model", "lvt-small"], "--model lvt-small needs weights: add --random-init"),
    (["lvt-small"], "lvt-small is a model config, not a checkpoint file: export it untrained with "
                    "`lvt-edge export --model lvt-small --random-init`"),
    (["--random-init"], "--random-init needs the config to build: add --model NAME"),
    (["--model", "lvt-huge", "--random-init"], "unknown model 'lvt-huge'; choose one of lvt-base"),
    (["ckpt", "--model", "lvt-test", "--random-init"], "drop one of them"),
    (["--seed", "2"], "--seed only applies with --random-init"),
    (["--model", "lvt-test", "--random-init", "--num-classes", "0"], "--num-classes must be a whole number >= 1"),
    (["--model", "lvt-test", "--random-init", "--seed", "-1"], "--seed must be a whole number >= 0"),
    (["x.safetensors", "--model", "lvt-test"], "an lvt_edge checkpoint carries its own config, so drop --model"),
    (["nope/missing.json"], "not found"),
])
def test_bad_requests_fail_with_the_fix_and_leave_no_folder(tmp_path, capsys, args, match):
    out = tmp_path / "new" / "out"
    assert main(["export", *args, "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "new").exists()


def test_failed_export_keeps_a_folder_that_was_there(tmp_path):
    from lvt_edge.export import onnx_from_checkpoint

    (tmp_path / "keep").mkdir()
    with pytest.raises(LvtEdgeError):
        onnx_from_checkpoint(tmp_path / "missing", tmp_path / "keep")
    assert (tmp_path / "keep").is_dir()


def test_bare_export_is_still_the_demo_model(tmp_path, monkeypatch):
    calls = []

    def fake(checkpoint, workdir, **kw):
        calls.append((checkpoint, Path(workdir), kw.get("model")))
        raise LvtEdgeError("stopped before exporting")

    monkeypatch.setattr("lvt_edge.export.onnx_from_checkpoint", fake)
    monkeypatch.chdir(tmp_path)
    assert main(["export"]) == 1
    assert calls == [(None, Path("lvt-bundle"), None)]
