"""The reference FFLA op against naive computations written independently of it."""

from __future__ import annotations

import itertools

import pytest
import torch

from lvt_edge.model.ffla import SPATIAL_SHIFT_OFFSETS, ffla, spatial_shift, temporal_shift

B, T, G, HEADS, D = 2, 5, 3, 2, 16
S, C = G * G, HEADS * D


def naive_shift_temporal(x: torch.Tensor, shift_div: int) -> torch.Tensor:
    out = x.clone()
    f = x.shape[-1] // shift_div
    for t in range(x.shape[1]):
        out[:, t, :, :f] = x[:, t + 1, :, :f] if t + 1 < x.shape[1] else 0
        out[:, t, :, f : 2 * f] = x[:, t - 1, :, f : 2 * f] if t >= 1 else 0
    return out


def naive_shift_spatial(x: torch.Tensor, grid: int, official_border: bool = False) -> torch.Tensor:
    out = x.clone()
    f = x.shape[-1] // 16
    for n, (di, dj) in enumerate(SPATIAL_SHIFT_OFFSETS):
        diagonal = di != 0 and dj != 0
        for i, j in itertools.product(range(grid), range(grid)):
            si, sj = i + di, j + dj
            ch = slice(n * f, (n + 1) * f)
            if 0 <= si < grid and 0 <= sj < grid:
                out[:, :, i * grid + j, ch] = x[:, :, si * grid + sj, ch]
            elif not (official_border and diagonal):
                out[:, :, i * grid + j, ch] = 0
    return out


def naive_ffla(q, k, v, gw, gb, *, heads, axis, grid, shift, shift_div, gate, official_border=False, eps=1e-6):
    """O(N^2): form the full normalised kernel matrix for every sequence, one at a time."""
    if shift:
        if axis == "spatial":
            k, v = naive_shift_temporal(k, shift_div), naive_shift_temporal(v, shift_div)
        else:
            k, v = naive_shift_spatial(k, grid, official_border), naive_shift_spatial(v, grid, official_border)
    b, t, s, c = q.shape
    d = c // heads
    out = torch.zeros_like(q)
    phi = lambda x: torch.relu(x) + d**-0.5  # noqa: E731
    seqs = [(bi, ti, slice(None)) for bi in range(b) for ti in range(t)] if axis == "spatial" else \
           [(bi, slice(None), si) for bi in range(b) for si in range(s)]
    for (bi, ti, si), h in itertools.product(seqs, range(heads)):
        ch = slice(h * d, (h + 1) * d)
        qs, ks, vs = (x[bi, ti, si, ch].reshape(-1, d) for x in (q, k, v))
        fq, fk = phi(qs), phi(ks)
        if gate != "none":
            z = torch.cat([fq, fk, vs], dim=-1)
            gq = torch.sigmoid(z @ gw[0].T + gb[0])
            gk = gq if gate == "shared" else torch.sigmoid(z @ gw[1].T + gb[1])
            fq, fk = gq * fq, gk * fk
        a = fq @ fk.T  # N x N kernel
        res = (a @ vs) / (a.sum(dim=1, keepdim=True) + eps)
        out[bi, ti, si, ch] = res.reshape(out[bi, ti, si, ch].shape)
    return out


def random_inputs(gate: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, T, S, C, generator=g, dtype=torch.float64) for _ in range(3))
    n = {"shared": 1, "separate": 2, "none": 0}[gate]
    gw = torch.randn(n, D, 3 * D, generator=g, dtype=torch.float64) * 0.3 if n else None
    gb = torch.randn(n, D, generator=g, dtype=torch.float64) if n else None
    return q, k, v, gw, gb


@pytest.mark.parametrize("axis", ["temporal", "spatial"])
@pytest.mark.parametrize("gate", ["shared", "separate", "none"])
@pytest.mark.parametrize("shift,official_border", [(True, False), (False, False), (True, True)])
@pytest.mark.parametrize("shift_div", [4, 8])
def test_ffla_equals_naive_quadratic(axis, gate, shift, official_border, shift_div):
    q, k, v, gw, gb = random_inputs(gate)
    kw = dict(heads=HEADS, axis=axis, grid=G, shift=shift, shift_div=shift_div, gate=gate, official_border=official_border)
    fast = ffla(q, k, v, gw, gb, **kw)
    slow = naive_ffla(q, k, v, gw, gb, **kw)
    rel = (fast - slow).abs().max() / slow.abs().max()
    assert rel < 1e-10


