"""The body of the `lvt_edge::FFLinearAttention` node: the FFLA op in standard ONNX ops.

The model-local function below is what ONNX Runtime (and any tool without the plugin) runs;
TensorRT swaps in the plugin. The body reads every hyper-parameter from the node's
attributes, so one function serves the temporal and the spatial nodes and every registered
config. Structural choices (shift on/off, gate on/off, which axis) are `If` nodes on
constants made from attributes: ONNX Runtime folds them when it loads the model, so each
node runs only its own branch. Numeric attributes (heads, head_dim, grid, shift_div, eps)
enter through Constant nodes that reference the attribute.

q, k, v and the output are float32, or float16 in the fp16 build (the gate inputs are always
float32): the body casts q, k, v to float32 first and its result back to q's type, so it
accumulates in float32 either way; on float32 I/O ONNX Runtime removes those identity casts.

Layout work is kept small because Transpose dominates CPU time (FACTS.md):
- the 8-neighbour spatial shift is one Gather per frame over the flattened S x C values, with
  an index computed from attributes only (ONNX Runtime folds it to a constant); the temporal
  shift is Pad + two Slices + Concat on the channel groups;
- heads get their own axis by a Reshape (free); each node transposes q, k, v and the output
  once to put its sequence axis next to the head dim. An earlier body avoided those transposes
  with one block-diagonally masked C x C product, but that costs heads x the arithmetic plus a
  C x C mask multiply per sequence, and the temporal node (S sequences of T frames) ran 1.3x
  slower that way on ONNX Runtime CPU (lvt-tiny sizes, one node, interleaved runs).
"""

from __future__ import annotations

from typing import TypeVar, Union

import onnxscript
from onnxscript import FLOAT, FLOAT16
from onnxscript import opset20 as op
from onnxscript.values import Opset

from lvt_edge.export.node import DOMAIN, OP_TYPE

lvt_edge_opset = Opset(DOMAIN, 1)

# q, k, v and the output: all float32 (fp32 and int8 variants) or all float16 (the fp16 variant,
# so that a strongly typed TensorRT network reaches the plugin's fp16 kernel). The gate inputs
# are always float32.
QKV = TypeVar("QKV", bound=Union[FLOAT, FLOAT16])


