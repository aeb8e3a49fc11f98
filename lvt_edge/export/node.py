"""The `lvt_edge::FFLinearAttention` node: its name, its attributes, and how torch emits it.

plugins/ffla/README.md is the node's full specification; the names here are the source.
"""

from __future__ import annotations

from typing import Any

DOMAIN = "lvt_edge"
OP_TYPE = "FFLinearAttention"
PLUGIN_NAMESPACE = "lvt_edge"
PLUGIN_VERSION = "1"

AXIS_CODES = {"temporal": 0, "spatial": 1}
GATE_CODES = {"none": 0, "shared": 1, "separate": 2}


def node_attributes(
    *, heads: int, head_dim: int, axis: str, grid: int, shift: bool, shift_div: int,
    gate: str, official_border: bool, eps: float,
) -> dict[str, Any]:
    """The node's attributes for one attention module (INT/FLOAT, plus the plugin strings)."""
    return {
        "heads": int(heads),
        "head_dim": int(head_dim),
        "axis": AXIS_CODES[axis],
        "grid": int(grid),
        "shift": int(bool(shift)),
        "shift_div": int(shift_div),
        "gate_mode": GATE_CODES[gate],
        "official_border": int(bool(official_border)),
        "eps": float(eps),
        "plugin_namespace": PLUGIN_NAMESPACE,
        "plugin_version": PLUGIN_VERSION,
    }


def ffla_node(q, k, v, gate_weight, gate_bias, *, heads: int, axis: str, grid: int, shift: bool = True,
              shift_div: int = 4, gate: str = "shared", official_border: bool = False, eps: float = 1e-6):
    """Same signature as `lvt_edge.model.ffla.ffla`; during ONNX export emits one fused node.

    Inputs q, k, v (B x T x S x C), gate_weight (n x d x 3d) and gate_bias (n x d); without a
    gate they are zeros with n = 1, and ignored. Output B x T x S x C, before the output projection.
    """
    import torch

    d = q.shape[-1] // heads
    attrs = node_attributes(heads=heads, head_dim=d, axis=axis, grid=grid, shift=shift,
                            shift_div=shift_div, gate=gate, official_border=official_border, eps=eps)
    if gate == "none":
        gate_weight, gate_bias = empty_gate(d)
    inputs = (q, k, v, gate_weight, gate_bias)
    return torch.onnx.ops.symbolic(f"{DOMAIN}::{OP_TYPE}", inputs, attrs, dtype=q.dtype, shape=q.shape, version=1)


def empty_gate(head_dim: int):
    """The gate inputs of an ungated node: zeros, 1 x d x 3d and 1 x d, never read.

    Always passing five well-shaped inputs keeps the function body type-checkable (ONNX and
    ONNX Runtime shape-infer the unused gate branch too) and the plugin's input count fixed.
    """
    import torch

    return torch.zeros(1, head_dim, 3 * head_dim), torch.zeros(1, head_dim)
