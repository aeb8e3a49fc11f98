"""The causal bundle's step model on TensorRT: `step_engine_from_onnx` builds one profile over the
frame and every state input, `TensorRTStepClassifier` carries the state on the GPU in two buffer
sets that take turns. On fakes that follow TensorRT's and cuda-python's conventions and compute
with ONNX Runtime (tests/runtime/test_trt_fakes.py), compared with the ONNX Runtime step
classifier frame by frame; a real engine where TensorRT exists (marker `tensorrt`)."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from lvt_edge import bundle as B  # noqa: E402
from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.runtime import load_step  # noqa: E402
from lvt_edge.runtime.cuda import CudaPythonApi  # noqa: E402
from lvt_edge.runtime.trt_step import TensorRTStepClassifier  # noqa: E402
from lvt_edge.variants import tensorrt as TR  # noqa: E402



import lvt_edge_tests_trt_fakes as F  # noqa: E402 (registered by tests/conftest.py)
# Both sides run the same step graph in ONNX Runtime; only the state's path differs.
TOL = 1e-5
H2D, D2H, D2D = (int(F.cudaMemcpyKind.cudaMemcpyHostToDevice), int(F.cudaMemcpyKind.cudaMemcpyDeviceToHost),
                 int(F.cudaMemcpyKind.cudaMemcpyDeviceToDevice))


@pytest.fixture(scope="module")
def causal(causal_bundle):
    """A causal lvt-test bundle (model.onnx + model.step.onnx) with spread logits."""
    return causal_bundle[0]


@pytest.fixture
def work(tmp_path, causal):
    shutil.copytree(causal, tmp_path / "w")
    return tmp_path / "w"


@pytest.fixture
def fakes(monkeypatch):
    """A fake TensorRT 10.16 and cuda-python on one Orin; copies are recorded as (kind, bytes)."""
    trt = F.install_tensorrt(monkeypatch, F.make_tensorrt("10.16.1.11", device="Orin"))
    cudart = F.FakeCudart()
    F.install_cuda(monkeypatch, cudart)
    copies: list[tuple[int, int]] = []
    real = cudart.cudaMemcpyAsync

    def recorded(dst, src, count, kind, stream):
        copies.append((int(kind), int(count)))
        return real(dst, src, count, kind, stream)

    cudart.cudaMemcpyAsync = recorded
    return types.SimpleNamespace(trt=trt, cudart=cudart, copies=copies)


@pytest.fixture
def lib(tmp_path):
    return F.plugin_library(tmp_path / "pluginlib" / "liblvt_edge_ffla_trt10.so")


def build(work: Path, batch=(1, 2, 4), **kw) -> dict:
    """The fp32 step engine, recorded where the build pipeline records it."""
    data = B.read_bundle(work)
    rec = TR.step_engine_from_onnx(work, "fp32", data["step"], batch=batch, **kw)
    data["step"].setdefault("engines", {})["fp32"] = rec
    B.write_bundle(work, data)
    return rec


def load(work: Path, streams: int = 1) -> TensorRTStepClassifier:
    return TensorRTStepClassifier.from_bundle(work, B.read_bundle(work), "fp32", streams=streams)


def frames(work: Path, streams: int, n: int, seed: int = 0) -> np.ndarray:
    """streams x 3 x n x H x W frames, as the contract normalises them."""
    size = B.bundle_contract(B.read_bundle(work)).size
    return np.random.default_rng(seed).uniform(-1, 1, (streams, 3, n, size, size)).astype(np.float32)


def assert_same_state(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=TOL, err_msg=k)


def all_freed(cudart) -> bool:
    return cudart.device == {} and cudart.host == {} and cudart.streams == {}


# --- the build -----------------------------------------------------------------------------------

def test_one_profile_covers_the_frame_and_every_state_input(work, fakes, lib):
    rec = build(work, batch=(1, 2, 4), plugin=lib)
    step = B.read_bundle(work)["step"]
    built = fakes.trt.fake.built[-1]
    want = {step["frame"]["name"]: step["frame"]["shape"], **{t["input"]: t["shape"] for t in step["state"]}}
    assert built["profiles"] == {name: tuple((b, *shape) for b in (1, 2, 4)) for name, shape in want.items()}
    assert step["ffla_nodes"] > 0 and built["layers"].count("PLUGIN_V3") == rec["plugin_layers"] == step["ffla_nodes"]
    assert (rec["engine"], rec["onnx"], rec["batch"]) == ("model.step.fp32.engine", "model.step.onnx", [1, 2, 4])
    assert (work / rec["engine"]).is_file() and (work / rec["plugin"]["path"]).is_file() and rec["timing_cache"]
    assert rec["plugin"]["layers"] == step["ffla_nodes"] and rec["tensorrt_version"] == "10.16.1.11"


def test_a_plugin_layer_count_short_of_the_fused_nodes_is_refused(work, fakes, lib, monkeypatch):
    """The parser inlines one fused node's function instead of taking the plugin."""
    real, inlined = F._layers_for, []

    def one_inlined(node, model, numbers, registry):
        layers = real(node, model, numbers, registry)
        if layers and layers[0].type == "PLUGIN_V3" and not inlined:
            inlined.append(node.name)
            return [F.Layer("OTHER", f"{node.name}/body")]
        return layers

    monkeypatch.setattr(F, "_layers_for", one_inlined)
    expected = B.read_bundle(work)["step"]["ffla_nodes"]
    with pytest.raises(LvtEdgeError, match=rf"holds {expected - 1} plugin layers for {expected} fused nodes.*--no-plugin"):
        build(work, plugin=lib)
    assert inlined and fakes.trt.fake.built == [] and not (work / "model.step.fp32.engine").exists()


