"""Skip hardware-marked tests cleanly where the hardware is absent; fixtures several test folders share."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRT_FAKES = "lvt_edge_tests_trt_fakes"


def _register_trt_fakes() -> None:
    """tests/runtime/test_trt_fakes.py, loaded once as the module `lvt_edge_tests_trt_fakes`, so
    every TensorRT test file imports the same fakes (`import lvt_edge_tests_trt_fakes as F`);
    pytest's importlib import mode gives test files no imports of each other."""
    if TRT_FAKES not in sys.modules:
        spec = importlib.util.spec_from_file_location(TRT_FAKES, ROOT / "tests" / "runtime" / "test_trt_fakes.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[TRT_FAKES] = mod
        spec.loader.exec_module(mod)


_register_trt_fakes()
BLOCK_TORCH = textwrap.dedent("""
    import sys
    class _NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")
            return None
    sys.meta_path.insert(0, _NoTorch())
""")


def _has_cuda() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            return True
    except ImportError:
        pass
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from lvt_edge.runtime import tensorrt_importable

    checks = {"tensorrt": (tensorrt_importable, "TensorRT is not importable here"),
              "gpu": (_has_cuda, "no CUDA GPU here")}
    found: dict[str, bool] = {}
    for item in items:
        for marker, (probe, why) in checks.items():
            if marker in item.keywords:
                if marker not in found:
                    found[marker] = probe()
                if not found[marker]:
                    item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def causal_bundle(tmp_path_factory):
    """(folder, PyTorch model) of an exported causal lvt-test (model.onnx + model.step.onnx) with
    spread logits, made once per session: copy the folder before changing anything in it."""
    import torch

    from lvt_edge.export import onnx_from_checkpoint
    from lvt_edge.model import create_model
    from lvt_edge.model.checkpoint import contract_for, save_checkpoint

    torch.manual_seed(0)
    model = create_model("lvt-test", causal=True).eval()
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 2.0)
    root = tmp_path_factory.mktemp("causal")
    ckpt = save_checkpoint(root / "ckpt", model, contract_for(model.cfg).replace(frame_interval=0.1))
    onnx_from_checkpoint(ckpt, root / "bundle", log=lambda msg: None)
    return root / "bundle", model


def _run_without_torch(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def without_torch():
    """run(code) -> CompletedProcess: `code` in a fresh interpreter where importing torch fails
    (the runtime must work on a Jetson without it: DESIGN.md 3.4)."""
    return _run_without_torch
