"""The resumable training state (`last.pt`): plain tensors and dicts, loaded with weights_only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path
from lvt_edge.model.checkpoint import torch_load_untrusted

STATE_FORMAT = "lvt_edge.train_state"
STATE_VERSION = 1


def save_state(path: str | os.PathLike, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               gen: torch.Generator, info: dict[str, Any]) -> Path:
    """Write model, optimizer and RNG state plus `info` (config, contract, epoch, step, history,
    options: JSON-like values only) atomically."""
    path = Path(path)
    state = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "rng": gen.get_state(),
        "info": info,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state written by save_state (no pickled code is executed)."""
    path = Path(path)
    if not path.is_file():
        raise LvtEdgeError(f"training state {path} not found; resume from the `last.pt` in a training output folder")
    state = torch_load_untrusted(path, "training state")
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise LvtEdgeError(f"{path} is not an lvt-edge training state; resume from the `last.pt` written by `lvt-edge train`")
    if state.get("format_version", 0) > STATE_VERSION:
        raise LvtEdgeError(f"{path} was written by a newer lvt_edge; upgrade to resume from it")
    return state