def test_the_step_onnx_must_be_the_one_the_entry_describes(work, fakes, lib):
    data = B.read_bundle(work)
    step = data["step"]
    with pytest.raises(LvtEdgeError, match=rf"holds {step['ffla_nodes']} fused .* records 9.*lvt-edge export"):
        TR.step_engine_from_onnx(work, "fp32", {**step, "ffla_nodes": 9}, plugin=lib)
    extra = {**step, "state": [*step["state"], {**step["state"][-1], "input": "state.extra", "output": "next.extra"}]}
    with pytest.raises(LvtEdgeError, match=r"no input 'state.extra'; no output 'next.extra'"):
        TR.step_engine_from_onnx(work, "fp32", extra, plugin=lib)
    wider = json.loads(json.dumps(step))
    wider["state"][0]["shape"][0] += 1
    with pytest.raises(LvtEdgeError, match=rf"input '{wider['state'][0]['input']}' is \?x3x"):
        TR.step_engine_from_onnx(work, "fp32", wider, plugin=lib)
    assert fakes.trt.fake.built == []


def test_the_clip_engine_still_builds_from_the_same_bundle(work, fakes, lib):
    """The step build and the clip build share one path; the clip model has one input."""
    contract = B.bundle_contract(B.read_bundle(work))
    rec = TR.engine_from_onnx(work / "model.onnx", work / "model.fp32.engine", contract, workdir=work, plugin=lib,
                              batch=(1, 2, 4))
    assert list(fakes.trt.fake.built[-1]["profiles"]) == ["clip"] and rec["plugin_layers"] > 0


# --- the runner ----------------------------------------------------------------------------------

