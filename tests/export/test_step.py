"""A causal checkpoint exports a verified step model next to its window model (issue 15)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lvt_edge.bundle import read_bundle  # noqa: E402
from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.export import onnx_from_checkpoint  # noqa: E402
from lvt_edge.export.node import DOMAIN, OP_TYPE  # noqa: E402
from lvt_edge.export.step import STEP_ONNX, step_onnx_from_model, verify_step_onnx  # noqa: E402
from lvt_edge.export.torch_export import count_ffla_nodes  # noqa: E402
from lvt_edge.model import create_model  # noqa: E402
from lvt_edge.model.causal import state_spec  # noqa: E402
from lvt_edge.model.checkpoint import load_checkpoint  # noqa: E402

ORT_TOL = 1e-4  # issue 15: step in ONNX Runtime vs the causal clip model


@pytest.fixture(scope="module")
def causal_ckpt(tmp_path_factory, checkpoint_factory):
    return checkpoint_factory(tmp_path_factory.mktemp("causal") / "lvt-test-causal", causal=True)


@pytest.fixture(scope="module")
def causal_bundle(tmp_path_factory, causal_ckpt):
    out = tmp_path_factory.mktemp("causal-bundle")
    onnx_from_checkpoint(causal_ckpt, out)
    return out


def test_bundle_records_the_step_and_its_state(causal_bundle, causal_ckpt):
    data = read_bundle(causal_bundle)  # the schema check passes with the step entry
    cfg = load_checkpoint(causal_ckpt).config
    step = data["step"]
    assert step["onnx"] == STEP_ONNX and (causal_bundle / STEP_ONNX).is_file()
    assert [s["name"] for s in step["state"]] == [t.name for t in state_spec(cfg)]
    assert [tuple(s["shape"]) for s in step["state"]] == [t.shape for t in state_spec(cfg)]
    assert step["frame"] == {"name": "frame", "shape": [3, cfg.img_size, cfg.img_size]}
    v = step["verification"]
    assert v["passed"] and v["max_abs_diff"] <= ORT_TOL and v["top1_agreement"] == 1.0
    # the window model of a causal checkpoint: one fused node per block (its spatial attention)
    assert data["export"]["ffla_nodes"] == cfg.depth and data["export"]["verification"]["passed"]


def test_step_graph_has_explicit_state_io_and_fused_spatial_nodes(causal_bundle, causal_ckpt):
    proto = onnx.load(causal_bundle / STEP_ONNX)
    onnx.checker.check_model(proto, full_check=True)
    cfg = load_checkpoint(causal_ckpt).config
    names = [t.name for t in state_spec(cfg)]
    assert [i.name for i in proto.graph.input] == ["frame", *(f"state.{n}" for n in names)]
    assert [o.name for o in proto.graph.output] == ["logits", *(f"next.{n}" for n in names)]
    assert all(i.type.tensor_type.shape.dim[0].dim_param for i in proto.graph.input)  # dynamic batch
    nodes = [n for n in proto.graph.node if (n.domain, n.op_type) == (DOMAIN, OP_TYPE)]
    attrs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute} for n in nodes]
    assert len(nodes) == cfg.depth and all(a["axis"] == 1 and a["shift"] == 0 for a in attrs)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["lvt_edge.model_config"])["causal"] is True


def test_exported_graphs_use_no_onnx_runtime_sigmoid(causal_bundle):
    """The causal temporal attention's gate is plain ops in both graphs: its sigmoid must be the
    exact form (lvt_edge.export.torch_export.exact_sigmoids), as in the fused node's body."""
    for name in ("model.onnx", STEP_ONNX):
        ops = [n.op_type for n in onnx.load(causal_bundle / name).graph.node]
        assert "Sigmoid" not in ops and ops.count("Reciprocal") >= 1, name


