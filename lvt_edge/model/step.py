"""The step model: one frame and the carried state in, that frame's logits and the next state out.

    step = LVTStep(model)                      # model: a causal LVT
    state = step.initial_state()               # zeros, shaped by state_spec(model.cfg)
    for frame in frames:                       # B x 3 x H x W each
        logits, *state = step(frame, *state)

Streaming state is explicit tensor I/O (TSM online, MoViNet stream buffers), so the same module
exports to ONNX with one input and one output per state tensor (`lvt_edge.export.step`). It runs
`LVT.forward_stream` on a one-frame clip: the step and the causal clip model are one code path,
and feeding frames one by one gives the clip model's per-frame logits on the same history.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model.causal import StateTensor, state_spec
from lvt_edge.model.lvt import LVT


class LVTStep(nn.Module):
    """`forward(frame, *state) -> (logits, *next_state)` for a causal LVT (shares its weights)."""

    def __init__(self, model: LVT) -> None:
        super().__init__()
        if not model.cfg.causal:
            raise LvtEdgeError(f"{model.cfg.name} is not causal, so it has no step form; stream a causal "
                               "model (e.g. lvt-tiny-causal, or any config with causal=True)")
        self.model = model
        self.cfg = model.cfg
        self.spec: tuple[StateTensor, ...] = state_spec(model.cfg)

    def initial_state(self, batch: int = 1, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
        """Zeros: the state before the first frame."""
        return [torch.zeros(batch, *t.shape, dtype=dtype) for t in self.spec]

    def forward(self, frame: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """frame B x 3 x H x W (normalised like a clip's frames) -> (logits B x classes, *next state)."""
        logits, nxt = self.model.forward_stream(frame.unsqueeze(2), list(state))
        return (logits[:, 0], *nxt)