@pytest.mark.filterwarnings("error::DeprecationWarning")  # int(cudaStream_t) is deprecated from 12.9.1
def test_the_state_ping_pong_gives_onnxruntime_logits_frame_by_frame(work, fakes, lib):
    build(work, batch=(1, 2, 4), plugin=lib)
    step = B.read_bundle(work)["step"]
    x = frames(work, 2, 2 * step["horizon"] + 2)  # the ring wraps; early frames leave the horizon
    pairs = [(t["input"], t["output"]) for t in step["state"]]
    with load(work, streams=2) as clf, load_step(work, backend="onnxruntime", streams=2) as ref:
        assert clf.backend == "tensorrt" and clf.streams == 2 and clf.state_bytes == ref.state_bytes
        frame_bytes, logits_bytes = x[:, :, 0].nbytes, 2 * clf.contract.num_classes * 4
        bound = None
        for t in range(x.shape[2]):
            fakes.copies.clear()
            np.testing.assert_allclose(clf.step_logits(x[:, :, t]), ref.step_logits(x[:, :, t]), atol=TOL,
                                       err_msg=f"frame {t}")
            assert fakes.copies == [(H2D, frame_bytes), (D2H, logits_bytes)], "only the frame in and the logits out"
            now = dict(clf._context.addresses)
            assert all(now[i] != now[o] for i, o in pairs), "a step never reads and writes the same buffer"
            if bound is not None:
                assert all(now[i] == bound[o] for i, o in pairs), "this step reads what the last one wrote"
            bound = now
        assert clf.frames_seen == ref.frames_seen == x.shape[2]
        assert_same_state(clf.state, ref.state)
        np.testing.assert_allclose(clf.step(x[:, :, 0]), ref.step(x[:, :, 0]), atol=TOL)
        clf.reset()
        ref.reset()
        assert clf.frames_seen == 0 and not any(a.any() for a in clf.state.values())
        np.testing.assert_allclose(clf.step_logits(x[0:2, :, 1]), ref.step_logits(x[0:2, :, 1]), atol=TOL)
    assert all_freed(fakes.cudart)


@pytest.mark.parametrize("batch", [(1, 2, 4), (2, 2, 4)])
def test_one_stream_alone_and_a_per_stream_reset(work, fakes, lib, batch):
    """A profile minimum of 2 pads one stream (and three) with zero rows."""
    build(work, batch=batch, plugin=lib)
    x = frames(work, 3, 6, seed=1)
    with load(work, streams=3) as clf, load_step(work, backend="onnxruntime", streams=3) as ref:
        for t in range(3):
            np.testing.assert_allclose(clf.step_logits(x[:, :, t]), ref.step_logits(x[:, :, t]), atol=TOL)
        before = clf.state
        assert all(v[1].any() for v in before.values()), "three frames fill every state tensor"
        fakes.copies.clear()
        fakes.cudart.events.clear()
        clf.reset(stream=1)
        ref.reset(stream=1)
        assert fakes.copies == [] and [e for e, _ in fakes.cudart.events] == ["memset"] * len(before)
        for k, v in clf.state.items():
            assert not v[1].any(), k
            np.testing.assert_array_equal(v[[0, 2]], before[k][[0, 2]], err_msg=k)
        fakes.copies.clear()
        np.testing.assert_allclose(clf.step_logits(x[2, :, 3], stream=2), ref.step_logits(x[2, :, 3], stream=2),
                                   atol=TOL)
        kinds = [k for k, _ in fakes.copies]
        assert kinds.count(D2H) == 1 and kinds.count(H2D) == 1, "the stream's state moves device to device"
        assert kinds.count(D2D) == 2 * len(clf.state)
        assert_same_state(clf.state, ref.state)
        for t in range(4, 6):
            np.testing.assert_allclose(clf.step_logits(x[:, :, t]), ref.step_logits(x[:, :, t]), atol=TOL)
        assert_same_state(clf.state, ref.state)
        clf.reset(1)
        ref.reset(1)
        got = [clf.step_logits(x[0, :, t]) for t in range(3)]
        np.testing.assert_allclose(got, [ref.step_logits(x[0, :, t]) for t in range(3)], atol=TOL)
        with pytest.raises(LvtEdgeError, match="stream must be 0..0"):
            clf.step(x[0, :, 0], stream=1)
        with pytest.raises(LvtEdgeError, match="reset"):
            clf.step(x[:2, :, 0])
    assert all_freed(fakes.cudart)


def test_predict_runs_each_clip_from_zeros_and_leaves_the_streams_alone(work, fakes, lib):
    build(work, batch=(1, 2, 2), plugin=lib)
    contract = B.bundle_contract(B.read_bundle(work))
    clips = np.random.default_rng(2).uniform(-1, 1, (3, *contract.input_shape)).astype(np.float32)
    x = frames(work, 1, 2, seed=3)
    with load(work) as clf, load_step(work, backend="onnxruntime") as ref:
        clf.step(x[0, :, 0])
        before = clf.state
        np.testing.assert_allclose(clf.predict(clips), ref.predict(clips), atol=TOL)  # split at the profile's 2
        np.testing.assert_allclose(clf.predict(clips[1]), ref.predict(clips[1]), atol=TOL)
        assert_same_state(clf.state, before)
        ref.step(x[0, :, 0])
        np.testing.assert_allclose(clf.step(x[0, :, 1]), ref.step(x[0, :, 1]), atol=TOL)
    assert all_freed(fakes.cudart)


