"""Graph simplification that must keep the fused nodes and their function.

onnxslim is the default: it keeps MatMul (onnxsim rewrites 3-D MatMul + Add into
Reshape-Gemm-Reshape, slower once quantized on ONNX Runtime CPU); measurements in
benchmarks/results/simplifier.md.
"""

from __future__ import annotations

import onnx

from lvt_edge.errors import LvtEdgeError
from lvt_edge.export.torch_export import count_ffla_functions, count_ffla_nodes

SIMPLIFIERS = ("onnxslim", "onnxsim", "none")


def simplified_onnx(proto: onnx.ModelProto, simplifier: str = "onnxslim") -> onnx.ModelProto:
    """Simplify with the named tool and check the custom nodes and function survived."""
    if simplifier not in SIMPLIFIERS:
        raise LvtEdgeError(f"unknown simplifier {simplifier!r}; choose one of {', '.join(SIMPLIFIERS)}")
    if simplifier == "none":
        return proto
    try:
        if simplifier == "onnxslim":
            import onnxslim

            out = onnxslim.slim(proto)
        else:
            import onnxsim

            out, ok = onnxsim.simplify(proto)
            if not ok:
                raise LvtEdgeError("onnxsim could not validate its result; use --simplifier onnxslim or none")
    except ImportError as e:
        raise LvtEdgeError(f"{simplifier} is not installed ({e}); `pip install {simplifier}` or use "
                           "--simplifier none") from e
    nodes, funcs = count_ffla_nodes(proto), count_ffla_functions(proto)
    if (count_ffla_nodes(out), count_ffla_functions(out)) != (nodes, funcs):
        raise LvtEdgeError(
            f"{simplifier} changed the fused attention nodes ({nodes} nodes / {funcs} function before, "
            f"{count_ffla_nodes(out)} / {count_ffla_functions(out)} after); use another --simplifier"
        )
    return out
