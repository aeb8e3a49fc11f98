"""Official checkpoints: names map, outputs match an official-structured model, loading is safe."""

from __future__ import annotations

import pickle

import pytest
import torch

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import create_model
from lvt_edge.model.checkpoint import load_checkpoint
from lvt_edge.model.official import to_official_state_dict

from official_style import OfficialStyleLVT


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.mark.parametrize("frames,slots", [(4, 4), (4, 2)])
def test_official_checkpoint_reproduces_the_official_structured_model(tmp_path, frames, slots):
    ref = OfficialStyleLVT(frames=frames, slots=slots).eval()
    _randomise(ref, seed=frames + slots)
    path = tmp_path / "official.pyth"
    torch.save({"epoch": 3, "model_state": {"module." + k: v for k, v in ref.state_dict().items()}}, path)

    ckpt = load_checkpoint(path, model="lvt-test")
    assert ckpt.extra["official"]["missing"] == [] and ckpt.extra["official"]["unexpected"] == []
    assert sorted(ckpt.extra["official"]["ignored"]) == ["new_fc.bias", "new_fc.weight"]
    assert ckpt.config.official_border
    clip = torch.randn(2, 3, frames, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(clip), ref(clip), rtol=1e-4, atol=1e-5)


def test_zero_border_mode_differs_from_official_behaviour(tmp_path):
    ref = OfficialStyleLVT().eval()
    _randomise(ref, seed=7)
    path = tmp_path / "official.pth"
    torch.save(ref.state_dict(), path)
    ours = load_checkpoint(path, model="lvt-test", official_border=False).model
    clip = torch.randn(1, 3, 4, 56, 56)
    with torch.no_grad():
        assert not torch.allclose(ours(clip), ref(clip), atol=1e-5)


def test_our_state_dict_under_official_names_round_trips(tmp_path):
    model = create_model("lvt-test").eval()
    _randomise(model, seed=3)
    path = tmp_path / "ours_as_official.pth"
    torch.save(to_official_state_dict(model), path)
    loaded = load_checkpoint(path, model="lvt-test", official_border=False).model
    clip = torch.randn(1, 3, 4, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip), model(clip))


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = OfficialStyleLVT().state_dict()
    del sd["base_model.blocks.1.attn.proj.weight"]
    sd["base_model.blocks.0.attn.orpe.theta"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(sd, path)
    with pytest.raises(LvtEdgeError, match=r"blocks\.1\.attn\.proj\.weight"):
        load_checkpoint(path, model="lvt-test")
    with pytest.raises(LvtEdgeError, match=r"unexpected base_model\.blocks\.0\.attn\.orpe\.theta"):
        load_checkpoint(path, model="lvt-test")
    ckpt = load_checkpoint(path, model="lvt-test", strict=False)
    assert "base_model.blocks.0.attn.orpe.theta" in ckpt.extra["official"]["unexpected"]
    assert "blocks.1.attn.proj.weight" in ckpt.extra["official"]["missing"]


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoints_that_pickle_code_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model_state": {"x": Evil()}}, f)
    with pytest.raises(LvtEdgeError, match="weights_only"):
        load_checkpoint(path, model="lvt-test")