def test_streams_are_bounded_by_the_profile_and_buffers_follow_them(work, fakes, lib):
    build(work, batch=(1, 2, 4), plugin=lib)
    with load(work) as clf:
        one = sum(len(buf) for buf in fakes.cudart.device.values())
        with pytest.raises(LvtEdgeError, match=r"at most 4 streams .*--batch-profile 1:5:5"):
            clf.reset(5)
        with pytest.raises(LvtEdgeError, match="whole number"):
            clf.reset(0)
        clf.reset(4)
        assert clf.streams == 4 and clf.state_bytes == 4 * B.read_bundle(work)["step"]["state_bytes_fp32"]
        assert sum(len(buf) for buf in fakes.cudart.device.values()) > one
        assert clf.step(frames(work, 4, 1)[:, :, 0]).shape == (4, clf.contract.num_classes)
        clf.reset(1)
        assert sum(len(buf) for buf in fakes.cudart.device.values()) == one, "the 4-stream buffers are freed"
    with pytest.raises(LvtEdgeError, match="at most 4 streams"):
        load(work, streams=5)
    assert all_freed(fakes.cudart)


# --- engines that are not this bundle's step engine --------------------------------------------------

def _engine_with_meta(work: Path, change) -> Path:
    """A copy of the built step engine with its fake header edited by `change(meta)`."""
    blob = (work / "model.step.fp32.engine").read_bytes()[len(F.ENGINE_MAGIC):]
    header, model = blob.split(b"\n", 1)
    meta = json.loads(header)
    change(meta)
    path = work / "odd.engine"
    path.write_bytes(F.ENGINE_MAGIC + json.dumps(meta).encode() + b"\n" + model)
    return path


def test_an_engine_that_does_not_match_the_step_entry_is_refused(work, fakes, lib):
    build(work, batch=(1, 2, 4), plugin=lib)
    data = B.read_bundle(work)
    contract, step, engine = B.bundle_contract(data), data["step"], work / "model.step.fp32.engine"
    api = CudaPythonApi(fakes.cudart)

    def make(path=engine, entry=step):
        return TensorRTStepClassifier(path, contract, entry, trt=fakes.trt, api=api, plugin=lib)

    renamed = json.loads(json.dumps(step))
    renamed["state"][0]["input"] = "state.renamed"
    with pytest.raises(LvtEdgeError, match=r"has inputs .*step entry says inputs .*'state.renamed'.*not this bundle's"):
        make(entry=renamed)
    wider = json.loads(json.dumps(step))
    wider["state"][1]["shape"][0] += 1
    with pytest.raises(LvtEdgeError, match=rf"'{wider['state'][1]['input']}' is \(-1, 3, 25, 32\).*Bx4x25x32"):
        make(entry=wider)
    half = json.loads(json.dumps(step))
    half["state"][2]["dtype"] = "float16"
    with pytest.raises(LvtEdgeError, match=r"float32 -> float32, bundle.json's step entry says float16"):
        make(entry=half)
    with pytest.raises(LvtEdgeError, match=r"the frame 'frame' is float32, bundle.json's step entry says float16"):
        make(entry={**step, "frame": {**step["frame"], "dtype": "float16"}})
    state, shape = step["state"][3]["input"], step["state"][3]["shape"]
    ragged = _engine_with_meta(work, lambda m: m["profiles"].update({state: [[1, *shape], [1, *shape], [2, *shape]]}))
    with pytest.raises(LvtEdgeError, match=rf"different batch ranges .*{state} 1..2.*one streams range"):
        make(path=ragged)
    logits = step["logits"]

    def seven_classes(meta):
        next(o for o in meta["outputs"] if o[0] == logits)[1] = [-1, 7]

    wrong_classes = _engine_with_meta(work, seven_classes)
    with pytest.raises(LvtEdgeError, match=rf"'{logits}' is \(-1, 7\).*Bx{contract.num_classes}"):
        make(path=wrong_classes)
    TR.engine_from_onnx(work / "model.onnx", work / "model.fp32.engine", contract, workdir=work, plugin=lib)
    with pytest.raises(LvtEdgeError, match=r"has inputs \['clip'\] and outputs \['logits'\]"):
        make(path=work / "model.fp32.engine")
    assert all_freed(fakes.cudart), "a refused engine leaves nothing allocated"