@pytest.mark.parametrize("axis", ["temporal", "spatial"])
def test_constant_gate_leaves_linear_attention_unchanged(axis):
    q, k, v, _, _ = random_inputs("none", seed=1)
    gw = torch.zeros(1, D, 3 * D, dtype=torch.float64)
    gb = torch.full((1, D), 0.7, dtype=torch.float64)  # g = sigmoid(0.7) everywhere
    kw = dict(heads=HEADS, axis=axis, grid=G, shift=False, eps=0.0)
    gated = ffla(q, k, v, gw, gb, gate="shared", **kw)
    plain = ffla(q, k, v, None, None, gate="none", **kw)
    assert torch.allclose(gated, plain, rtol=1e-12, atol=1e-12)
    # and the gate does matter once it varies with the input
    gw_var = torch.randn(1, D, 3 * D, dtype=torch.float64)
    assert not torch.allclose(ffla(q, k, v, gw_var, gb, gate="shared", **kw), plain, rtol=1e-3)


def hand_grid(channels: int = 32, grid: int = 3, frames: int = 3) -> torch.Tensor:
    """x[0, t, cell, c] = 1000 * (t + 1) + 10 * cell + c % 10: every value says where it came from."""
    t = torch.arange(frames).view(1, frames, 1, 1)
    cell = torch.arange(grid * grid).view(1, 1, -1, 1)
    c = torch.arange(channels).view(1, 1, 1, -1)
    return (1000 * (t + 1) + 10 * cell + c % 10).double()


def test_temporal_shift_directions_and_borders():
    x = hand_grid(channels=32, frames=3)  # f = 32 / 4 = 8
    y = temporal_shift(x, 4)
    assert torch.equal(y[:, :2, :, :8], x[:, 1:, :, :8])  # [0, f) takes frame t+1
    assert torch.equal(y[:, 2, :, :8], torch.zeros_like(y[:, 2, :, :8]))  # past the end: zeros
    assert torch.equal(y[:, 1:, :, 8:16], x[:, :2, :, 8:16])  # [f, 2f) takes frame t-1
    assert torch.equal(y[:, 0, :, 8:16], torch.zeros_like(y[:, 0, :, 8:16]))
    assert torch.equal(y[..., 16:], x[..., 16:])  # the rest unshifted


def test_temporal_shift_div8_moves_fewer_channels():
    x = hand_grid(channels=32, frames=3)  # f = 4
    y = temporal_shift(x, 8)
    assert torch.equal(y[:, 0, :, :4], x[:, 1, :, :4])
    assert torch.equal(y[:, 1, :, 4:8], x[:, 0, :, 4:8])
    assert torch.equal(y[..., 8:], x[..., 8:])


@pytest.mark.parametrize("group", range(8))
def test_spatial_shift_each_direction(group):
    grid, f = 3, 2  # 32 channels / 16
    x = hand_grid(channels=32, grid=grid, frames=2)
    y = spatial_shift(x, grid)
    di, dj = SPATIAL_SHIFT_OFFSETS[group]
    ch = slice(group * f, (group + 1) * f)
    for i, j in itertools.product(range(grid), range(grid)):
        si, sj = i + di, j + dj
        got = y[0, :, i * grid + j, ch]
        if 0 <= si < grid and 0 <= sj < grid:
            assert torch.equal(got, x[0, :, si * grid + sj, ch]), (i, j)
        else:
            assert torch.equal(got, torch.zeros_like(got)), (i, j)
    assert torch.equal(y[..., 16:], x[..., 16:])  # channels from 8f on are unshifted


def test_spatial_shift_named_directions():
    """Spot checks in DESIGN.md's words: [0,f) <- (i+1, j); [4f,5f) <- (i-1, j-1)."""
    grid = 3
    x = hand_grid(channels=32, grid=grid, frames=1)
    y = spatial_shift(x, grid)
    centre, below, up_left = 1 * 3 + 1, 2 * 3 + 1, 0 * 3 + 0
    assert torch.equal(y[0, 0, centre, 0:2], x[0, 0, below, 0:2])
    assert torch.equal(y[0, 0, centre, 8:10], x[0, 0, up_left, 8:10])


def test_official_border_keeps_diagonal_values_only():
    grid = 3
    x = hand_grid(channels=32, grid=grid, frames=1)
    y = spatial_shift(x, grid, official_border=True)
    corner = 0  # (0, 0): the (i-1, j-1) source is outside
    assert torch.equal(y[0, 0, corner, 8:10], x[0, 0, corner, 8:10])  # diagonal keeps its own value
    assert torch.equal(y[0, 0, corner, 2:4], torch.zeros(2, dtype=x.dtype))  # (i-1, j) still zero
