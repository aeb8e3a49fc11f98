"""The network: sizes, the temporal embedding, variants, and measured FLOP scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import create_model, get_config, list_configs
from lvt_edge.model.flops import count_flops, count_params
from lvt_edge.model.lvt import LVT


def test_lvt_base_matches_official_parameter_count():
    with torch.device("meta"):
        params = count_params(create_model("lvt-base", num_classes=174))
    assert abs(params - 51.9e6) / 51.9e6 < 0.01, params


def test_registry_has_the_named_configs():
    assert {"lvt-base", "lvt-small", "lvt-tiny", "lvt-test"} <= set(list_configs())
    base = get_config("lvt-base")
    assert (base.embed_dim, base.num_heads, base.depth, base.frames, base.img_size) == (512, 8, 12, 16, 224)
    assert base.grid == 17 and get_config("lvt-base", img_size=112).grid == 9


def test_unknown_model_names_the_choices():
    with pytest.raises(LvtEdgeError, match="lvt-tiny"):
        create_model("lvt-huge")


@pytest.mark.parametrize("frames", [4, 8, 16])
def test_temporal_embedding_has_one_slot_per_frame(frames):
    model = create_model("lvt-test", frames=frames)
    assert model.temporal_embed.shape == (frames, model.cfg.embed_dim)
    # every slot reaches the output: perturbing slot t changes the logits
    model.eval()
    clip = torch.randn(1, 3, frames, 56, 56)
    with torch.no_grad():
        base = model(clip)
        bump = torch.randn(model.cfg.embed_dim)  # not constant: LayerNorm would cancel that
        for t in range(frames):
            model.temporal_embed[t] += bump
            assert not torch.allclose(model(clip), base)
            model.temporal_embed[t] -= bump


@pytest.mark.parametrize("attention,gate", [("ffla", "shared"), ("ffla", "separate"), ("linear", "shared"), ("softmax", "shared")])
def test_variants_run_and_have_the_official_parameter_names(attention, gate):
    model = create_model("lvt-test", attention=attention, gate=gate).eval()
    names = set(model.state_dict())
    has_gate = {"shared": "blocks.0.attn.pgate.weight", "separate": "blocks.0.attn.q_gate.weight"}[gate]
    assert (has_gate in names) == (attention == "ffla")
    out = model(torch.randn(2, 3, 4, 56, 56))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


def test_neighbourhood_association_changes_the_output():
    torch.manual_seed(0)
    on = create_model("lvt-test").eval()
    off = LVT(on.cfg.replace(neighbour=False)).eval()
    off.load_state_dict(on.state_dict())
    clip = torch.randn(1, 3, 4, 56, 56)
    with torch.no_grad():
        assert not torch.allclose(on(clip), off(clip))


def test_wrong_frame_count_is_refused():
    with pytest.raises(ValueError, match="frames"):
        create_model("lvt-test")(torch.randn(1, 3, 3, 56, 56))


def _flops(attention: str, **kw) -> float:
    return float(count_flops(get_config("lvt-test", attention=attention, **kw)))


def _second_difference(xs, ys) -> float:
    """Relative departure from a straight line through three equally spaced points."""
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    assert x1 - x0 == x2 - x1
    return abs((y2 - y1) - (y1 - y0)) / abs(y2 - y0)


@pytest.mark.parametrize("attention", ["ffla", "linear"])
def test_linear_attention_flops_grow_linearly_in_frames_and_tokens(attention):
    frames = [4, 8, 12]
    assert _second_difference(frames, [_flops(attention, frames=t) for t in frames]) < 1e-9
    # image sizes 56, 112, 168 -> grids 5, 9, 13: tokens 25, 81, 169 (not evenly spaced), so
    # fit a line through three sizes and check the fit is exact
    sizes = [56, 112, 168, 224]
    tokens = [get_config("lvt-test", img_size=s).tokens_per_frame for s in sizes]
    flops = [_flops(attention, img_size=s) for s in sizes]
    slope, icpt = np.polyfit(tokens, flops, 1)
    assert max(abs(f - (slope * n + icpt)) / f for n, f in zip(tokens, flops)) < 1e-9


def test_softmax_attention_flops_grow_quadratically_in_tokens():
    sizes = [56, 112, 168, 224]
    tokens = np.array([get_config("lvt-test", img_size=s).tokens_per_frame for s in sizes], float)
    flops = np.array([_flops("softmax", img_size=s) for s in sizes])
    quad = np.polyfit(tokens, flops, 2)
    assert quad[0] > 0
    assert np.abs(np.polyval(quad, tokens) - flops).max() / flops.max() < 1e-9
    residual_of_line = np.abs(np.polyval(np.polyfit(tokens, flops, 1), tokens) - flops).max()
    assert residual_of_line / flops.max() > 1e-3  # a straight line does not fit
    # and softmax costs more than FFLA at the paper's grid
    assert _flops("softmax", img_size=224) > _flops("ffla", img_size=224)
