"""The causal LVT's three time-dependent parts, each on a clip with an optional carried past.

A causal model (`LVTConfig.causal`) differs from the window model in exactly three places; the
rest of a block works on one frame at a time already.

- Temporal attention: frame t attends over frames t - H + 1 .. t of its own grid cell
  (H = `cfg.time_horizon`), not over the whole clip.
- The temporal shift inside the spatial attention: channels [0, f) take frame t - 2 and
  [f, 2f) frame t - 1 (f = C // shift_div). The window model's [f, 2f) <- t - 1 group is kept
  as it is, so a window checkpoint fine-tunes into the causal one; its [0, f) <- t + 1 group
  cannot look ahead and looks one frame further back instead.
- The head pools the last H frames (their sum / H; LayerNorm follows, so early frames of a
  stream, summed with zeros, are only rescaled). No temporal embedding: nothing ties a frame to a
  position in a window, so the same weights run on a clip of any length and frame by frame.

Each op takes the past its clip continues (None: nothing before the clip, i.e. zeros) and
returns the past the next clip continues from. A clip of T frames and T clips of one frame
(`lvt_edge.model.step`) therefore compute the same thing, and the state is only what the ops
return.

The state: a ring of the horizon's keys and values, not a running key-value sum.
Per block and cell the temporal attention needs sum_j k'_j v_j^T over the last H frames. A
running sum would hold a d x d matrix (+ a d-vector) per head and cell, but a finite horizon
must also subtract the frame that leaves it, so the sum needs that frame's k', v as well, i.e.
the ring anyway. Keeping only the ring (the H - 1 previous frames' k' and v, C channels each per
cell) is smaller whenever 2 (H - 1) < d + 1 per head, and computes q' . k'_j over H keys
(O(H d) per head) instead of updating and reading a d x d sum (O(d^2)). For lvt-base (C 512,
8 heads of 64, 12 blocks, 289 cells, H 16) at batch 1 in fp16 (`state_bytes`, `kv_sum_bytes`):
the ring is 106.5 MB (15 frames; 113.6 MB for a full 16), a running sum 230.8 MB before the ring
it would also need; the shift state adds 7.1 MB and the pooled features 15 KB: 113.7 MB in all
(227 MB with fp32 I/O). lvt-small: 18.9 MB fp32 (a sum: 76.7 MB); lvt-tiny-causal: 0.60 MB
fp32. The cost of a ring is a copy per step: the next ring is the last H - 1 of [ring, new
frame] (ONNX has no in-place update), a read and a write of the ring per frame, against the
attention's own read of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from lvt_edge.model.config import LVTConfig

SHIFT_BACK = 2  # frames the causal temporal shift reaches back


@dataclass(frozen=True)
class StateTensor:
    """One tensor of a causal model's carried state: its name and shape after the batch axis."""

    name: str
    shape: tuple[int, ...]

    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def state_spec(cfg: LVTConfig) -> tuple[StateTensor, ...]:
    """The carried state of a causal config, in the order the step model takes and returns it.

    Per block i: `block{i}.keys` and `block{i}.values`, the previous H - 1 frames' gated keys k'
    and (shifted) values of the temporal attention, (H - 1) x S x C; with the temporal shift,
    `block{i}.shift_k` and `block{i}.shift_v`, the first 2f channels of the spatial attention's
    k and v at frames t - 2 and t - 1, 2 x S x 2f. Then `pooled`: the previous H - 1 frames'
    token-mean features, (H - 1) x C. All zeros before the first frame.
    """
    if not cfg.causal:
        raise ValueError(f"{cfg.name} is not causal: it has no carried state")
    h, s, c = cfg.time_horizon, cfg.tokens_per_frame, cfg.embed_dim
    out = []
    for i in range(cfg.depth):
        out += [StateTensor(f"block{i}.keys", (h - 1, s, c)), StateTensor(f"block{i}.values", (h - 1, s, c))]
        if cfg.uses_shift:
            f2 = 2 * (c // cfg.shift_div)
            out += [StateTensor(f"block{i}.shift_k", (SHIFT_BACK, s, f2)),
                    StateTensor(f"block{i}.shift_v", (SHIFT_BACK, s, f2))]
    out.append(StateTensor("pooled", (h - 1, c)))
    return tuple(out)


def state_bytes(cfg: LVTConfig, *, bytes_per_value: int = 4, batch: int = 1) -> int:
    """Memory of the carried state (fp32: 4 bytes per value, fp16: 2)."""
    return batch * bytes_per_value * sum(t.numel() for t in state_spec(cfg))


def kv_sum_bytes(cfg: LVTConfig, *, bytes_per_value: int = 4, batch: int = 1) -> int:
    """What a running key-value sum would take instead of the keys/values ring (for comparison):
    a d x d sum and a d-vector key sum per head, cell and block."""
    d = cfg.head_dim
    return batch * bytes_per_value * cfg.depth * cfg.tokens_per_frame * cfg.num_heads * (d * d + d)


def spatial_shift_gather(x: torch.Tensor, grid: int) -> torch.Tensor:
    """`lvt_edge.model.ffla.spatial_shift` (zeros outside the grid) as one gather over each frame's
    S x C values plus a zero: one Pad and one Gather on export, where the slice-per-direction form
    costs ~13 small nodes per call, which a one-frame step graph pays at full per-node overhead."""
    b, t, s, c = x.shape
    idx = torch.as_tensor(_spatial_shift_index(grid, c), device=x.device)
    flat = torch.nn.functional.pad(x.reshape(b, t, s * c), (0, 1))
    return flat.index_select(2, idx).reshape(b, t, s, c)


@functools.lru_cache(maxsize=32)
def _spatial_shift_index(grid: int, c: int) -> np.ndarray:
    """Source of each output value in the flattened S x C frame; grid * grid * c is the zero."""
    from lvt_edge.model.ffla import SPATIAL_SHIFT_DIV, SPATIAL_SHIFT_OFFSETS

    f = c // SPATIAL_SHIFT_DIV
    i, j, ch = np.meshgrid(np.arange(grid), np.arange(grid), np.arange(c), indexing="ij")
    group = np.minimum(ch // f, len(SPATIAL_SHIFT_OFFSETS))
    di = np.array([o[0] for o in SPATIAL_SHIFT_OFFSETS] + [0])[group]
    dj = np.array([o[1] for o in SPATIAL_SHIFT_OFFSETS] + [0])[group]
    si, sj = i + di, j + dj
    inside = (si >= 0) & (si < grid) & (sj >= 0) & (sj < grid)
    return np.where(inside, (si * grid + sj) * c + ch, grid * grid * c).reshape(-1).astype(np.int64)


def causal_temporal_shift(
    x: torch.Tensor, shift_div: int, past: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """B x T x S x C: channels [0, f) take frame t - 2, [f, 2f) frame t - 1, the rest stay.

    `past` is B x 2 x S x 2f: the first 2f channels of the two frames before the clip (None:
    zeros). Returns the shifted clip and the past of the next clip.
    """
    b, t, s, c = x.shape
    f = c // shift_div
    if past is None:
        past = x.new_zeros(b, SHIFT_BACK, s, 2 * f)
    seq = torch.cat([past, x[..., : 2 * f]], dim=1)  # frames -2 .. T-1
    shifted = torch.cat([seq[:, :t, :, :f], seq[:, 1 : t + 1, :, f : 2 * f], x[..., 2 * f :]], dim=-1)
    return shifted, seq[:, -SHIFT_BACK:]


def horizon_attention(
    fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor, *, horizon: int, eps: float,
    past_k: torch.Tensor | None = None, past_v: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Causal linear attention over frames within a horizon, per cell and head.

    fq, fk, v: B x T x S x h x d (feature maps, gated); past_k, past_v: B x P x S x C, the keys
    and values of the P frames before the clip (None: P = 0). Frame t (position P + t) attends to
    positions P + t - horizon + 1 .. P + t:

        out_t = sum_j (q'_t . k'_j) v_j / (sum_j q'_t . k'_j + eps)

    Returns out (B x T x S x C) and the next past keys and values (B x (horizon-1) x S x C,
    zeros where the history is shorter).
    """
    b, t, s, h, d = fq.shape
    if past_k is not None:
        fk = torch.cat([past_k.reshape(b, -1, s, h, d), fk], dim=1)
        v = torch.cat([past_v.reshape(b, -1, s, h, d), v], dim=1)
    p = fk.shape[1] - t
    if t == 1 and p < horizon:  # one frame that sees every key: no mask (the step model's form)
        scores = (fq * fk).sum(dim=-1)  # B x J x S x h
        num = (scores.unsqueeze(-1) * v).sum(dim=1, keepdim=True)
        den = scores.sum(dim=1, keepdim=True)
    else:
        scores = torch.einsum("btshd,bjshd->bshtj", fq, fk)
        pos = torch.arange(t, device=fq.device)[:, None] + p
        key = torch.arange(p + t, device=fq.device)[None, :]
        scores = scores * ((key <= pos) & (key > pos - horizon)).to(scores.dtype)
        num = torch.einsum("bshtj,bjshe->btshe", scores, v)
        den = scores.sum(dim=-1).permute(0, 3, 1, 2)
    out = (num / (den.unsqueeze(-1) + eps)).reshape(b, t, s, h * d)
    return out, _last_frames(fk, horizon - 1), _last_frames(v, horizon - 1)


def horizon_pool(
    feats: torch.Tensor, horizon: int, past: torch.Tensor | None = None, *, last_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame features B x T x C -> the sum of each frame's last `horizon` frames / horizon.

    `past`: B x (horizon-1) x C before the clip (None: zeros). Returns B x T x C (B x 1 x C with
    `last_only`) and the next past.
    """
    b, t, c = feats.shape
    if past is None:
        past = feats.new_zeros(b, horizon - 1, c)
    seq = torch.cat([past, feats], dim=1)  # horizon - 1 + T frames
    if last_only or t == 1:
        pooled = seq[:, -horizon:].sum(dim=1, keepdim=True)
    else:
        pooled = seq.unfold(1, horizon, 1).sum(dim=-1)  # B x T x C x horizon -> B x T x C
    return pooled / horizon, seq[:, -(horizon - 1):]


def _last_frames(x: torch.Tensor, n: int) -> torch.Tensor:
    """The last n frames of B x L x S x h x d as B x n x S x C, zero-padded in front when L < n."""
    b, length, s, h, d = x.shape
    if length < n:
        x = torch.cat([x.new_zeros(b, n - length, s, h, d), x], dim=1)
    return x[:, -n:].reshape(b, n, s, h * d)
