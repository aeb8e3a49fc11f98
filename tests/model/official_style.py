"""An official-structured LVT for tests: the official code's module names, its (b t) x n x c
layout, its slot-reusing temporal embedding and its zero-tensor slice-assignment shifts, written
from the architecture's description (DESIGN.md section 2), not copied. It is a second,
independent implementation to check our loader and our op against."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def tshift(x: torch.Tensor, frames: int, div: int) -> torch.Tensor:
    """x: (b t) x heads x n x e; channel index head * e + e'."""
    bt, h, n, e = x.shape
    y = x.view(bt // frames, frames, h, n, e).permute(0, 1, 2, 4, 3).reshape(bt // frames, frames, h * e, n)
    f = h * e // div
    out = torch.zeros_like(y)
    out[:, :-1, :f] = y[:, 1:, :f]
    out[:, 1:, f : 2 * f] = y[:, :-1, f : 2 * f]
    out[:, :, 2 * f :] = y[:, :, 2 * f :]
    return out.view(bt // frames, frames, h, e, n).permute(0, 1, 2, 4, 3).reshape(bt, h, n, e)


def sshift(x: torch.Tensor, cells: int) -> torch.Tensor:
    """x: (b s) x heads x t x e; 8-neighbour shift, diagonals keep their border values."""
    bs, h, t, e = x.shape
    g = int(round(cells**0.5))
    y = x.view(bs // cells, cells, h, t, e).permute(0, 1, 2, 4, 3).reshape(bs // cells, g, g, h * e, t)
    f = h * e // 16
    out = torch.zeros_like(y)
    out[:, :-1, :, :f] = y[:, 1:, :, :f]
    out[:, 1:, :, f : 2 * f] = y[:, :-1, :, f : 2 * f]
    out[:, :, :-1, 2 * f : 3 * f] = y[:, :, 1:, 2 * f : 3 * f]
    out[:, :, 1:, 3 * f : 4 * f] = y[:, :, :-1, 3 * f : 4 * f]
    out[:, :, :, 4 * f :] = y[:, :, :, 4 * f :]
    out[:, 1:, 1:, 4 * f : 5 * f] = y[:, :-1, :-1, 4 * f : 5 * f]
    out[:, :-1, :-1, 5 * f : 6 * f] = y[:, 1:, 1:, 5 * f : 6 * f]
    out[:, 1:, :-1, 6 * f : 7 * f] = y[:, :-1, 1:, 6 * f : 7 * f]
    out[:, :-1, 1:, 7 * f : 8 * f] = y[:, 1:, :-1, 7 * f : 8 * f]
    return out.reshape(bs // cells, cells, h, e, t).permute(0, 1, 2, 4, 3).reshape(bs, h, t, e)


class Attn(nn.Module):
    def __init__(self, dim, heads, kind, frames, cells, div):
        super().__init__()
        self.heads, self.kind, self.frames, self.cells, self.div = heads, kind, frames, cells, div
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.pgate = nn.Linear(3 * dim // heads, dim // heads)

    def forward(self, x):
        b, n, c = x.shape
        e = c // self.heads
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, e).permute(2, 0, 3, 1, 4)  # b h n e
        if self.kind == "spatial":
            k, v = tshift(k, self.frames, self.div), tshift(v, self.frames, self.div)
        else:
            k, v = sshift(k, self.cells), sshift(v, self.cells)
        q_, k_ = F.relu(q) + e**-0.5, F.relu(k) + e**-0.5
        gate = torch.sigmoid(self.pgate(torch.cat([q_, k_, v], -1)))
        q_, k_ = gate * q_, gate * k_
        kv = k_.transpose(-1, -2) @ v
        z = 1.0 / ((q_ * k_.sum(dim=2, keepdim=True)).sum(-1) + 1e-6)
        out = (q_ @ kv) * z.unsqueeze(-1)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class DW(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)


class MLP(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.dwconv, self.fc2 = nn.Linear(dim, hidden), DW(hidden), nn.Linear(hidden, dim)

    def forward(self, x, g):
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dwconv.dwconv(x.transpose(1, 2).reshape(b, c, g, g)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class Blk(nn.Module):
    def __init__(self, dim, heads, frames, cells, div):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attn(dim, heads, "spatial", frames, cells, div)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.temporal_attn = Attn(dim, heads, "temporal", frames, cells, div)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, 4 * dim)
        self.frames, self.cells = frames, cells

    def forward(self, x):  # x: (b t) x s x c
        t, s = self.frames, self.cells
        bt, _, c = x.shape
        b = bt // t
        xt = x.view(b, t, s, c).transpose(1, 2).reshape(b * s, t, c)
        xt = xt + self.temporal_attn(self.temporal_norm1(xt))
        xs = xt.view(b, s, t, c).transpose(1, 2).reshape(bt, s, c)
        xs = xs + self.attn(self.norm1(xs))
        return xs + self.mlp(self.norm2(xs), int(round(s**0.5)))


class Base(nn.Module):
    def __init__(self, dim, heads, depth, frames, slots, cells, div):
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, 16, 14, 8)
        self.patch_embed.norm = nn.LayerNorm(dim)
        self.temp_embed = nn.Parameter(torch.randn(1, slots, 1, dim) * 0.1)
        self.blocks = nn.ModuleList(Blk(dim, heads, frames, cells, div) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.slots = slots


class OfficialStyleLVT(nn.Module):
    """`dropout` > 0 gives the unused `new_fc` classifier, 0 an unused `base_model.head` instead
    (the official XVIT replaces the backbone's head by Dropout or by a Linear of that shape)."""

    def __init__(self, dim=32, heads=2, depth=2, frames=4, slots=4, grid=5, hidden=32, classes=5, div=4, dropout=0.5):
        super().__init__()
        self.frames = frames
        self.base_model = Base(dim, heads, depth, frames, slots, grid * grid, div)
        if dropout > 0:
            self.new_fc = nn.Linear(dim, classes)  # present in official checkpoints, unused
        else:
            self.base_model.head = nn.Linear(dim, classes)  # likewise unused
        self.consensus = nn.Module()
        self.consensus.mlp_head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, classes))

    def forward(self, clip):  # B x 3 x T x H x W
        b, _, t, h, w = clip.shape
        m = self.base_model
        x = m.patch_embed.proj(clip.transpose(1, 2).reshape(b * t, 3, h, w)).flatten(2).transpose(1, 2)
        x = m.patch_embed.norm(x)
        x = (x.view(-1, m.slots, x.shape[1], x.shape[2]) + m.temp_embed).view(b * t, x.shape[1], x.shape[2])
        for blk in m.blocks:
            x = blk(x)
        x = m.norm(x).mean(dim=1).view(b, t, -1).mean(dim=1)
        return self.consensus.mlp_head(x)


def training_cfg(*, classes=5, frames=4, crop=56, hidden=32, **xvit) -> dict:
    """The keys of an official training config (slowfast's `cfg`, SSv2 recipe) that decide the
    network, scaled to the test model; `xvit` changes XVIT.* entries, e.g. NUM_SEGMENTS=2.
    The official training script stores this dumped as YAML under the checkpoint's "cfg"."""
    grid = (crop + 2 * 8 - 16) // 14 + 1
    return {
        "TRAIN": {"ENABLE": False, "DATASET": "ssv2"},
        "TEST": {"ENABLE": True, "DATASET": "ssv2"},
        "DATA": {"NUM_FRAMES": frames, "TRAIN_CROP_SIZE": crop, "TEST_CROP_SIZE": crop,
                 "MEAN": [0.5, 0.5, 0.5], "STD": [0.5, 0.5, 0.5]},
        "TEMPORAL_HEAD": {"HIDDEN_DIM": 32, "MLP_DIM": hidden},
        "XVIT": {"BASE_MODEL": "lvit_v2_base_patch16_224_in21k_finetune1k", "CONSENSUS_TYPE": "vit",
                 "USE_XVIT": True, "USE_SpatialShift": True, "SHIFT_DIV": 4, "SHIFT_SIZE": 1,
                 "NUM_SEGMENTS": frames, "SPATIAL_SIZE": grid * grid, "LOCATIONS_LIST": list(range(15)),
                 "BACKBONE": {"NORM_LAYER": "LN", "DROP_PATH_RATE": 0.0}, **xvit},
        "MODEL": {"NUM_CLASSES": classes, "ARCH": "xvit", "MODEL_NAME": "XVIT", "DROPOUT_RATE": 0.5},
        "ATTENTION_TYPE": "divided_time_space", "USE_3D": False, "USE_CGATE": True, "SHARE_GATE": True,
        "USE_MOTION": False, "LINEAR_TYPE": "relu",
    }
