"""Skip hardware-marked tests cleanly where the hardware is absent."""

from __future__ import annotations

import importlib.util

import pytest


def _has_tensorrt() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt  # noqa: F401
    except Exception:  # the bindings wheel installs without its libraries
        return False
    return True


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
    checks = {"tensorrt": (_has_tensorrt, "TensorRT is not importable here"),
              "gpu": (_has_cuda, "no CUDA GPU here")}
    found: dict[str, bool] = {}
    for item in items:
        for marker, (probe, why) in checks.items():
            if marker in item.keywords:
                if marker not in found:
                    found[marker] = probe()
                if not found[marker]:
                    item.add_marker(pytest.mark.skip(reason=why))
