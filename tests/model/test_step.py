"""The step model: frames fed one by one give the causal clip model's logits on the same history."""

from __future__ import annotations

import pytest
import torch

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import create_model
from lvt_edge.model.causal import state_spec
from lvt_edge.model.step import LVTStep

TOL = 1e-5  # max abs logit difference, PyTorch float32 (issue 15)


def spread(model, seed=0):
    """Random-init logits sit near zero and gates near 0.5; spread both so a mismatch shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        model.head[-1].weight.normal_(0, 3.0)
        for name, p in model.named_parameters():
            if "gate" in name:
                p.normal_(0, 0.5)
    return model.eval()


def stepped(step, clip):
    """Per-frame logits of B x 3 x N x H x W fed one frame at a time, from the zero state."""
    state = step.initial_state(clip.shape[0])
    out = []
    with torch.no_grad():
        for t in range(clip.shape[2]):
            logits, *state = step(clip[:, :, t], *state)
            out.append(logits)
    return torch.stack(out, 1), state


@pytest.mark.parametrize("name,overrides", [
    ("lvt-test", {"causal": True}),
    ("lvt-test", {"causal": True, "gate": "separate", "horizon": 3}),
    ("lvt-test", {"causal": True, "attention": "linear"}),
    ("lvt-test", {"causal": True, "shift_div": 8, "horizon": 2}),
    ("lvt-tiny-causal", {}),
])
def test_step_by_step_equals_the_causal_clip_model(name, overrides):
    model = spread(create_model(name, **overrides))
    cfg = model.cfg
    n = 2 * cfg.time_horizon + 3  # the ring wraps twice; the first frames leave every horizon
    clip = torch.rand(2, 3, n, cfg.img_size, cfg.img_size) * 2 - 1
    step = LVTStep(model)
    got, state = stepped(step, clip)
    with torch.no_grad():
        per_frame, clip_state = model.forward_stream(clip)
        prefixes = torch.stack([model(clip[:, :, : t + 1]) for t in range(n)], 1)
    assert per_frame.abs().max() > 1.0  # logits far enough from zero for the tolerance to mean something
    assert (got - per_frame).abs().max().item() <= TOL
    assert (got - prefixes).abs().max().item() <= TOL
    for a, b, spec in zip(state, clip_state, state_spec(cfg)):
        assert a.shape == (2, *spec.shape)
        assert (a - b).abs().max().item() <= TOL


def test_streams_in_a_batch_are_independent():
    model = spread(create_model("lvt-test", causal=True))
    step = LVTStep(model)
    clip = torch.randn(3, 3, 6, 56, 56)
    both, _ = stepped(step, clip)
    alone, _ = stepped(step, clip[1:2])
    assert (both[1:2] - alone).abs().max().item() <= TOL


def test_zero_state_is_no_history():
    model = spread(create_model("lvt-test", causal=True))
    step = LVTStep(model)
    frame = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        logits, *_ = step(frame, *step.initial_state(2))
        assert (logits - model(frame[:, :, None])).abs().max().item() <= TOL


def test_a_window_model_has_no_step():
    with pytest.raises(LvtEdgeError, match="not causal"):
        LVTStep(create_model("lvt-test"))


def test_a_wrong_state_is_refused():
    model = create_model("lvt-test", causal=True)
    step = LVTStep(model)
    with pytest.raises(ValueError, match="state has"):
        step(torch.zeros(1, 3, 56, 56), *step.initial_state(1)[:-1])