def test_a_bundle_without_a_step_engine_says_how_to_build_one(work):
    with pytest.raises(LvtEdgeError, match=r"no fp32 TensorRT engine; build one with `lvt-edge build .* --target tensorrt"):
        load(work)
    data = B.read_bundle(work)
    del data["step"]
    with pytest.raises(LvtEdgeError, match="no step model"):
        TensorRTStepClassifier.from_bundle(work, data, "fp32")


def test_a_changed_step_engine_is_refused(work, fakes, lib):
    build(work, plugin=lib)
    with open(work / "model.step.fp32.engine", "ab") as f:
        f.write(b"\0")
    with pytest.raises(LvtEdgeError, match="step engine .*sha256 differs"):
        load(work)


# --- the build pipeline and load_step ---------------------------------------------------------------

def test_a_tensorrt_build_records_a_step_engine_per_precision(work, fakes, lib):
    from lvt_edge.variants import build_bundle
    from lvt_edge.variants.pipeline import build_engines

    data = build_bundle(work, "fp32", target="tensorrt", plugin=lib, batch="1:2:4", eval_size=0, latency_rounds=0,
                        progress=False, log=lambda msg: None)
    rec = data["step"]["engines"]["fp32"]
    assert (rec["engine"], rec["onnx"], rec["batch"]) == ("model.step.fp32.engine", "model.step.onnx", [1, 2, 4])
    assert rec["onnx_sha256"] == data["step"]["sha256"] and (work / rec["engine"]).is_file()
    assert data["variants"]["fp32"]["tensorrt"]["engine"] == "model.fp32.engine", "the clip engine too"
    assert [b["profiles"].keys() >= {data["step"]["frame"]["name"]} for b in fakes.trt.fake.built] == [False, True]
    (work / rec["engine"]).unlink()
    data = build_engines(work, "fp32", plugin=lib, batch="1:2:4", eval_size=0, progress=False, log=lambda msg: None)
    assert (work / data["step"]["engines"]["fp32"]["engine"]).is_file(), "build_engines remakes it"
    # a clip variant without its step variant (built before step variants existed): refused before any build
    data["variants"]["int8"] = {**data["variants"]["fp32"], "precision": "int8"}
    del data["variants"]["int8"]["tensorrt"]
    B.write_bundle(work, data)
    built = len(fakes.trt.fake.built)
    with pytest.raises(LvtEdgeError, match=r"no int8 step model .*lvt-edge build .* --precision int8"):
        build_engines(work, "int8", plugin=lib, eval_size=0, log=lambda msg: None)
    assert len(fakes.trt.fake.built) == built


def test_a_damaged_step_engine_record_is_reported(work):
    data = B.read_bundle(work)
    data["step"]["engines"] = {"fp32": {"engine": "model.step.fp32.engine"}, "int4": {}}
    B.write_bundle(work, data)
    with pytest.raises(LvtEdgeError, match=r"step.engines.fp32 has no 'sha256'.*step.engines.int4: unknown precision"):
        B.read_bundle(work)


def test_load_step_auto_takes_the_step_engine_where_tensorrt_imports(work, fakes, lib, monkeypatch):
    import lvt_edge.runtime as rt
    from lvt_edge.runtime.stream import StepClassifier

    build(work, plugin=lib)
    with load_step(work, streams=2) as clf:
        assert isinstance(clf, TensorRTStepClassifier) and clf.streams == 2
    monkeypatch.setattr(rt, "tensorrt_importable", lambda: False)
    with load_step(work) as clf:
        assert isinstance(clf, StepClassifier) and clf.backend == "onnxruntime"
    with pytest.raises(LvtEdgeError, match="the tensorrt backend takes no option threads; it takes plugin, cuda"):
        load_step(work, backend="tensorrt", threads=2)
    with pytest.raises(LvtEdgeError, match="unknown backend 'torch'; choose one of auto, onnxruntime, tensorrt"):
        load_step(work, backend="torch")


