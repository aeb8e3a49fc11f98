"""build_bundle end to end on a tiny fused-node bundle: records, cache reuse, bad input, atomicity."""

from __future__ import annotations

import json

import onnx
import pytest

from lvt_edge import bundle as B
from lvt_edge.variants import build_bundle
from lvt_edge.variants import pipeline as P
from lvt_edge.variants.clips import CalibrationWarning
from lvt_edge.variants.graph import fused_nodes, op_counts
from lvt_edge.cli import main
from lvt_edge.errors import LvtEdgeError

pytestmark = pytest.mark.filterwarnings("ignore::lvt_edge.variants.clips.CalibrationWarning")
FAST = dict(calib_size=11, latency_rounds=2, progress=False)


def _build(workdir, precisions, clips, **kw):
    opts = dict(FAST, calib=clips)
    opts.update(kw)
    return build_bundle(workdir, precisions, **opts)


def test_build_all_records_variants_and_verifies(fake_bundle, synth_clips):
    with pytest.warns(CalibrationWarning, match="only 11 clips"):
        data = _build(fake_bundle, "all", synth_clips)
    assert data == B.read_bundle(fake_bundle)
    int8, fp16, fp32 = (data["variants"][p] for p in ("int8", "fp16", "fp32"))
    assert fp32["verification"] == {"source": "export"}, "the export's own check is kept"
    q = onnx.load(str(fake_bundle / int8["onnx"]))
    assert op_counts(q)["QuantizeLinear"] >= 1 and len(fused_nodes(q)) == 2
    assert int8["quantization"]["op_types"] == ["MatMul", "Gemm"]
    assert fp16["conversion"]["fp32_nodes"]["blocks.1/ffla"] == "fused"
    for v in (int8, fp16):
        assert not v["calibration"]["reused"] and v["calibration"]["clipset"]["clips"] == 11
        assert v["verification"]["clipset"]["clips"] == 11  # the 11 clips calibration did not use
        assert {"top1", "top1_fp32", "drop_pt", "within_tolerance", "latency_ms_b1"} <= set(v["heldout"])
    assert fp32["heldout"]["speedup_vs_fp32"] == 1.0
    # each calibration clip's digest is recorded, so a report sees a partial overlap exactly
    from lvt_edge.data import open_clipset
    from lvt_edge.report.checks import calibration_overlap

    whole = open_clipset(synth_clips)  # 22 clips: the 11 calibrated on and the 11 held out
    assert len(int8["calibration"]["clipset"]["digests"]) == 11
    assert calibration_overlap(data, whole) == {"method": "clip digests", "overlapping_clips": 11,
                                                "variants": ["fp16", "int8"]}


def test_same_key_reuses_calibration_and_force_redoes(fake_bundle, synth_clips, monkeypatch, capsys):
    _build(fake_bundle, "int8", synth_clips, eval_size=0)
    first = B.read_bundle(fake_bundle)["variants"]["int8"]

    def no_quantizer(*a, **k):
        raise AssertionError("calibration ran again")

    monkeypatch.setattr("lvt_edge.variants.quantize.qdq_onnx_from_onnx", no_quantizer)
    again = _build(fake_bundle, "int8", synth_clips, eval_size=0)["variants"]["int8"]
    assert again["calibration"]["reused"] and again["sha256"] == first["sha256"]
    assert again["calibration"]["key"] == first["calibration"]["key"]
    assert "reusing cached calibration" in capsys.readouterr().err
    with pytest.raises(AssertionError, match="ran again"):
        _build(fake_bundle, "int8", synth_clips, eval_size=0, force=True)
    monkeypatch.undo()
    other = _build(fake_bundle, "int8", synth_clips, eval_size=0, method="entropy", calib_size=12)
    assert other["variants"]["int8"]["calibration"]["key"] != first["calibration"]["key"]


