"""Feature-fixation linear attention (FFLA): the functional reference op.

Every other implementation (the ONNX function body, the TensorRT plugin's CUDA kernel) is
tested against `ffla` here. Tokens keep one layout everywhere: B x T x S x C with S = G * G
tokens per frame on a G x G grid and channel c = head * d + e.

The op covers everything between the q/k/v projection and the output projection:

    k~, v~ = shift(k), shift(v)                       neighbourhood association
    phi(x) = ReLU(x) + d**-0.5
    g      = sigmoid(W_g [phi(q); phi(k~); v~] + b_g)  per head, W_g: d x 3d shared by heads
    q', k' = g * phi(q), g * phi(k~)                   (separate gates: g_q, g_k)
    out_i  = q'_i (sum_j k'_j v~_j^T) / (q'_i . sum_j k'_j + eps)

where i, j run over the T frames of one spatial location (axis "temporal"; the shift is the
8-neighbour spatial shift) or over the S tokens of one frame (axis "spatial"; the shift is
the temporal shift).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

AXES = ("temporal", "spatial")
GATES = ("shared", "separate", "none")

# Spatial 8-neighbour shift: channel group g takes its value from grid cell (i + di, j + dj).
SPATIAL_SHIFT_OFFSETS = ((1, 0), (-1, 0), (0, 1), (0, -1), (-1, -1), (1, 1), (-1, 1), (1, -1))
SPATIAL_SHIFT_DIV = 16


def temporal_shift(x: torch.Tensor, shift_div: int) -> torch.Tensor:
    """B x T x S x C: channels [0, f) take frame t+1, [f, 2f) take frame t-1, f = C // shift_div.

    Zeros past the clip ends.
    """
    f = x.shape[-1] // shift_div
    pad = x.new_zeros(x[:, :1, :, :f].shape)
    fwd = torch.cat([x[:, 1:, :, :f], pad], dim=1)
    bwd = torch.cat([pad, x[:, :-1, :, f : 2 * f]], dim=1)
    return torch.cat([fwd, bwd, x[..., 2 * f :]], dim=-1)


def spatial_shift(x: torch.Tensor, grid: int, official_border: bool = False) -> torch.Tensor:
    """B x T x S x C with S = grid**2: channel group g (of f = C // 16) takes cell (i+di, j+dj).

    Groups follow SPATIAL_SHIFT_OFFSETS; channels from 8f on are unshifted. Cells whose source
    lies outside the grid get zeros. `official_border=True` reproduces the official code's
    quirk for the four diagonal groups: there a border cell keeps its own value instead.
    """
    b, t, s, c = x.shape
    f = c // SPATIAL_SHIFT_DIV
    g = x.reshape(b, t, grid, grid, c)
    padded = F.pad(g[..., : 8 * f], (0, 0, 1, 1, 1, 1))
    parts = []
    for n, (di, dj) in enumerate(SPATIAL_SHIFT_OFFSETS):
        part = padded[:, :, 1 + di : 1 + di + grid, 1 + dj : 1 + dj + grid, n * f : (n + 1) * f]
        if official_border and di != 0 and dj != 0:
            inside = _inside_mask(grid, di, dj, x.device).view(1, 1, grid, grid, 1)
            part = torch.where(inside, part, g[..., n * f : (n + 1) * f])
        parts.append(part)
    parts.append(g[..., 8 * f :])
    return torch.cat(parts, dim=-1).reshape(b, t, s, c)


def _inside_mask(grid: int, di: int, dj: int, device: torch.device) -> torch.Tensor:
    r = torch.arange(grid, device=device)
    rows = ((r + di) >= 0) & ((r + di) < grid)
    cols = ((r + dj) >= 0) & ((r + dj) < grid)
    return rows[:, None] & cols[None, :]


def gated_features(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    gate_weight: torch.Tensor | None, gate_bias: torch.Tensor | None, *, heads: int, gate: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q', k' = g * phi(q), g * phi(k) and v, each B x T x S x heads x d (k, v already shifted)."""
    b, t, s, c = q.shape
    d = c // heads
    q, k, v = (x.reshape(b, t, s, heads, d) for x in (q, k, v))
    fq = F.relu(q) + d**-0.5
    fk = F.relu(k) + d**-0.5
    if gate != "none":
        z = torch.cat([fq, fk, v], dim=-1)
        gq = torch.sigmoid(F.linear(z, gate_weight[0], gate_bias[0]))
        gk = gq if gate == "shared" else torch.sigmoid(F.linear(z, gate_weight[1], gate_bias[1]))
        fq, fk = gq * fq, gk * fk
    return fq, fk, v


def ffla(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    gate_weight: torch.Tensor | None,
    gate_bias: torch.Tensor | None,
    *,
    heads: int,
    axis: str,
    grid: int,
    shift: bool = True,
    shift_div: int = 4,
    gate: str = "shared",
    official_border: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Feature-fixation linear attention on B x T x S x C tensors (see the module docstring).

    gate_weight: n_gates x d x 3d and gate_bias: n_gates x d, with n_gates 1 ("shared", the
    same g for q and k) or 2 ("separate": index 0 gates q, index 1 gates k); both None for
    gate "none" (plain linear attention). Returns B x T x S x C, heads concatenated, before
    the output projection.
    """
    if axis not in AXES or gate not in GATES:
        raise ValueError(f"axis must be in {AXES}, gate in {GATES}")
    if shift:
        if axis == "spatial":
            k, v = temporal_shift(k, shift_div), temporal_shift(v, shift_div)
        else:
            k = spatial_shift(k, grid, official_border)
            v = spatial_shift(v, grid, official_border)
    b, t, s, c = q.shape
    fq, fk, v = gated_features(q, k, v, gate_weight, gate_bias, heads=heads, gate=gate)
    if axis == "spatial":  # attend over the S tokens of each frame
        kv = torch.einsum("btshd,btshe->bthde", fk, v)
        num = torch.einsum("btshd,bthde->btshe", fq, kv)
        den = torch.einsum("btshd,bthd->btsh", fq, fk.sum(dim=2))
    else:  # attend over the T frames of each location
        kv = torch.einsum("btshd,btshe->bshde", fk, v)
        num = torch.einsum("btshd,bshde->btshe", fq, kv)
        den = torch.einsum("btshd,bshd->btsh", fq, fk.sum(dim=1))
    out = num / (den.unsqueeze(-1) + eps)
    return out.reshape(b, t, s, c)


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, heads: int, axis: str) -> torch.Tensor:
    """Scaled dot-product softmax attention on B x T x S x C, the quadratic baseline."""
    b, t, s, c = q.shape
    d = c // heads
    perm = (0, 2, 3, 1, 4) if axis == "temporal" else (0, 1, 3, 2, 4)  # -> ... x heads x L x d
    q, k, v = (x.reshape(b, t, s, heads, d).permute(*perm) for x in (q, k, v))
    attn = torch.softmax((q @ k.transpose(-1, -2)) * d**-0.5, dim=-1)
    return (attn @ v).permute(*_inverse(perm)).reshape(b, t, s, c)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)