@onnxscript.script(lvt_edge_opset, default_opset=op)
def FFLinearAttention(  # noqa: N802 (the ONNX op type)
    q_in: QKV, k_in: QKV, v_in: QKV, gate_weight: FLOAT, gate_bias: FLOAT,
    heads: int, head_dim: int, axis: int, grid: int, shift: int, shift_div: int,
    gate_mode: int, official_border: int, eps: float,
) -> QKV:
    # float32 arithmetic whatever the I/O type: the sums over frames/tokens accumulate in float32
    q = op.Cast(q_in, to=1)
    k = op.Cast(k_in, to=1)
    v = op.Cast(v_in, to=1)
    # int64 scalars from the attributes
    h = op.Constant(value_int=heads)
    d = op.Constant(value_int=head_dim)
    g_side = op.Constant(value_int=grid)
    c_all = h * d
    zero = op.Constant(value_int=0)
    one = op.Constant(value_int=1)
    is_temporal = op.Equal(op.Constant(value_int=axis), zero)

    # -- neighbourhood association: k~, v~ = shift(k), shift(v) ------------------------
    if op.Equal(op.Constant(value_int=shift), one):
        if is_temporal:
            # 8-neighbour spatial shift inside each frame: one Gather over S*C (+1 zero) with an
            # index that depends on attributes only, so ONNX Runtime folds it to a constant
            ii = op.Reshape(op.Range(zero, g_side, one), op.Constant(value_ints=[-1, 1, 1]))
            jj = op.Reshape(op.Range(zero, g_side, one), op.Constant(value_ints=[1, -1, 1]))
            cc = op.Reshape(op.Range(zero, c_all, one), op.Constant(value_ints=[1, 1, -1]))
            grp = op.Min(op.Div(cc, op.Div(c_all, op.Constant(value_int=16))), op.Constant(value_int=8))
            si = ii + op.Gather(op.Constant(value_ints=[1, -1, 0, 0, -1, 1, -1, 1, 0]), grp)
            sj = jj + op.Gather(op.Constant(value_ints=[0, 0, 1, -1, -1, 1, 1, -1, 0]), grp)
            inside = op.And(op.And(op.GreaterOrEqual(si, zero), op.Less(si, g_side)),
                            op.And(op.GreaterOrEqual(sj, zero), op.Less(sj, g_side)))
            # official_border: a diagonal channel whose source is off the grid keeps its own value
            diag = op.And(op.GreaterOrEqual(grp, op.Constant(value_int=4)), op.Less(grp, op.Constant(value_int=8)))
            keep_own = op.And(diag, op.Equal(op.Constant(value_int=official_border), one))
            src = (si * g_side + sj) * c_all + cc
            own = (ii * g_side + jj) * c_all + cc
            idx = op.Where(inside, src, op.Where(keep_own, own, g_side * g_side * c_all))
            idx = op.Reshape(idx, op.Constant(value_ints=[-1]))
            flat = op.Constant(value_ints=[0, 0, -1])
            pads = op.Constant(value_ints=[0, 0, 0, 0, 0, 1])
            ks = op.Reshape(op.Gather(op.Pad(op.Reshape(k, flat), pads), idx, axis=2), op.Shape(k))
            vs = op.Reshape(op.Gather(op.Pad(op.Reshape(v, flat), pads), idx, axis=2), op.Shape(v))
        else:
            # temporal shift: channels [0, f) <- frame t+1, [f, 2f) <- frame t-1, f = C // shift_div
            f1 = op.Reshape(op.Div(c_all, op.Constant(value_int=shift_div)), op.Constant(value_ints=[1]))
            f2 = f1 + f1
            t_pads = op.Constant(value_ints=[0, 1, 0, 0, 0, 1, 0, 0])
            big = op.Constant(value_ints=[9223372036854775807])
            axes_tc = op.Constant(value_ints=[1, 3])
            c_axis = op.Constant(value_ints=[3])
            fwd_s = op.Concat(op.Constant(value_ints=[2]), op.Constant(value_ints=[0]), axis=0)
            fwd_e = op.Concat(big, f1, axis=0)
            bwd_s = op.Concat(op.Constant(value_ints=[0]), f1, axis=0)
            bwd_e = op.Concat(op.Constant(value_ints=[-2]), f2, axis=0)
            kp = op.Pad(k, t_pads)
            ks = op.Concat(op.Slice(kp, fwd_s, fwd_e, axes_tc), op.Slice(kp, bwd_s, bwd_e, axes_tc),
                           op.Slice(k, f2, big, c_axis), axis=3)
            vp = op.Pad(v, t_pads)
            vs = op.Concat(op.Slice(vp, fwd_s, fwd_e, axes_tc), op.Slice(vp, bwd_s, bwd_e, axes_tc),
                           op.Slice(v, f2, big, c_axis), axis=3)
    else:
        ks = op.Identity(k)
        vs = op.Identity(v)

    # -- feature map and fixation gate ------------------------------------------------
    offset = op.Pow(op.Cast(d, to=1), op.Constant(value_float=-0.5))
    fq = op.Relu(q) + offset
    fk = op.Relu(ks) + offset
    if op.Equal(op.Constant(value_int=gate_mode), zero):
        gq_fq = op.Identity(fq)
        gk_fk = op.Identity(fk)
    else:
        split = op.Concat(op.Constant(value_ints=[0, 0, 0]), op.Reshape(h, op.Constant(value_ints=[1])),
                          op.Reshape(d, op.Constant(value_ints=[1])), axis=0)
        fq5 = op.Reshape(fq, split)
        fk5 = op.Reshape(fk, split)
        z = op.Concat(fq5, fk5, op.Reshape(vs, split), axis=-1)  # B x T x S x h x 3d
        # all gates at once: n_gates*d outputs; q takes the first d, k the last d
        w = op.Reshape(gate_weight, op.Concat(op.Constant(value_ints=[-1]), op.Reshape(d * 3, op.Constant(value_ints=[1])), axis=0))
        g = op.Sigmoid(op.MatMul(z, op.Transpose(w, perm=[1, 0])) + op.Reshape(gate_bias, op.Constant(value_ints=[-1])))
        d1 = op.Reshape(d, op.Constant(value_ints=[1]))
        last = op.Constant(value_ints=[-1])
        gq = op.Slice(g, op.Constant(value_ints=[0]), d1, last)
        n_out = op.Shape(g, start=-1)
        gk = op.Slice(g, n_out - d1, n_out, last)
        gq_fq = op.Reshape(gq * fq5, op.Shape(q))
        gk_fk = op.Reshape(gk * fk5, op.Shape(q))

    # -- attention: out_i = q'_i (sum_j k'_j v_j^T) / (q'_i . sum_j k'_j + eps) ------
    # heads get their own axis (a free Reshape); the denominator is an element-wise product
    # summed over each head's d channels, never a matrix product
    heads_shape = op.Concat(op.Constant(value_ints=[0, 0, 0]), op.Reshape(h, op.Constant(value_ints=[1])),
                            op.Reshape(d, op.Constant(value_ints=[1])), axis=0)
    q5 = op.Reshape(gq_fq, heads_shape)  # B x T x S x h x d
    k5 = op.Reshape(gk_fk, heads_shape)
    v5 = op.Reshape(vs, heads_shape)
    seq_axis = op.Where(is_temporal, op.Constant(value_ints=[1]), op.Constant(value_ints=[2]))
    ksum = op.ReduceSum(k5, seq_axis, keepdims=1)
    den = op.ReduceSum(q5 * ksum, op.Constant(value_ints=[-1]), keepdims=1)
    if is_temporal:  # sequences are the T frames of each location: B x S x h x T x d
        kv = op.MatMul(op.Transpose(k5, perm=[0, 2, 3, 4, 1]), op.Transpose(v5, perm=[0, 2, 3, 1, 4]))
        num = op.Transpose(op.MatMul(op.Transpose(q5, perm=[0, 2, 3, 1, 4]), kv), perm=[0, 3, 1, 2, 4])
    else:  # sequences are the S tokens of each frame: B x T x h x S x d
        kv = op.MatMul(op.Transpose(k5, perm=[0, 1, 3, 4, 2]), op.Transpose(v5, perm=[0, 1, 3, 2, 4]))
        num = op.Transpose(op.MatMul(op.Transpose(q5, perm=[0, 1, 3, 2, 4]), kv), perm=[0, 1, 3, 2, 4])
    out = op.CastLike(op.Reshape(num / (den + op.Constant(value_float=eps)), op.Shape(q)), q_in)
    return out


def ffla_function_proto():
    """The FunctionProto to append to `model.functions` (domain lvt_edge, name FFLinearAttention)."""
    proto = FFLinearAttention.to_function_proto()
    if proto.domain != DOMAIN or proto.name != OP_TYPE:
        raise AssertionError(f"function is {proto.domain}::{proto.name}, expected {DOMAIN}::{OP_TYPE}")
    return proto
