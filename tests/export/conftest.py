"""Checkpoints and exported bundles shared by the export tests (built once per session)."""

from __future__ import annotations

import pytest


def make_checkpoint(path, name="lvt-test", seed=0, labels=None, **overrides):
    import torch

    from lvt_edge.model import create_model
    from lvt_edge.model.checkpoint import contract_for, save_checkpoint

    torch.manual_seed(seed)
    if labels is not None:
        overrides["num_classes"] = len(labels)
    model = create_model(name, **overrides)
    # random-init gates sit near 0.5 and all classes near-tie; spread the logits so top-1 is meaningful
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 1.0)
    save_checkpoint(path, model, contract_for(model.cfg, labels))
    return path


@pytest.fixture(scope="session")
def checkpoint_factory():
    """`make_checkpoint(path, name="lvt-test", seed=0, labels=None, **overrides)`."""
    return make_checkpoint


@pytest.fixture(scope="session")
def test_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "lvt-test")


@pytest.fixture(scope="session")
def fused_bundle(tmp_path_factory, test_ckpt):
    from lvt_edge.export import onnx_from_checkpoint

    out = tmp_path_factory.mktemp("fused")
    onnx_from_checkpoint(test_ckpt, out)
    return out
