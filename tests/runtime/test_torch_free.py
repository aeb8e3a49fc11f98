"""The runtime imports and runs with torch blocked (DESIGN.md 3.4)."""

from __future__ import annotations


def test_block_really_blocks_torch(without_torch):
    r = without_torch("import torch")
    assert r.returncode != 0 and "torch is blocked" in r.stderr


def test_runtime_imports_and_runs_without_torch(bundle, without_torch):
    r = without_torch(f"""
        import numpy as np
        import lvt_edge.runtime as rt
        from lvt_edge.errors import LvtEdgeError
        import lvt_edge.runtime.ort, lvt_edge.runtime.trt, lvt_edge.runtime.trt_step, lvt_edge.runtime.cuda
        import lvt_edge.runtime.torch_ref
        with rt.load_bundle({str(bundle)!r}, "int8") as clf:
            p = clf.predict(np.zeros(clf.contract.input_shape, np.float32))
        assert p.shape == (len(clf.labels),)
        try:
            rt.load_bundle({str(bundle)!r}, "fp32", "torch")
        except LvtEdgeError as e:
            print("torch backend:", e)
        assert "torch" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "torch backend needs PyTorch" in r.stdout


def test_tensorrt_engine_builds_import_without_torch(without_torch):
    # a Jetson builds engines from ONNX variants made elsewhere: no torch, no modelopt there
    r = without_torch("""
        import lvt_edge.export.node, lvt_edge.variants.tensorrt, lvt_edge.variants.pipeline
        from lvt_edge.variants.pipeline import build_engines
        assert "torch" not in sys.modules
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout
