"""A small real bundle for runtime and report tests, made without the exporter or builder.

lvt-test model (11 synthetic labels) -> checkpoint -> dynamo ONNX (opset 20, "clip" ->
"logits", dynamic batch) -> bundle.json with an fp32 variant and extra variants:
  "quantized": ONNX Runtime dynamic int8 quantization (close to fp32),
  "negated":   logits * -1, a deliberately broken variant (its top-1 is fp32's worst class).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.io import sha256_file

SYNTH_FRAMES = 8


def export_source(out: Path) -> Path:
    """Checkpoint + fp32 ONNX into `out` (the slow part, ~10 s): returns `out`."""
    import torch

    from lvt_edge.data import synth
    from lvt_edge.model import create_model
    from lvt_edge.model.checkpoint import contract_for, save_checkpoint

    torch.manual_seed(0)
    model = create_model("lvt-test", num_classes=len(synth.LABELS)).eval()
    contract = contract_for(model.cfg, synth.LABELS)
    out.mkdir(parents=True, exist_ok=True)
    weights = save_checkpoint(out / "src", model, contract)
    x = torch.randn(2, *contract.input_shape)
    torch.onnx.export(model, (x,), str(out / B.onnx_name("fp32")), dynamo=True, opset_version=20,
                      input_names=["clip"], output_names=["logits"],
                      dynamic_shapes={"clip": {0: torch.export.Dim("batch", min=1, max=64)}})
    data = B.new_bundle(contract, model.cfg.to_dict(), {"checkpoint": weights.name, "sha256": sha256_file(weights)})
    B.write_bundle(out, data)
    return out


def make_variant(workdir: Path, precision: str, kind: str) -> None:
    """Add variant `precision` made from model.onnx by `kind` ("quantized" or "negated")."""
    import onnx

    src, dst = workdir / B.onnx_name("fp32"), workdir / B.onnx_name(precision)
    t0 = time.perf_counter()
    if kind == "quantized":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    elif kind == "negated":
        m = onnx.load(str(src))
        out = m.graph.output[0].name
        for node in m.graph.node:
            node.output[:] = [o if o != out else "raw_logits" for o in node.output]
        m.graph.node.append(onnx.helper.make_node("Neg", ["raw_logits"], [out]))
        onnx.save(m, str(dst))
    else:
        raise ValueError(kind)
    data = B.read_bundle(workdir)
    data["variants"][precision] = {
        "precision": precision, "onnx": dst.name, "sha256": sha256_file(dst),
        "size_bytes": dst.stat().st_size, "build_time_s": round(time.perf_counter() - t0, 3),
    }
    B.write_bundle(workdir, data)


def make_bundle(source: Path, workdir: Path, variants: dict[str, str]) -> Path:
    """A bundle in `workdir` from an exported `source` folder plus `variants` {precision: kind}."""
    shutil.copytree(source, workdir)
    onnx = workdir / B.onnx_name("fp32")
    data = B.read_bundle(workdir)
    data["variants"]["fp32"] = {"precision": "fp32", "onnx": onnx.name, "sha256": sha256_file(onnx),
                                "size_bytes": onnx.stat().st_size, "build_time_s": 7.5}
    B.write_bundle(workdir, data)
    for precision, kind in variants.items():
        make_variant(workdir, precision, kind)
    return workdir


def synth_clipset(out: Path, num: int, seed: int = 1) -> Path:
    """A tiny synthetic clip set (lvt_edge.data.synth); returns its manifest."""
    from lvt_edge.data import synth

    return synth.generate(out, split="test", num=num, seed=seed, frames=SYNTH_FRAMES, size=64, progress=False)


def relabel_as(manifest: Path, labels: list[str]) -> Path:
    """Rewrite a manifest's labels (row order) so a model's own predictions become ground truth."""
    lines = manifest.read_text().splitlines()
    rows = [ln.split(",")[0] for ln in lines[1:] if ln.strip()]
    assert len(rows) == len(labels)
    manifest.write_text("path,label\n" + "\n".join(f"{p},{lab}" for p, lab in zip(rows, labels)) + "\n")
    return manifest


def predicted_labels(workdir: Path, manifest: Path) -> list[str]:
    """fp32 onnxruntime predictions for a manifest's clips, in manifest row order."""
    from lvt_edge.data import load_clips, open_clipset
    from lvt_edge.runtime import load_bundle

    with load_bundle(workdir, "fp32", "onnxruntime") as clf:
        loaded = load_clips(open_clipset(manifest, clf.labels), clf.contract, progress=False)
        pred = clf.predict(loaded.clips).argmax(1)
    by_path = {str(p): clf.labels[i] for p, i in zip(loaded.paths, pred)}
    rows = [ln.split(",")[0] for ln in manifest.read_text().splitlines()[1:] if ln.strip()]
    return [by_path[str((manifest.parent / r).resolve())] for r in rows]


def clips_for(contract, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *contract.input_shape)).astype(np.float32)


# -- fixtures (imported by tests/runtime/conftest.py and tests/report/conftest.py) ----------
import pytest  # noqa: E402

_CACHE: dict[str, Path] = {}  # one export per session even when both test folders use it


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Path:
    return _cached("exported", lambda: export_source(tmp_path_factory.mktemp("exported")))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, exported) -> Path:
    """fp32 + a quantized int8 + a broken fp16 (negated logits); tests must not modify it."""
    return _cached("bundle", lambda: make_bundle(exported, tmp_path_factory.mktemp("b") / "bundle",
                                                 {"int8": "quantized", "fp16": "negated"}))


@pytest.fixture(scope="session")
def tiny():
    return sys.modules[__name__]
