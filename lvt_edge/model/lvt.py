"""The LVT network (DESIGN.md section 2), on tokens laid out B x T x S x C throughout.

With `cfg.causal` the same modules make the streaming variant (`lvt_edge.model.causal`):
`LVT.forward_stream` runs a clip that continues a carried state and returns one prediction per
frame and the next state; `forward` is then the prediction at the clip's last frame.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from lvt_edge.model.causal import (
    causal_temporal_shift, horizon_attention, horizon_pool, spatial_shift_gather, state_spec,
)
from lvt_edge.model.config import LVTConfig
from lvt_edge.model.ffla import ffla, gated_features, softmax_attention


class PatchEmbed(nn.Module):
    """Per-frame overlapping patch embedding: Conv2d(3, C, 16, stride 14, pad 8) + LayerNorm."""

    def __init__(self, cfg: LVTConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, cfg.patch_stride, cfg.patch_size // 2)
        self.norm = nn.LayerNorm(cfg.embed_dim)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = clip.shape
        x = self.proj(clip.transpose(1, 2).reshape(b * t, 3, h, w))
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x.reshape(b, t, x.shape[1], x.shape[2]))


class Attention(nn.Module):
    """One attention module: qkv projection -> the attention op -> output projection.

    `axis` "temporal" attends over the frames of each location, "spatial" over the tokens
    of each frame. Parameter names follow the official code (qkv, proj, pgate / q_gate, k_gate).
    """

    # lvt_edge.export sets this to a function with ffla's signature that emits the fused ONNX
    # node; it takes effect only inside torch.onnx.export (export is a mode, not a fork).
    onnx_op = None

    def __init__(self, cfg: LVTConfig, axis: str):
        super().__init__()
        self.cfg, self.axis = cfg, axis
        c, d = cfg.embed_dim, cfg.head_dim
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        if cfg.uses_gate:
            if cfg.gate == "shared":
                self.pgate = nn.Linear(3 * d, d)
            else:
                self.q_gate = nn.Linear(3 * d, d)
                self.k_gate = nn.Linear(3 * d, d)

    def gate_params(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Gate weights stacked as n_gates x d x 3d and n_gates x d (None without a gate)."""
        if not self.cfg.uses_gate:
            return None, None
        gates = [self.pgate] if self.cfg.gate == "shared" else [self.q_gate, self.k_gate]
        return torch.stack([g.weight for g in gates]), torch.stack([g.bias for g in gates])

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, shift: bool | None = None) -> torch.Tensor:
        cfg = self.cfg
        if cfg.attention == "softmax":
            return softmax_attention(q, k, v, heads=cfg.num_heads, axis=self.axis)
        gw, gb = self.gate_params()
        op = self.onnx_op if self.onnx_op is not None and torch.onnx.is_in_onnx_export() else ffla
        return op(
            q, k, v, gw, gb, heads=cfg.num_heads, axis=self.axis, grid=cfg.grid,
            shift=cfg.uses_shift if shift is None else shift, shift_div=cfg.shift_div,
            gate=cfg.gate if cfg.uses_gate else "none",
            official_border=cfg.official_border, eps=cfg.eps,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(self.attend(q, k, v))

    def forward_causal(
        self, x: torch.Tensor, past: Sequence[torch.Tensor] | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The causal form on a clip that continues `past` (None: nothing before it).

        Temporal: past is [keys, values] of the horizon. Spatial: [shift_k, shift_v] for the
        causal temporal shift, done here so the op itself (fused node on export) runs unshifted.
        """
        cfg = self.cfg
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.axis == "spatial":
            if not cfg.uses_shift:
                return self.proj(self.attend(q, k, v, shift=False)), []
            pk, pv = past if past is not None else (None, None)
            k, pk = causal_temporal_shift(k, cfg.shift_div, pk)
            v, pv = causal_temporal_shift(v, cfg.shift_div, pv)
            return self.proj(self.attend(q, k, v, shift=False)), [pk, pv]
        if cfg.uses_shift:
            k, v = spatial_shift_gather(k, cfg.grid), spatial_shift_gather(v, cfg.grid)
        gw, gb = self.gate_params()
        fq, fk, v = gated_features(q, k, v, gw, gb, heads=cfg.num_heads, gate=cfg.gate if cfg.uses_gate else "none")
        pk, pv = past if past is not None else (None, None)
        out, pk, pv = horizon_attention(fq, fk, v, horizon=cfg.time_horizon, eps=cfg.eps, past_k=pk, past_v=pv)
        return self.proj(out), [pk, pv]


class Mlp(nn.Module):
    """Linear(C, 4C) -> depthwise 3x3 conv on the token grid -> GELU -> Linear(4C, C)."""

    def __init__(self, cfg: LVTConfig):
        super().__init__()
        hidden = int(cfg.embed_dim * cfg.mlp_ratio)
        self.grid = cfg.grid
        self.fc1 = nn.Linear(cfg.embed_dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, s, _ = x.shape
        h = self.fc1(x)
        c = h.shape[-1]
        h = h.reshape(b * t, self.grid, self.grid, c).permute(0, 3, 1, 2)
        h = self.dwconv(h).permute(0, 2, 3, 1).reshape(b, t, s, c)
        return self.fc2(self.act(h))


class Block(nn.Module):
    """Temporal attention -> spatial attention -> MLP, each pre-norm with a residual."""

    def __init__(self, cfg: LVTConfig):
        super().__init__()
        self.temporal_norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.temporal_attn = Attention(cfg, "temporal")
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.attn = Attention(cfg, "spatial")
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.mlp = Mlp(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.temporal_attn(self.temporal_norm1(x))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward_causal(
        self, x: torch.Tensor, past: Sequence[torch.Tensor] | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Causal block on a clip continuing `past` ([keys, values(, shift_k, shift_v)] or None)."""
        tpast, spast = (past[:2], past[2:] or None) if past is not None else (None, None)
        y, tnext = self.temporal_attn.forward_causal(self.temporal_norm1(x), tpast)
        x = x + y
        y, snext = self.attn.forward_causal(self.norm1(x), spast)
        x = x + y
        return x + self.mlp(self.norm2(x)), tnext + snext


class LVT(nn.Module):
    """Linear Video Transformer with feature fixation: B x 3 x T x H x W clip -> B x classes logits."""

    def __init__(self, cfg: LVTConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        # a causal model has no absolute frame slots: it runs on clips of any length and streams
        self.temporal_embed = None if cfg.causal else nn.Parameter(torch.zeros(cfg.frames, c))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.head = nn.Sequential(  # indices match the official consensus.mlp_head
            nn.LayerNorm(c),
            nn.Linear(c, cfg.head_hidden),
            nn.GELU(),
            nn.Dropout(cfg.drop_rate),
            nn.Linear(cfg.head_hidden, cfg.num_classes),
        )
        self.apply(_init_weights)

    def forward_features(self, clip: torch.Tensor) -> torch.Tensor:
        """Clip -> B x T x S x C tokens after the last block and the final norm."""
        if self.cfg.causal:
            return self._causal_features(clip, None)[0]
        x = self.patch_embed(clip)
        if x.shape[1] != self.cfg.frames:
            raise ValueError(f"clip has {x.shape[1]} frames, the model takes {self.cfg.frames}")
        x = x + self.temporal_embed[None, :, None, :]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """B x classes logits; a causal model's are those of the clip's last frame."""
        if self.cfg.causal:
            return self.forward_stream(clip, last_only=True)[0][:, -1]
        return self.head(self.forward_features(clip).mean(dim=(1, 2)))

    def forward_stream(
        self, clip: torch.Tensor, state: Sequence[torch.Tensor] | None = None, *, last_only: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Causal models: a clip (B x 3 x T x H x W, any T >= 1) that continues `state` -> logits
        of every frame (B x T x classes; B x 1 x classes for the last frame with `last_only`) and
        the next state, laid out as `lvt_edge.model.causal.state_spec(cfg)`. `state` None: the
        clip starts the stream (the state is zeros)."""
        feats, blocks_next = self._causal_features(clip, state)
        pooled, pooled_next = horizon_pool(feats.mean(dim=2), self.cfg.time_horizon,
                                           None if state is None else state[-1], last_only=last_only)
        return self.head(pooled), [*blocks_next, pooled_next]

    def _causal_features(
        self, clip: torch.Tensor, state: Sequence[torch.Tensor] | None,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Tokens after the final norm and the blocks' next state."""
        if not self.cfg.causal:
            raise ValueError(f"{self.cfg.name} is not causal: stream it with a causal config")
        n_state = len(state_spec(self.cfg))
        if state is not None and len(state) != n_state:
            raise ValueError(f"state has {len(state)} tensors, {self.cfg.name} carries {n_state} "
                             "(lvt_edge.model.causal.state_spec)")
        per_block = (n_state - 1) // self.cfg.depth
        x = self.patch_embed(clip)
        nxt: list[torch.Tensor] = []
        for i, blk in enumerate(self.blocks):
            x, out = blk.forward_causal(x, None if state is None else state[i * per_block : (i + 1) * per_block])
            nxt += out
        return self.norm(x), nxt


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
