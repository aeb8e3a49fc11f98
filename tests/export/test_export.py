"""Checkpoint -> verified ONNX: fused nodes, numbers vs PyTorch, inlining, --no-fuse, simplifiers."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lvt_edge.bundle import META_CONFIG, META_CONTRACT, META_SOURCE_SHA256, META_VERSION, read_bundle  # noqa: E402
from lvt_edge.export import ATOL, DOMAIN, OP_TYPE, onnx_from_checkpoint, onnx_from_model  # noqa: E402
from lvt_edge.export.torch_export import count_ffla_functions, count_ffla_nodes  # noqa: E402
from lvt_edge.model.checkpoint import load_checkpoint  # noqa: E402


def ort_logits(model_or_path, clips):
    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"clip": clips})[0]


def clips_for(cfg, n, seed=3):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, cfg.frames, cfg.img_size, cfg.img_size)).astype(np.float32)


def torch_logits(model, clips):
    with torch.no_grad():
        return model(torch.from_numpy(clips)).numpy()


def test_fused_nodes_function_and_checker(fused_bundle, test_ckpt):
    proto = onnx.load(fused_bundle / "model.onnx")
    depth = load_checkpoint(test_ckpt).config.depth
    nodes = [n for n in proto.graph.node if (n.domain, n.op_type) == (DOMAIN, OP_TYPE)]
    assert len(nodes) == 2 * depth
    assert count_ffla_functions(proto) == 1 and proto.opset_import
    assert {o.domain: o.version for o in proto.opset_import}[""] >= 19
    onnx.checker.check_model(proto, full_check=True)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs["plugin_namespace"] == b"lvt_edge" and attrs["plugin_version"] == b"1"
    assert sorted(attrs["axis"] for attrs in ({a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                                             for n in nodes)) == [0] * depth + [1] * depth
    # q/k/v and output projections stay outside the node as plain MatMul for quantizers
    assert sum(n.op_type in ("MatMul", "Gemm") for n in proto.graph.node) >= 4 * depth
    assert [i.name for i in proto.graph.input] == ["clip"] and [o.name for o in proto.graph.output] == ["logits"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch


def test_metadata_and_bundle(fused_bundle, test_ckpt):
    proto = onnx.load(fused_bundle / "model.onnx")
    meta = {p.key: p.value for p in proto.metadata_props}
    ckpt = load_checkpoint(test_ckpt)
    assert json.loads(meta[META_CONTRACT]) == ckpt.contract.to_dict()
    assert json.loads(meta[META_CONFIG]) == ckpt.config.to_dict()
    assert meta[META_SOURCE_SHA256] == ckpt.sha256 and meta[META_VERSION]
    assert json.loads(meta["lvt_edge.labels"]) == list(ckpt.contract.labels) and meta["lvt_edge.opset"] == "20"
    b = read_bundle(fused_bundle)
    fp32 = b["variants"]["fp32"]
    assert fp32["onnx"] == "model.onnx" and fp32["target"] == "onnxruntime" and fp32["precision"] == "fp32"
    assert fp32["size_bytes"] == (fused_bundle / "model.onnx").stat().st_size
    ver = b["export"]["verification"]
    assert ver == fp32["verification"] and ver["passed"]
    from lvt_edge.export.ffla_function import ffla_body_sha256, stale_body_note
    assert b["export"]["ffla_body_sha256"] == ffla_body_sha256() and stale_body_note(b["export"], "w") is None
    assert ver["max_abs_diff"] <= ATOL and ver["top1_agreement"] == 1.0
    assert set(ver["random"]) == {"batch_1", "batch_4"}
    assert b["export"]["opset"] == 20 and b["export"]["fused"] and b["source"]["sha256"] == ckpt.sha256


@pytest.mark.parametrize("batch", [1, 4])
def test_ort_matches_torch(fused_bundle, test_ckpt, batch):
    model = load_checkpoint(test_ckpt).model
    clips = clips_for(model.cfg, batch)
    out, ref = ort_logits(fused_bundle / "model.onnx", clips), torch_logits(model, clips)
    assert np.abs(out - ref).max() < ATOL
    assert (out.argmax(1) == ref.argmax(1)).all()


def test_inlined_functions_give_same_numbers(fused_bundle, test_ckpt):
    from onnx import inliner

    proto = onnx.load(fused_bundle / "model.onnx")
    inlined = inliner.inline_local_functions(proto)
    assert count_ffla_nodes(inlined) == 0 and not inlined.functions
    clips = clips_for(load_checkpoint(test_ckpt).config, 2)
    assert np.abs(ort_logits(inlined, clips) - ort_logits(proto, clips)).max() < 1e-6


def test_no_fuse_matches(tmp_path, test_ckpt):
    path = onnx_from_checkpoint(test_ckpt, tmp_path, fuse=False)
    proto = onnx.load(path)
    assert count_ffla_nodes(proto) == 0 and not proto.functions
    assert all(n.domain in ("", "ai.onnx") for n in proto.graph.node)
    model = load_checkpoint(test_ckpt).model
    clips = clips_for(model.cfg, 4)
    assert np.abs(ort_logits(path, clips) - torch_logits(model, clips)).max() < ATOL
    assert read_bundle(tmp_path)["export"]["fused"] is False


@pytest.mark.parametrize("simplifier", ["onnxsim", "none"])  # onnxslim: the fused_bundle fixture
def test_simplifiers_keep_fused_nodes(tmp_path, test_ckpt, simplifier):
    pytest.importorskip(simplifier if simplifier != "none" else "onnx")
    path = onnx_from_checkpoint(test_ckpt, tmp_path, simplifier=simplifier)
    proto = onnx.load(path)
    assert count_ffla_nodes(proto) == 2 * load_checkpoint(test_ckpt).config.depth
    assert count_ffla_functions(proto) == 1
    assert read_bundle(tmp_path)["export"]["simplifier"] == simplifier


VARIANTS = {
    "linear": {"attention": "linear"},
    "softmax": {"attention": "softmax"},
    "separate-gates": {"gate": "separate"},
    "official-border": {"official_border": True},
    "shift-div-8": {"shift_div": 8},
    "no-neighbour": {"neighbour": False},
}


@pytest.mark.parametrize("overrides", list(VARIANTS.values()), ids=list(VARIANTS))
def test_config_variants_export(overrides):
    from lvt_edge.export.verify import verify_onnx
    from lvt_edge.model import create_model

    torch.manual_seed(0)
    model = create_model("lvt-test", **overrides).eval()
    proto = onnx_from_model(model)
    want = 0 if model.cfg.attention == "softmax" else 2 * model.cfg.depth
    assert count_ffla_nodes(proto) == want and count_ffla_functions(proto) == (1 if want else 0)
    if model.cfg.attention == "linear":
        attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                 for n in proto.graph.node if n.op_type == OP_TYPE]
        assert all(a["gate_mode"] == 0 and a["shift"] == 0 for a in attrs)
    assert verify_onnx(model, proto.SerializeToString())["passed"]


@pytest.mark.parametrize("name", [
    "lvt-test", "lvt-tiny",
    pytest.param("lvt-small", marks=pytest.mark.slow),
    pytest.param("lvt-base", marks=pytest.mark.slow),
])
def test_every_registered_config_exports(tmp_path, name, checkpoint_factory):
    ckpt = checkpoint_factory(tmp_path / name, name)
    path = onnx_from_checkpoint(ckpt, tmp_path / "out")
    cfg = load_checkpoint(ckpt).config
    assert count_ffla_nodes(onnx.load(path, load_external_data=False)) == 2 * cfg.depth
    assert read_bundle(tmp_path / "out")["export"]["verification"]["passed"]


def test_real_clip_verification(tmp_path, checkpoint_factory):
    from lvt_edge.data import synth

    ckpt = checkpoint_factory(tmp_path / "ck", "lvt-test", labels=synth.LABELS)
    cfg = load_checkpoint(ckpt).config
    manifest = synth.generate(tmp_path / "clips", split="val", num=4, seed=0, frames=cfg.frames + 2,
                              size=cfg.img_size, progress=False)
    onnx_from_checkpoint(ckpt, tmp_path / "out", verify_clipset=manifest)
    ver = read_bundle(tmp_path / "out")["export"]["verification"]
    assert ver["clipset"]["clips"] == 4 and ver["clipset"]["max_abs_diff"] < ATOL
    assert ver["clipset"]["top1_agreement"] == 1.0


def test_demo_model_exports(tmp_path):
    from lvt_edge.demo import DEMO_CHECKPOINT

    if not DEMO_CHECKPOINT.with_name(DEMO_CHECKPOINT.name + ".safetensors").is_file():
        pytest.skip("the bundled demo model is not trained yet")
    path = onnx_from_checkpoint(None, tmp_path)
    proto = onnx.load(path)
    assert count_ffla_nodes(proto) == 2 * load_checkpoint(DEMO_CHECKPOINT).config.depth
    assert count_ffla_functions(proto) == 1
    onnx.checker.check_model(proto, full_check=True)


def test_ort_folds_the_function_body(fused_bundle, tmp_path):
    """ONNX Runtime folds the attribute-driven If branches and the shift index at load time."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    ort.InferenceSession(str(fused_bundle / "model.onnx"), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(tmp_path / "opt.onnx").graph.node}
    assert not ops & {"If", "Range", "Where", "Equal", OP_TYPE}
