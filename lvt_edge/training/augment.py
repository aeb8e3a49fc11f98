"""Clip augmentation on uint8 batches, in torch. One random transform per clip, the same for all
of its frames, so motion (direction, rotation sense, zoom) is never changed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lvt_edge.contract import ClipContract


def to_input(frames: torch.Tensor, contract: ClipContract) -> torch.Tensor:
    """uint8 B x T x H x W x 3 -> float32 B x 3 x T x H x W normalised by the contract."""
    x = frames.permute(0, 4, 1, 2, 3).float().div_(255.0)
    return _normalise(x, contract)


def augment(frames: torch.Tensor, contract: ClipContract, gen: torch.Generator, *,
            hflip: bool = False, min_area: float = 0.6) -> torch.Tensor:
    """Random resized crop (area min_area..1, aspect 3/4..4/3), brightness/contrast jitter and,
    only when asked, horizontal flips (which turn "left" into "right": wrong for direction
    classes). uint8 B x T x H x W x 3 -> normalised float32 B x 3 x T x H x W."""
    b, t, h, w, _ = frames.shape
    x = frames.permute(0, 4, 1, 2, 3).float().div_(255.0)
    area = torch.empty(b).uniform_(min_area, 1.0, generator=gen)
    log_ratio = torch.empty(b).uniform_(-0.2877, 0.2877, generator=gen)  # log(3/4)..log(4/3)
    sx = (area * log_ratio.exp()).sqrt().clamp(max=1.0)
    sy = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sx)
    cy = (torch.rand(b, generator=gen) * 2 - 1) * (1 - sy)
    flip = torch.ones(b)
    if hflip:
        flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, cx
    theta[:, 1, 1], theta[:, 1, 2] = sy, cy
    flat = x.reshape(b, 3 * t, h, w)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    x = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False).reshape(b, 3, t, h, w)
    contrast = torch.empty(b, 1, 1, 1, 1).uniform_(0.8, 1.2, generator=gen)
    brightness = torch.empty(b, 1, 1, 1, 1).uniform_(-0.1, 0.1, generator=gen)
    x = ((x - 0.5) * contrast + 0.5 + brightness).clamp_(0.0, 1.0)
    return _normalise(x, contract)


def reverse_time(frames: torch.Tensor, labels: torch.Tensor, partner: torch.Tensor,
                 gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Play half of the clips that have a time-reversed partner class backwards and relabel them
    (a "left" clip played backwards is a "right" clip). `partner[i]` is the class index of
    class i reversed, or -1. A clip and its reverse hold the same frames, so this teaches order."""
    flip = (partner[labels] >= 0) & (torch.rand(len(labels), generator=gen) < 0.5)
    if flip.any():
        frames, labels = frames.clone(), labels.clone()
        frames[flip] = frames[flip].flip(1)
        labels[flip] = partner[labels[flip]]
    return frames, labels


def _normalise(x: torch.Tensor, contract: ClipContract) -> torch.Tensor:
    mean = torch.tensor(contract.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(contract.std).view(1, 3, 1, 1, 1)
    return (x - mean) / std
