"""Fixtures shared by the stream tests: the demo model exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An fp32 bundle of the bundled demo model (exported and verified, ~10 s)."""
    from lvt_edge.export import onnx_from_checkpoint

    workdir = tmp_path_factory.mktemp("demo_bundle")
    onnx_from_checkpoint(None, workdir)
    return workdir
