"""The build on a real export (lvt-test with fused FFLA nodes): Q/DQ in, every fused node intact."""

from __future__ import annotations

import onnx
import pytest

from lvt_edge import bundle as B
from lvt_edge.variants import build_bundle
from lvt_edge.variants.graph import fused_nodes, op_counts


@pytest.mark.filterwarnings("ignore::lvt_edge.variants.clips.CalibrationWarning")
def test_int8_and_fp16_of_an_exported_model(tmp_path, synth_clips):
    from lvt_edge.data import synth
    from lvt_edge.export import onnx_from_checkpoint
    from lvt_edge.model import create_model
    from lvt_edge.model.checkpoint import contract_for, save_checkpoint

    model = create_model("lvt-test", num_classes=len(synth.LABELS)).eval()
    save_checkpoint(tmp_path / "ckpt", model, contract_for(model.cfg, synth.LABELS))
    workdir = tmp_path / "w"
    onnx_from_checkpoint(tmp_path / "ckpt", workdir)
    fp32 = onnx.load(str(workdir / "model.onnx"))
    assert fused_nodes(fp32), "the exporter emits fused nodes"

    data = build_bundle(workdir, ["int8", "fp16"], calib=synth_clips, calib_size=8, eval_size=6,
                        latency_rounds=1, progress=False)
    int8 = onnx.load(str(workdir / B.onnx_name("int8")))
    assert op_counts(int8)["DequantizeLinear"] > 0
    assert len(fused_nodes(int8)) == len(fused_nodes(fp32)) == data["variants"]["int8"]["quantization"]["fused_nodes"]
    fp16 = data["variants"]["fp16"]["conversion"]
    assert sorted(fp16["fp16_io_nodes"]) == sorted(n.name for n in fused_nodes(fp32)), "fused nodes take fp16 I/O"
    # an untrained model guesses; the check is that int8/fp16 agree with fp32 on most clips
    for p in ("int8", "fp16"):
        assert data["variants"][p]["heldout"]["agreement_with_fp32"] >= 50