def test_load_step_without_an_engine(work):
    from lvt_edge.runtime.stream import StepClassifier

    with load_step(work) as clf:  # auto: no engine recorded, so ONNX Runtime whatever is installed
        assert isinstance(clf, StepClassifier)
    with pytest.raises(LvtEdgeError, match=rf"no fp32 TensorRT engine; build one with `lvt-edge build {work} --target tensorrt"):
        load_step(work, backend="tensorrt")


# --- the real thing ---------------------------------------------------------------------------------

@pytest.mark.tensorrt
@pytest.mark.parametrize("use_plugin", [False, True])
def test_real_step_engine_carries_the_state_like_onnxruntime(work, use_plugin):
    """Build the step engine with TensorRT, stream frames through it on the GPU and compare with
    ONNX Runtime frame by frame (full float32: TF32 off)."""
    plugin = None
    if use_plugin:
        from lvt_edge.variants import plugin as P

        try:
            plugin = P.plugin_from_sources(log=lambda m: None).library
        except LvtEdgeError as e:
            pytest.skip(f"cannot build the plugin here: {e}")
    rec = build(work, batch=(1, 2, 4), plugin=plugin, use_plugin=use_plugin, tf32=False)
    step = B.read_bundle(work)["step"]
    assert rec["plugin_layers"] == (step["ffla_nodes"] if use_plugin else 0)
    x = frames(work, 2, 2 * step["horizon"] + 2, seed=5)
    with load(work, streams=2) as clf, load_step(work, backend="onnxruntime", streams=2) as ref:
        for t in range(x.shape[2]):
            np.testing.assert_allclose(clf.step_logits(x[:, :, t]), ref.step_logits(x[:, :, t]), atol=1e-3,
                                       err_msg=f"frame {t}")
        clf.reset(stream=0)
        ref.reset(stream=0)
        np.testing.assert_allclose(clf.step_logits(x[0, :, 0], stream=0), ref.step_logits(x[0, :, 0], stream=0),
                                   atol=1e-3)
        for k, v in ref.state.items():
            np.testing.assert_allclose(clf.state[k], v, atol=1e-3, err_msg=k)
        clips = frames(work, 3, clf.contract.frames, seed=6)
        np.testing.assert_allclose(clf.predict(clips), ref.predict(clips), atol=1e-3)


def test_a_tensorrt_build_verifies_each_step_engine_frame_by_frame(work, fakes, lib):
    from lvt_edge.variants import build_bundle
    from lvt_edge.variants.pipeline import build_engines

    lines: list[str] = []
    # a profile of at most 3 streams: the 5 held-out clips run as 3 + 2
    data = build_bundle(work, "fp32", target="tensorrt", plugin=lib, batch="1:2:3", eval_size=5, latency_rounds=0,
                        progress=False, log=lines.append)
    check = data["step"]["engines"]["fp32"]["verification"]
    assert check["backend"] == "tensorrt" and check["reference"].startswith("fp32 step model on onnxruntime-cpu")
    assert check["clips"] == 5 and check["frames"] == B.bundle_contract(data).frames
    assert check["agreement_pct"] == 100.0 and check["within_tolerance"] and check["max_abs_logit_diff"] < 1e-4
    assert check["min_agreement_pct"] == 99.0
    assert any("fp32 TensorRT step engine agrees with ONNX Runtime at the final frame of 100.0% of 5" in line
               for line in lines)
    # build_engines (a Jetson, on a bundle built elsewhere) checks them too; an engine that disagrees is flagged
    fakes.trt.fake.perturb = lambda logits: -logits
    lines.clear()
    data = build_engines(work, "fp32", plugin=lib, eval_size=4, progress=False, log=lines.append)
    check = data["step"]["engines"]["fp32"]["verification"]
    assert check["clips"] == 4 and not check["within_tolerance"] and check["agreement_pct"] < 99.0
    assert any(line.startswith("WARNING: the fp32 TensorRT step engine agrees") for line in lines)
