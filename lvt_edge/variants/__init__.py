"""Precision builds: an exported fp32 ONNX -> fp16 / int8 ONNX (calibrated on clip sets) and,
where TensorRT exists, engines; everything recorded in the bundle's JSON.

    from lvt_edge.variants import build_bundle
    data = build_bundle("lvt-bundle", "int8", calib="calib/motion")

Stages: `qdq_onnx_from_onnx` (quantize.py), `fp16_onnx_from_onnx` (fp16.py),
`engine_from_onnx` (tensorrt.py); `build_bundle` (pipeline.py) runs them with the
calibration cache (cache.py) for a target from the table in targets.py.
"""

from lvt_edge.variants.pipeline import build_bundle, parse_precisions
from lvt_edge.variants.targets import TARGET_CHOICES, TARGETS

__all__ = ["TARGETS", "TARGET_CHOICES", "build_bundle", "parse_precisions"]