def test_exact_sigmoids_where_onnx_runtime_sigmoid_is_coarse():
    from onnx import TensorProto, helper

    from lvt_edge.export.torch_export import exact_sigmoids

    x = np.linspace(-16, 16, 4001, dtype=np.float32)
    graph = helper.make_graph([helper.make_node("Sigmoid", ["x"], ["y"], name="gate")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    want = 1 / (1 + np.exp(-x.astype(np.float64)))

    def worst_rel(p):
        y = ort.InferenceSession(p.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        return float((np.abs(y - want) / want).max())

    assert worst_rel(proto) > 1e-2  # why: ONNX Runtime's own Sigmoid near zero
    assert exact_sigmoids(proto) == 1 and [n.op_type for n in proto.graph.node] == ["Neg", "Exp", "Add", "Reciprocal"]
    onnx.checker.check_model(proto, full_check=True)
    assert worst_rel(proto) < 1e-6


def test_onnx_runtime_frame_by_frame_equals_the_causal_clip_model(causal_bundle, causal_ckpt):
    model = load_checkpoint(causal_ckpt).model
    cfg = model.cfg
    sess = ort.InferenceSession(str(causal_bundle / STEP_ONNX), providers=["CPUExecutionProvider"])
    n = 3 * cfg.time_horizon
    clip = np.random.default_rng(7).uniform(-1, 1, (3, 3, n, cfg.img_size, cfg.img_size)).astype(np.float32)
    state = {f"state.{t.name}": np.zeros((3, *t.shape), np.float32) for t in state_spec(cfg)}
    outs = ["logits", *(f"next.{t.name}" for t in state_spec(cfg))]
    got = []
    for t in range(n):
        res = sess.run(outs, {"frame": clip[:, :, t], **state})
        got.append(res[0])
        state = dict(zip(state, res[1:]))
    with torch.no_grad():
        ref = model.forward_stream(torch.from_numpy(clip))[0].numpy()
    assert np.abs(ref).max() > 0.3  # logits well away from zero
    assert np.abs(np.stack(got, 1) - ref).max() <= ORT_TOL
    # and the exported window model of the same checkpoint gives the last frame's prediction
    win = ort.InferenceSession(str(causal_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    last = win.run(None, {"clip": clip[:, :, -cfg.frames:]})[0]
    with torch.no_grad():
        assert np.abs(last - model(torch.from_numpy(clip[:, :, -cfg.frames:])).numpy()).max() <= ORT_TOL


def test_verification_catches_a_step_graph_of_other_weights():
    torch.manual_seed(0)
    a = create_model("lvt-test", causal=True).eval()
    b = create_model("lvt-test", causal=True).eval()
    with torch.no_grad():
        a.head[-1].weight.normal_(0, 1.0)
        b.head[-1].weight.normal_(0, 1.0)
    proto = step_onnx_from_model(a, fuse=False)  # plain ops throughout: also checks the unfused route
    assert count_ffla_nodes(proto) == 0
    data = proto.SerializeToString()
    assert verify_step_onnx(a, data)["passed"]
    with pytest.raises(LvtEdgeError, match="disagrees"):
        verify_step_onnx(b, data)


def test_a_window_export_into_the_folder_removes_the_old_step(tmp_path, causal_bundle, test_ckpt):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(causal_bundle, work)
    assert (work / STEP_ONNX).is_file() and "step" in read_bundle(work)
    onnx_from_checkpoint(test_ckpt, work)
    assert not (work / STEP_ONNX).exists() and "step" not in read_bundle(work)


def _fake_step_builds(workdir):
    """Record an fp16 step variant and fp32 / fp16 step engines of the current model.step.onnx, as
    `lvt-edge build --target tensorrt` would."""
    from lvt_edge.bundle import write_bundle
    from lvt_edge.io import sha256_file

    data = read_bundle(workdir)
    step = data["step"]
    variant = workdir / "model.step.fp16.onnx"
    variant.write_bytes(b"fp16 step of " + (workdir / STEP_ONNX).read_bytes()[:64])
    step["variants"] = {"fp16": {"precision": "fp16", "onnx": variant.name, "sha256": sha256_file(variant),
                                 "fp32_sha256": step["sha256"], "frame": step["frame"], "state": step["state"]}}
    step["engines"] = {}
    for p, built_from in (("fp32", STEP_ONNX), ("fp16", variant.name)):
        engine = workdir / f"model.step.{p}.engine"
        engine.write_bytes(b"engine " + p.encode())
        step["engines"][p] = {"engine": engine.name, "sha256": sha256_file(engine), "onnx": built_from,
                              "onnx_sha256": sha256_file(workdir / built_from)}
    write_bundle(workdir, data)
    return ["model.step.fp16.onnx", "model.step.fp32.engine", "model.step.fp16.engine"]


def test_a_reexport_keeps_step_builds_of_the_same_step_model_and_removes_the_others(
        tmp_path, causal_bundle, causal_ckpt, checkpoint_factory):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(causal_bundle, work)
    files = _fake_step_builds(work)
    logs: list[str] = []
    onnx_from_checkpoint(causal_ckpt, work, log=logs.append)
    step = read_bundle(work)["step"]
    if step["sha256"] == read_bundle(causal_bundle)["step"]["sha256"]:
        assert sorted(step["variants"]) == ["fp16"] and sorted(step["engines"]) == ["fp16", "fp32"]
        assert all((work / f).is_file() for f in files)
        assert any(f"{STEP_ONNX} is unchanged" in m and "fp16 variant, fp32 TensorRT engine" in m for m in logs), logs
    else:  # the exporter is not byte-deterministic here: the step builds count as stale
        assert "variants" not in step and "engines" not in step
        files = _fake_step_builds(work)
    other = checkpoint_factory(tmp_path / "other", causal=True, seed=1)
    logs.clear()
    onnx_from_checkpoint(other, work, log=logs.append)
    step = read_bundle(work)["step"]
    assert "variants" not in step and "engines" not in step
    assert not any((work / f).exists() for f in files), "the stale step builds' files are orphaned"
    assert any(f"{STEP_ONNX} changed: removed the step model's fp16 variant, fp32 TensorRT engine, fp16 TensorRT "
               "engine" in m and "model.step.fp16.onnx" in m and "--precision fp32,fp16 --target tensorrt" in m
               for m in logs), logs


def test_a_changed_step_variant_takes_its_engine_with_it(tmp_path, causal_bundle, causal_ckpt):
    """An engine built from another fp16 step ONNX than the one recorded is not carried over."""
    import shutil

    from lvt_edge.bundle import write_bundle

    work = tmp_path / "w"
    shutil.copytree(causal_bundle, work)
    _fake_step_builds(work)
    data = read_bundle(work)
    data["step"]["engines"]["fp16"]["onnx_sha256"] = "0" * 64
    write_bundle(work, data)
    onnx_from_checkpoint(causal_ckpt, work, log=lambda m: None)
    step = read_bundle(work)["step"]
    if step["sha256"] == read_bundle(causal_bundle)["step"]["sha256"]:
        assert sorted(step["engines"]) == ["fp32"] and not (work / "model.step.fp16.engine").exists()


def test_a_window_export_removes_the_old_step_builds(tmp_path, causal_bundle, test_ckpt):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(causal_bundle, work)
    files = _fake_step_builds(work)
    logs: list[str] = []
    onnx_from_checkpoint(test_ckpt, work, log=logs.append)
    assert "step" not in read_bundle(work) and not any((work / f).exists() for f in [STEP_ONNX, *files])
    assert any(f"{STEP_ONNX} is gone (the model is not causal): removed the step model's fp16 variant" in m
               for m in logs), logs
