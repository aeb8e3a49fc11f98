"""The body of the `lvt_edge::FFLinearAttention` node: the FFLA op in standard ONNX ops.

The model-local function below is what ONNX Runtime (and any tool without the plugin) runs;
TensorRT swaps in the plugin. The body reads every hyper-parameter from the node's
attributes, so one function serves the temporal and the spatial nodes and every registered
config. Structural choices (which shift, gate on/off, how to associate the product) are `If`
nodes on constants made from attributes and static shapes: ONNX Runtime folds them when it
loads the model, so each node runs only its own branch.

q, k, v and the output are float32, or float16 in the fp16 build (the gate inputs are always
float32): the body casts q, k, v to float32 first and its result back to q's type, so it
accumulates in float32 either way; on float32 I/O ONNX Runtime removes those identity casts.

Why it is shaped this way (ONNX Runtime CPU; benchmarks/results/profile.md has the numbers):
ONNX Runtime inlines the body into plain kernels. At the demo's sizes each kernel costs a few
microseconds however little it does, and at larger sizes moving data in small pieces costs
more than the arithmetic. An earlier body (a per-frame elementwise Gather for the spatial
shift, Pad/Slice/Concat for the temporal shift, four Transposes, about 45 kernels) spent
54-58 % of the demo's time at batch 1; this one spends 42-44 % (36-37 % at batch 8) in 35-37
kernels per node, most of them small reshapes, and a few that do the work:

- All layout work is Gathers with constant indices. phi(k) and v are stacked as planes, each
  followed by one frame of fill values (phi(0) for k, 0 for v), and cut into blocks of `blk`
  channels. One Gather then applies the neighbourhood shift (a source outside the grid or clip
  reads the fill), puts each sequence's axis next to the channels and interleaves [k | v] per
  head: B x A x heads x L x 2d, the sequences being the L = T frames of each of the A = S
  tokens (temporal node) or the L = S tokens of each of the A = T frames (spatial). phi is
  applied before the shift: relu(x) + d**-0.5 commutes with a shift except where zeros come
  in, and those read the fill. phi(q), which does not shift, moves to B x A x heads x L x d in
  its own Gather with blocks of up to d channels. The indices depend only on attributes and the
  frame count, which the body reads from a batch-free probe whose shape ONNX Runtime knows
  statically, so they fold to constants at load time (with a dynamic frame count they are
  computed on every run: correct, slower).
- ONNX Runtime's Gather costs about the same per block whatever the block's size, so blocks are
  as large as the shift allows: `blk` is the largest power of two dividing d and the shift's
  channel-group width (C/16 for the spatial shift, C/shift_div for the temporal one). When that
  is much smaller than d, the heads that hold no shifted channel move in a second Gather with
  blocks of up to d channels. Keeping q out of the shifted Gather cuts its blocks by a third:
  at width 64 the spatial shift moves 4-channel pieces, and at 448 px that Gather was the
  largest cost FFLA adds to plain linear attention.
- The gate is two 2-D products, rows of q' by d x (gates x d) and rows of [k~ v~] by
  2d x (gates x d), the bias fused into one of them, then the sigmoid. k~ and v~ are one Split
  away, q' and k' two Muls.
- The sigmoid is 1 / (1 + exp(-x)), the minus folded into the (constant) gate weights, not
  ONNX Runtime's Sigmoid: that one is off by up to 1.4e-7 absolute, which is 30 % relative at
  x = -8 and several times the value below -15, where a trained gate shuts channels. Summed
  into the normaliser, that moved the demo's logits by 1.5e-4 (ONNX Runtime 1.32, CPU); its Exp
  is within 1e-7 relative.
- The product is associated by sequence length: (q' k'^T) v, with each row of q' k'^T divided
  by its sum, when L < d (the frames of the temporal node: small matrices, no d x d state);
  q' (k'^T v) otherwise, linear in L. Both are exact rewritings of the same sums.
- One Transpose puts the result back to B x T x S x C.
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
    # int64 scalars from the attributes and the (static) frame count
    zero = op.Constant(value_int=0)
    one = op.Constant(value_int=1)
    two = op.Constant(value_int=2)
    three = op.Constant(value_int=3)
    vec = op.Constant(value_ints=[-1])
    h = op.Constant(value_int=heads)
    d = op.Constant(value_int=head_dim)
    side = op.Constant(value_int=grid)
    c_all = h * d
    n_s = side * side
    # the frame count from a probe without the batch axis, so that its shape is static
    n_t = op.Squeeze(op.Shape(op.ReduceMax(q, op.Constant(value_ints=[0]), keepdims=1), start=1, end=2))
    is_temporal = op.Equal(op.Constant(value_int=axis), zero)
    moves = op.Equal(op.Constant(value_int=shift), one)

    # -- block sizes -------------------------------------------------------------------
    # width of the shift's channel groups: C/16 (spatial shift, temporal node), C/shift_div
    grp_w = op.Where(is_temporal, op.Div(c_all, op.Constant(value_int=16)),
                     op.Div(c_all, op.Constant(value_int=shift_div)))
    grp_w = op.Where(moves, grp_w, d)
    pows = op.Constant(value_ints=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768])
    divides_d = op.Equal(op.Mod(d, pows), zero)
    blk = op.ReduceMax(op.Where(op.And(divides_d, op.Equal(op.Mod(grp_w, pows), zero)), pows, one), keepdims=0)
    coarse = op.ReduceMax(op.Where(divides_d, pows, one), keepdims=0)
    ratio = op.Div(coarse, blk)
    # heads holding a shifted channel (channels [0, 8 C/16) or [0, 2 C/shift_div)); the others
    # move in blocks of `coarse` when that saves enough blocks to pay for a second Gather
    moved_ch = op.Where(is_temporal, op.Div(c_all, op.Constant(value_int=16)) * op.Constant(value_int=8),
                        op.Div(c_all, op.Constant(value_int=shift_div)) * two)
    hs = op.Where(op.And(moves, op.GreaterOrEqual(ratio, op.Constant(value_int=4))),
                  op.Min(op.Div(moved_ch + d - one, d), h), h)
    per_head = op.Div(d, blk)
    n_blk = op.Div(c_all, blk)
    plane_len = (n_t + one) * n_s * n_blk  # blocks per plane: T frames, then the fill frame

    # -- the Gather index: output block (A, head, L, plane, e) <- input block ------------
    # (planes: 0 = phi(k), 1 = v; q does not shift and moves on its own, in coarse blocks)
    head = op.Reshape(op.Range(zero, h, one), op.Constant(value_ints=[1, -1, 1, 1, 1]))
    plane = op.Reshape(op.Range(zero, two, one), op.Constant(value_ints=[1, 1, 1, -1, 1]))
    eb = op.Reshape(op.Range(zero, per_head, one), op.Constant(value_ints=[1, 1, 1, 1, -1]))
    cb = head * per_head + eb  # channel block
    c0 = cb * blk  # its first channel
    moved = op.Identity(moves)
    fill = plane * plane_len + n_t * n_s * n_blk  # first block of the plane's fill frame
    # (each If below returns one value: onnxscript orders several by a set, so exports would vary)
    seq = op.Where(is_temporal, n_t, n_s)  # sequence length L
    outer = op.Where(is_temporal, n_s, n_t)  # sequences per head A
    if is_temporal:
        # A = S tokens, L = T frames; the 8-neighbour spatial shift: group g of C/16 channels
        # reads cell (i + di, j + dj); groups 8.. stay
        s_ix = op.Reshape(op.Range(zero, n_s, one), op.Constant(value_ints=[-1, 1, 1, 1, 1]))
        t_ix = op.Reshape(op.Range(zero, n_t, one), op.Constant(value_ints=[1, 1, -1, 1, 1]))
        grp = op.Min(op.Div(c0, grp_w), op.Constant(value_int=8))
        moved_g = op.And(moved, op.Less(grp, op.Constant(value_int=8)))
        di = op.Where(moved_g, op.Gather(op.Constant(value_ints=[1, -1, 0, 0, -1, 1, -1, 1, 0]), grp), zero)
        dj = op.Where(moved_g, op.Gather(op.Constant(value_ints=[0, 0, 1, -1, -1, 1, 1, -1, 0]), grp), zero)
        si = op.Div(s_ix, side) + di
        sj = op.Mod(s_ix, side) + dj
        inside = op.And(op.And(op.GreaterOrEqual(si, zero), op.Less(si, side)),
                        op.And(op.GreaterOrEqual(sj, zero), op.Less(sj, side)))
        # official_border: a diagonal group whose source is off the grid keeps its own value
        keep = op.And(op.And(op.GreaterOrEqual(grp, op.Constant(value_int=4)), moved_g),
                      op.Equal(op.Constant(value_int=official_border), one))
        src = plane * plane_len + (t_ix * n_s + op.Where(inside, si * side + sj, s_ix)) * n_blk + cb
        idx = op.Where(op.Or(inside, keep), src, fill)
    else:
        # A = T frames, L = S tokens; the temporal shift: channels [0, f) read frame t+1,
        # [f, 2f) frame t-1, f = C // shift_div
        t_ix = op.Reshape(op.Range(zero, n_t, one), op.Constant(value_ints=[-1, 1, 1, 1, 1]))
        s_ix = op.Reshape(op.Range(zero, n_s, one), op.Constant(value_ints=[1, 1, -1, 1, 1]))
        fwd = op.And(moved, op.Less(c0, grp_w))
        bwd = op.And(moved, op.And(op.GreaterOrEqual(c0, grp_w), op.Less(c0, grp_w + grp_w)))
        ts = t_ix + op.Where(fwd, one, op.Where(bwd, op.Constant(value_int=-1), zero))
        inside = op.And(op.GreaterOrEqual(ts, zero), op.Less(ts, n_t))
        src = plane * plane_len + (ts * n_s + s_ix) * n_blk + cb
        idx = op.Where(inside, src, fill)
    outer_1 = op.Reshape(outer, vec)
    seq_1 = op.Reshape(seq, vec)
    d_1 = op.Reshape(d, vec)
    d2 = op.Reshape(d * two, vec)
    d3 = op.Reshape(d * three, vec)
    grouped = op.Concat(vec, outer_1, op.Reshape(h, vec), seq_1, d2, axis=0)  # B x A x heads x L x 2d
    # q: the same reordering without a shift, in blocks of `coarse` channels
    q_per_head = op.Div(d, coarse)
    q_cb = op.Reshape(op.Range(zero, h, one), op.Constant(value_ints=[1, -1, 1, 1])) * q_per_head + op.Reshape(
        op.Range(zero, q_per_head, one), op.Constant(value_ints=[1, 1, 1, -1]))
    q_a = op.Reshape(op.Range(zero, outer, one), op.Constant(value_ints=[-1, 1, 1, 1]))
    q_l = op.Reshape(op.Range(zero, seq, one), op.Constant(value_ints=[1, 1, -1, 1]))
    q_t = op.Where(is_temporal, q_l, q_a)
    q_s = op.Where(is_temporal, q_a, q_l)
    q_idx = (q_t * n_s + q_s) * op.Div(c_all, coarse) + q_cb

    # -- phi(k), v as planes, each followed by its fill frame; then the Gathers -------------
    # (float literals go through Cast: onnxslim rewrites a function's float Constants as doubles)
    offset = op.Pow(op.Cast(d, to=1), op.Cast(op.Constant(value_float=-0.5), to=1))
    frame = op.Concat(op.Shape(q, start=0, end=1), op.Constant(value_ints=[1]), op.Shape(q, start=2), axis=0)
    zeros = op.Expand(op.Cast(zero, to=1), frame)
    q_blocks = op.Reshape(op.Relu(q) + offset, op.Concat(op.Constant(value_ints=[0, -1]), op.Reshape(coarse, vec), axis=0))
    fq = op.Reshape(op.Gather(q_blocks, op.Reshape(q_idx, vec), axis=1),
                    op.Concat(vec, outer_1, op.Reshape(h, vec), seq_1, d_1, axis=0))
    data = op.Concat(op.Relu(k) + offset, op.Expand(offset, frame), v, zeros, axis=1)
    blocks = op.Reshape(data, op.Concat(op.Constant(value_ints=[0, -1]), op.Reshape(blk, vec), axis=0))
    if op.Equal(hs, h):
        x = op.Reshape(op.Gather(blocks, op.Reshape(idx, vec), axis=1), grouped)
    else:  # the shifted heads in blocks of `blk`, the others in blocks of `coarse`
        hs_1 = op.Reshape(hs, vec)
        head_axis = op.Constant(value_ints=[1])
        idx_a = op.Slice(idx, op.Constant(value_ints=[0]), hs_1, head_axis)
        idx_b = op.Div(op.Slice(idx, hs_1, op.Reshape(h, vec), head_axis), ratio)
        idx_b = op.Slice(idx_b, op.Constant(value_ints=[0]), op.Constant(value_ints=[9223372036854775807]),
                         vec, op.Reshape(ratio, vec))
        coarse_blocks = op.Reshape(data, op.Concat(op.Constant(value_ints=[0, -1]), op.Reshape(coarse, vec), axis=0))
        x_a = op.Reshape(op.Gather(blocks, op.Reshape(idx_a, vec), axis=1),
                         op.Concat(vec, outer_1, hs_1, seq_1, d2, axis=0))
        x_b = op.Reshape(op.Gather(coarse_blocks, op.Reshape(idx_b, vec), axis=1),
                         op.Concat(vec, outer_1, op.Reshape(h - hs, vec), seq_1, d2, axis=0))
        x = op.Concat(x_a, x_b, axis=2)
    fk, vs = op.Split(x, axis=4, num_outputs=2)

    # -- fixation gate: g = sigmoid(W_g [phi(q); phi(k~); v~] + b_g), one product -------
    if op.Equal(op.Constant(value_int=gate_mode), zero):
        g = op.Cast(one, to=1)  # ONNX Runtime drops the products by one
    else:
        # 2-D products (rows of q, rows of [k~ v~]), so that ONNX Runtime fuses the bias into one
        # minus the pre-activation, from negated weights (constants: ONNX Runtime folds the Negs)
        w = op.Neg(op.Reshape(op.Transpose(gate_weight, perm=[2, 0, 1]), op.Concat(d3, vec, axis=0)))  # 3d x gates*d
        w_q = op.Slice(w, op.Constant(value_ints=[0]), d_1, op.Constant(value_ints=[0]))
        w_kv = op.Slice(w, d_1, d3, op.Constant(value_ints=[0]))
        neg_pre = (op.MatMul(op.Reshape(x, op.Concat(vec, d2, axis=0)), w_kv) + op.Neg(op.Reshape(gate_bias, vec))
                   + op.MatMul(op.Reshape(fq, op.Concat(vec, d_1, axis=0)), w_q))
        gates_d = op.Shape(op.Reshape(gate_bias, vec))
        sig = op.Reciprocal(op.Exp(neg_pre) + op.Cast(one, to=1))  # the sigmoid, see the module doc
        g = op.Reshape(sig, op.Concat(vec, outer_1, op.Reshape(h, vec), seq_1, gates_d, axis=0))
    separate = op.Equal(op.Constant(value_int=gate_mode), two)
    if separate:  # q takes the first d gates, k the last d
        gq = op.Slice(g, op.Constant(value_ints=[0]), d_1, vec)
    else:
        gq = op.Identity(g)
    if separate:
        gk = op.Slice(g, d_1, d_1 + d_1, vec)
    else:
        gk = op.Identity(g)
    qg = fq * gq
    kg = fk * gk

    # -- attention: out_i = q'_i (sum_j k'_j v_j^T) / (q'_i . sum_j k'_j + eps) ---------
    if op.Less(seq, d):  # (q' k'^T) v: seq x seq per sequence, each row divided by its sum
        att = op.MatMul(qg, op.Transpose(kg, perm=[0, 1, 2, 4, 3]))
        att = att / (op.ReduceSum(att, vec, keepdims=1) + op.Constant(value_float=eps))
        o = op.MatMul(att, vs)
    else:  # q' (k'^T v): d x d per sequence
        kv = op.MatMul(op.Transpose(kg, perm=[0, 1, 2, 4, 3]), vs)
        ksum = op.ReduceSum(kg, op.Constant(value_ints=[-2]), keepdims=1)
        den = op.MatMul(qg, op.Reshape(ksum, op.Constant(value_ints=[0, 0, 0, -1, 1])))
        o = op.MatMul(qg, kv) / (den + op.Constant(value_float=eps))
    if is_temporal:  # B x S x heads x T x d -> B x T x S x heads x d
        ot = op.Transpose(o, perm=[0, 3, 1, 2, 4])
    else:  # B x T x heads x S x d -> B x T x S x heads x d
        ot = op.Transpose(o, perm=[0, 1, 3, 2, 4])
    return op.CastLike(op.Reshape(ot, op.Constant(value_ints=[0, 0, 0, -1])), q_in)


def ffla_function_proto():
    """The FunctionProto to append to `model.functions` (domain lvt_edge, name FFLinearAttention)."""
    proto = FFLinearAttention.to_function_proto()
    if proto.domain != DOMAIN or proto.name != OP_TYPE:
        raise AssertionError(f"function is {proto.domain}::{proto.name}, expected {DOMAIN}::{OP_TYPE}")
    return proto


def ffla_body_sha256() -> str:
    """sha256 of the function body this version exports: bundle.json records it (export.ffla_body_sha256),
    so that `build` can tell when a model.onnx carries an older body (correct, but slower)."""
    import hashlib

    return hashlib.sha256(ffla_function_proto().SerializeToString()).hexdigest()


def stale_body_note(export_record: dict, workdir) -> str | None:
    """A note when the model.onnx that `export_record` (bundle.json's `export`) describes carries
    another FFLA function body than this version exports; None when it is current or unfused."""
    if not export_record.get("fused") or export_record.get("ffla_body_sha256") == ffla_body_sha256():
        return None
    return (f"{workdir}/model.onnx carries an earlier FFLinearAttention function body: its results are the "
            "same, but the current body runs faster on ONNX Runtime. Re-export (`lvt-edge export CKPT -o "
            f"{workdir}`, or `lvt-edge build {workdir} --checkpoint CKPT` after removing model.onnx) to get it")