def test_interrupted_build_leaves_nothing_partial(fake_bundle, synth_clips, monkeypatch):
    before = (fake_bundle / B.BUNDLE_JSON).read_bytes()
    import onnx as onnx_mod

    real_save = onnx_mod.save

    def save_then_die(model, path, *a, **k):
        real_save(model, path, *a, **k)  # the bytes are on disk under the temporary name...
        raise KeyboardInterrupt  # ...when the build is interrupted

    monkeypatch.setattr(onnx_mod, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _build(fake_bundle, "int8", synth_clips, eval_size=0)
    assert not (fake_bundle / "model.int8.onnx").exists()
    assert (fake_bundle / B.BUNDLE_JSON).read_bytes() == before
    assert not [p for p in fake_bundle.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]
    assert not list((fake_bundle / ".cache").glob("calib/*")), "no half-written cache entry"


def test_bad_inputs(tmp_path, fake_bundle, synth_clips):
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.onnx").write_bytes(b"\x08\x07garbage" * 10)
    (corrupt / B.BUNDLE_JSON).write_text((fake_bundle / B.BUNDLE_JSON).read_text())
    with pytest.raises(LvtEdgeError, match="not a readable ONNX file"):
        _build(corrupt, "int8", synth_clips)
    foreign = onnx.load(str(fake_bundle / "model.onnx"))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(corrupt / "model.onnx"))
    with pytest.raises(LvtEdgeError, match="not an lvt_edge LVT model"):
        _build(corrupt, "int8", synth_clips)
    with pytest.raises(LvtEdgeError, match="unknown precision"):
        _build(fake_bundle, "int4", synth_clips)
    with pytest.raises(LvtEdgeError, match="calib-size must be >= 1"):
        _build(fake_bundle, "int8", synth_clips, calib_size=0)
    with pytest.raises(LvtEdgeError, match="not found"):
        _build(fake_bundle, "int8", tmp_path / "missing")
    with pytest.raises(LvtEdgeError, match="only apply to a TensorRT build"):
        _build(fake_bundle, "int8", synth_clips, target="onnxruntime", plugin="lib.so")


def test_changed_model_is_refused(fake_bundle, synth_clips):
    data = json.loads((fake_bundle / B.BUNDLE_JSON).read_text())
    data["variants"]["fp32"]["sha256"] = "0" * 64
    B.write_bundle(fake_bundle, data)
    with pytest.raises(LvtEdgeError, match="changed since it was exported"):
        _build(fake_bundle, "int8", synth_clips)


def test_missing_model_exports_first(tmp_path, monkeypatch):
    calls = []

    def fake_export(checkpoint, workdir):
        calls.append((checkpoint, workdir))
        raise LvtEdgeError("stop here")

    monkeypatch.setattr("lvt_edge.export.onnx_from_checkpoint", fake_export)
    with pytest.raises(LvtEdgeError, match="stop here"):
        P.ensure_exported(tmp_path / "w", lambda m: None)
    assert calls == [(None, tmp_path / "w")]


def test_build_says_when_model_onnx_carries_an_older_ffla_body(fake_bundle):
    pytest.importorskip("onnxscript")
    from lvt_edge.export.ffla_function import ffla_body_sha256

    data = B.read_bundle(fake_bundle)
    for recorded, noted in (("0" * 64, True), (None, True), (ffla_body_sha256(), False)):
        data["export"] = {"fused": True, "ffla_body_sha256": recorded}
        B.write_bundle(fake_bundle, data)
        logs: list[str] = []
        assert P.ensure_exported(fake_bundle, logs.append) == fake_bundle / "model.onnx"
        assert any("earlier FFLinearAttention function body" in m and "lvt-edge export" in m for m in logs) == noted


def test_parse_precisions():
    assert P.parse_precisions("all") == ("fp32", "fp16", "int8")
    assert P.parse_precisions(["int8", "fp32"]) == ("fp32", "int8")


def test_cli_prints_the_table(fake_bundle, synth_clips, capsys):
    rc = main(["build", str(fake_bundle), "--precision", "fp32,int8", "--calib", str(synth_clips),
               "--calib-size", "11", "--eval-size", "5"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0].split()[:3] == ["precision", "top-1", "%"]
    assert [ln.split()[0] for ln in out.splitlines()[1:3]] == ["fp32", "int8"]
    assert "held-out clips" in out
    assert main(["build", str(fake_bundle), "--target", "tensorrt", "--calib", str(synth_clips)]) == 1
