"""LVT configurations: variants are data, registered by name (timm's convention)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from lvt_edge.errors import LvtEdgeError

ATTENTIONS = ("ffla", "linear", "softmax")
_CAUSAL_FIELDS = ("causal", "horizon")


@dataclass(frozen=True)
class LVTConfig:
    """Everything that fixes the network's shape and arithmetic (DESIGN.md section 2).

    attention: "ffla" (feature fixation + neighbourhood shifts), "linear" (no gate, no shift)
               or "softmax" (the same network with softmax attention).
    gate:      "shared" (one W_g for q and k) or "separate" (q_gate and k_gate).
    shift_div: the temporal shift moves 2 * C / shift_div channels.
    official_border: reproduce the official diagonal-shift border behaviour (compatibility
               with official checkpoints only; our own models use zeros).
    causal:    the streaming variant (lvt_edge.model.causal): each frame's temporal attention
               sees itself and the horizon - 1 frames before it, the temporal shift takes frames
               t-2 and t-1, the head pools the last `horizon` frames, and there is no temporal
               embedding, so the model runs on clips of any length and frame by frame
               (lvt_edge.model.step). `frames` stays the training clip length.
    horizon:   frames a causal model looks back over, itself included (None: `frames`).
    """

    name: str = "custom"
    embed_dim: int = 512
    num_heads: int = 8
    depth: int = 12
    frames: int = 16
    img_size: int = 224
    patch_size: int = 16
    patch_stride: int = 14
    mlp_ratio: float = 4.0
    head_hidden: int = 768
    num_classes: int = 174
    attention: str = "ffla"
    gate: str = "shared"
    shift_div: int = 4
    neighbour: bool = True
    official_border: bool = False
    drop_rate: float = 0.5
    eps: float = 1e-6
    causal: bool = False
    horizon: int | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.attention not in ATTENTIONS:
            problems.append(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.gate not in ("shared", "separate"):
            problems.append(f"gate must be 'shared' or 'separate', got {self.gate!r}")
        if self.num_heads < 1 or self.patch_size < 1 or self.patch_stride < 1:
            problems.append("num_heads, patch_size and patch_stride must be >= 1")
        elif self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.shift_div not in (4, 8):
            problems.append(f"shift_div must be 4 or 8, got {self.shift_div}")
        if self.embed_dim < 16:
            problems.append("embed_dim must be >= 16 (the spatial shift moves C/16 channels per direction)")
        if self.num_classes < 1 or self.depth < 1 or self.frames < 1:
            problems.append("num_classes, depth and frames must be >= 1")
        if self.causal:
            if self.attention == "softmax":
                problems.append("a causal model needs attention 'ffla' or 'linear' (softmax has no streaming form here)")
            if self.official_border:
                problems.append("official_border is for official checkpoints, which are not causal")
            if self.horizon is not None and self.horizon < 2:
                problems.append(f"horizon must be >= 2 frames (got {self.horizon})")
        elif self.horizon is not None:
            problems.append("horizon applies to causal models only (set causal=True)")
        if problems:
            raise LvtEdgeError("invalid LVT config: " + "; ".join(problems))

    @property
    def grid(self) -> int:
        """Side of the token grid: floor(H / stride) + 1 for the overlapping patch embedding."""
        return (self.img_size + 2 * (self.patch_size // 2) - self.patch_size) // self.patch_stride + 1

    @property
    def tokens_per_frame(self) -> int:
        return self.grid * self.grid

    @property
    def time_horizon(self) -> int:
        """Frames one output looks back over (causal models); the clip length otherwise."""
        return self.horizon if self.horizon is not None else self.frames

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def uses_gate(self) -> bool:
        return self.attention == "ffla"

    @property
    def uses_shift(self) -> bool:
        return self.attention == "ffla" and self.neighbour

    def replace(self, **changes: Any) -> "LVTConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.causal:  # window models keep the dict (and so the artifacts) they had before
            for k in _CAUSAL_FIELDS:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LVTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise LvtEdgeError(
                f"model config has unknown fields {sorted(unknown)}; upgrade lvt_edge to read it"
            )
        return cls(**d)


_REGISTRY: dict[str, Callable[[], LVTConfig]] = {}


def register_config(fn: Callable[[], LVTConfig]) -> Callable[[], LVTConfig]:
    """Register a config factory under the name of the config it returns."""
    name = fn().name
    if name in _REGISTRY:
        raise ValueError(f"config {name!r} registered twice")
    _REGISTRY[name] = fn
    return fn


def list_configs() -> list[str]:
    return list(_REGISTRY)


def get_config(name: str, **overrides: Any) -> LVTConfig:
    if name not in _REGISTRY:
        raise LvtEdgeError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)} (see `lvt-edge models`)")
    return _REGISTRY[name]().replace(**overrides)


@register_config
def lvt_base() -> LVTConfig:
    """The paper's model (SSv2 setting): C=512, 8 heads, depth 12, 16 x 224^2."""
    return LVTConfig(name="lvt-base")


@register_config
def lvt_small() -> LVTConfig:
    """An edge-sized model: a quarter of the base model's width x depth, 8 x 160^2."""
    return LVTConfig(name="lvt-small", embed_dim=256, num_heads=4, depth=8, frames=8, img_size=160, head_hidden=384)


@register_config
def lvt_tiny() -> LVTConfig:
    """Trains on a 2-core CPU in minutes; the bundled demo model."""
    return LVTConfig(
        name="lvt-tiny", embed_dim=64, num_heads=2, depth=3, frames=8, img_size=96,
        head_hidden=128, num_classes=10, drop_rate=0.1,
    )


@register_config
def lvt_tiny_causal() -> LVTConfig:
    """lvt-tiny made causal for streaming: one prediction per frame from a carried state."""
    return lvt_tiny().replace(name="lvt-tiny-causal", causal=True)


@register_config
def lvt_test() -> LVTConfig:
    """For unit tests only: as small as the architecture allows."""
    return LVTConfig(
        name="lvt-test", embed_dim=32, num_heads=2, depth=2, frames=4, img_size=56,
        head_hidden=32, num_classes=5, drop_rate=0.0,
    )
