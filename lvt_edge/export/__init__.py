"""PyTorch checkpoint -> verified ONNX with fused `lvt_edge::FFLinearAttention` nodes.

What the fused node covers (the one place this is decided; plugins/ffla/README.md is the
node's full specification): everything between the q/k/v projection and the output
projection of one attention module, i.e. `lvt_edge.model.ffla.ffla` -- the neighbourhood
shift of k and v, the feature map, the fixation gate and the linear attention. Its inputs
are q, k, v (B x T x S x C, the three chunks of the qkv Linear) and the gate weight and bias
(initializers); its output is the pre-`proj` tensor. The qkv and proj Linears stay outside
as plain MatMul (+Add) so quantizers see and quantize them. Every FFLA attention (temporal
and spatial, every block; also the `linear` baseline, with gate_mode 0 and shift 0) is one
node; softmax attention exports plain ops. `fuse=False` exports plain ops throughout.

Stages: `onnx_from_model` (torch_export) -> `simplified_onnx` (simplify) -> `verify_onnx`
(verify), chained with metadata and bundle writing by `onnx_from_checkpoint` (pipeline).
"""

from lvt_edge.export.node import DOMAIN, OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION, node_attributes

# The torch stages load on first use, so `lvt_edge.export.node` (what TensorRT builds on a Jetson
# need) imports without torch.
_LAZY = {"onnx_from_checkpoint": "pipeline", "SIMPLIFIERS": "simplify", "simplified_onnx": "simplify",
         "INPUT_NAME": "torch_export", "OUTPUT_NAME": "torch_export", "onnx_from_model": "torch_export",
         "ATOL": "verify", "verify_onnx": "verify"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"lvt_edge.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ATOL", "DOMAIN", "INPUT_NAME", "OP_TYPE", "OUTPUT_NAME", "PLUGIN_NAMESPACE", "PLUGIN_VERSION",
    "SIMPLIFIERS", "node_attributes", "onnx_from_checkpoint", "onnx_from_model", "simplified_onnx",
    "verify_onnx",
]
