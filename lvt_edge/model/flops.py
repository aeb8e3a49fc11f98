"""Parameter and FLOP counts, measured by running the model under PyTorch's FLOP counter."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from lvt_edge.model.config import LVTConfig
from lvt_edge.model.lvt import LVT


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(cfg: LVTConfig, batch: int = 1) -> int:
    """FLOPs (2 per multiply-add, matmuls and convolutions) of one forward pass of `batch` clips.

    Runs on the meta device: shapes only, no arithmetic, so even lvt-base counts in a second.
    """
    with torch.device("meta"):
        model = LVT(cfg).eval()
        clip = torch.empty(batch, 3, cfg.frames, cfg.img_size, cfg.img_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(clip)
    return counter.get_total_flops()
