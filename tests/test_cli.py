"""The command line: version, model listing, and errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from lvt_edge import __version__
from lvt_edge.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lvt_edge.cli", *args], capture_output=True, text=True, timeout=120)


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"lvt-edge {__version__}"


def test_models_lists_every_config_with_params_and_flops(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("lvt-")}
    assert set(rows) >= {"lvt-base", "lvt-small", "lvt-tiny", "lvt-test"}
    assert rows["lvt-base"][4] == "51.92"  # params (M) at 174 classes
    assert 250 < float(rows["lvt-base"][5]) < 260  # GMACs per 16 x 224^2 clip (paper: ~255)


def test_user_errors_print_one_line_and_exit_1():
    r = run_cli("models", "--num-classes", "0")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "error:" in r.stderr


def test_bare_finetune_starts_from_the_bundled_demo_model(monkeypatch, tmp_path):
    import lvt_edge.training as training
    from lvt_edge.demo import demo_checkpoint

    seen = {}

    def fake_train(data, val, out, opts, **kw):
        seen.update(kw)
        return training.TrainResult(tmp_path / "best", 0.5, tmp_path / "last.pt")

    monkeypatch.setattr(training, "train", fake_train)
    common = ["train", "--data", "d", "--val", "v", "--out", str(tmp_path)]
    assert main([*common, "--finetune"]) == 0 and seen["finetune"] == demo_checkpoint()
    assert main([*common, "--finetune", "runs/x/best"]) == 0 and seen["finetune"] == "runs/x/best"
    assert main(common) == 0 and seen["finetune"] is None
    assert main([*common, "--finetune", "demo-causal"]) == 0 and seen["finetune"] == demo_checkpoint("demo-causal")


def test_bundled_model_names_resolve_unless_a_file_has_that_name(monkeypatch, tmp_path):
    from lvt_edge.demo import DEMOS, demo_checkpoint, resolve_checkpoint
    from lvt_edge.errors import LvtEdgeError

    monkeypatch.chdir(tmp_path)
    for name in DEMOS:
        stem = demo_checkpoint(name)
        assert stem.with_name(stem.name + ".safetensors").is_file() and stem.with_name(stem.name + ".json").is_file()
        assert resolve_checkpoint(name) == stem
    assert demo_checkpoint("demo-causal") != demo_checkpoint()
    assert resolve_checkpoint("runs/x/best") == "runs/x/best"
    (tmp_path / "demo-causal.safetensors").write_bytes(b"")  # the user's own checkpoint of that name wins
    assert resolve_checkpoint("demo-causal") == "demo-causal"
    with pytest.raises(LvtEdgeError, match="demo-causal"):
        demo_checkpoint("demo-casual")
