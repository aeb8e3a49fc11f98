"""Skip hardware-marked tests cleanly where the hardware is absent."""

from __future__ import annotations

import pytest


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
