"""fp16 and int8 variants of a causal bundle's step model: built with the clip variants,
calibrated on carried states, verified frame by frame, loaded by the streaming runtime."""

from __future__ import annotations

import json
import shutil
import textwrap

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("modelopt")

from lvt_edge import bundle as B  # noqa: E402
from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.runtime import load_step  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::lvt_edge.variants.clips.CalibrationWarning")
CALIB, EVAL = 8, 8  # clips of the session's synthetic set (22): calibrated on, held out
# Largest logit difference from the fp32 step model, frame by frame, on the uniform-noise streams
# below (logits within +-1.4; measured: fp16 9e-4, int8 0.20, int8 being calibrated on synthetic
# motion, not noise) and on the held-out synthetic clips (fp16 9e-4, int8 0.017).
LOGIT_TOL = {"fp16": 0.01, "int8": 0.3}


@pytest.fixture(scope="module")
def built(tmp_path_factory, synth_clips, causal_bundle):
    """(exported causal bundle with no variants, the same bundle after build fp16,int8, the
    calibration data the int8 step quantizer was given)."""
    from lvt_edge.variants import build_bundle
    from lvt_edge.variants import quantize

    exported = causal_bundle[0]
    work = tmp_path_factory.mktemp("step-variants") / "work"
    shutil.copytree(exported, work)

    seen: list[dict[str, np.ndarray]] = []
    real = quantize.qdq_onnx_from_onnx

    def spy(src, dst, clips, **kw):
        if isinstance(clips, dict):
            seen.append({k: v.copy() for k, v in clips.items()})
        return real(src, dst, clips, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(quantize, "qdq_onnx_from_onnx", spy)
        build_bundle(work, ["fp16", "int8"], calib=synth_clips, calib_size=CALIB, eval_size=EVAL,
                     latency_rounds=0, progress=False, log=lambda msg: None)
    return exported, work, seen


def streams(data, n=3, frames=9, seed=0):
    c = B.bundle_contract(data)
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, frames, c.size, c.size)).astype(np.float32)


def frame_by_frame(clf, x):
    clf.reset(len(x))
    return np.stack([clf.step_logits(x[:, :, t]) for t in range(x.shape[2])], 1)


def test_build_writes_and_records_both_step_variants(built):
    from lvt_edge.runtime import load_bundle
    from lvt_edge.variants.step import MIN_AGREEMENT_PCT, state_path_nodes, state_path_qdq

    _, work, _ = built
    data = B.read_bundle(work)
    step = data["step"]
    assert sorted(step["variants"]) == ["fp16", "int8"]
    for p, entry in step["variants"].items():
        assert entry["onnx"] == f"model.step.{p}.onnx" == B.step_onnx_name(p)
        from lvt_edge.io import sha256_file

        assert entry["sha256"] == sha256_file(work / entry["onnx"])
        assert entry["fp32_sha256"] == step["sha256"]
        v = entry["verification"]
        assert v["clips"] == EVAL and v["frames"] == data["contract"]["frames"]
        assert v["within_tolerance"] and v["agreement_pct"] >= MIN_AGREEMENT_PCT[p]
        assert 0 < v["max_abs_logit_diff"] <= LOGIT_TOL[p]
        # the dtypes recorded are the ones the file takes
        graph = onnx.load(str(work / entry["onnx"])).graph
        types = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type).name for i in graph.input}
        assert types[entry["frame"]["name"]] == entry["frame"]["dtype"] == "float32"
        assert all(types[t["input"]] == t["dtype"] for t in entry["state"])
        assert [t["shape"] for t in entry["state"]] == [t["shape"] for t in step["state"]]
    fp16, int8 = step["variants"]["fp16"], step["variants"]["int8"]
    # fp16 carries its state in float16 where that changes nothing: less state memory
    assert {t["dtype"] for t in fp16["state"]} >= {"float16"}
    assert fp16["state_bytes"] < int8["state_bytes"] == step["state_bytes_fp32"]
    assert {t["dtype"] for t in int8["state"]} == {"float32"}
    # int8: Q/DQ in the graph, none on the carried state's way from input to output
    q = onnx.load(str(work / int8["onnx"]))
    assert int8["quantization"]["qdq_nodes"]["QuantizeLinear"] > 0 and int8["quantization"]["fused_nodes"] > 0
    kept = state_path_nodes(onnx.load(str(work / step["onnx"])), step)
    assert kept and int8["quantization"]["state_path_float"] == kept and state_path_qdq(q, kept) == []
    # the clip variants of the causal model load too (fp16 used to trip on its zero padding)
    x = streams(data, n=1, frames=data["contract"]["frames"])[0]
    for p in ("fp16", "int8"):
        with load_bundle(work, p, backend="onnxruntime") as clf:
            assert clf.predict(x).shape == (len(data["contract"]["labels"]),)


def test_the_build_summary_lists_the_step_models(built):
    from lvt_edge.commands.build import summary_table

    exported, work, _ = built
    step = B.read_bundle(work)["step"]
    lines = summary_table(B.read_bundle(work)).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("step model"))
    assert lines[at].split() == ["step", "model", "agreement", "%", "max", "logit", "diff", "state", "KB", "size", "MB",
                                 "engine"]
    rows = {line.split()[0]: line.split() for line in lines[at + 1 : at + 4]}
    assert sorted(rows) == ["fp16", "fp32", "int8"] and rows["fp32"][1] == "ref"
    for p in ("fp16", "int8"):
        v = step["variants"][p]
        assert rows[p][1:4] == [f"{v['verification']['agreement_pct']:.1f}",
                                f"{v['verification']['max_abs_logit_diff']:.3g}", f"{v['state_bytes'] / 1024:.1f}"]
    assert f"on {EVAL} held-out clips fed frame by frame" in lines[at + 4]
    window = B.read_bundle(exported)
    del window["step"]
    assert "step model" not in summary_table(window)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_load_step_runs_the_variant_frame_by_frame_close_to_fp32(built, precision):
    _, work, _ = built
    data = B.read_bundle(work)
    entry = data["step"]["variants"][precision]
    x = streams(data)
    with load_step(work) as ref:
        want = frame_by_frame(ref, x)
    with load_step(work, precision, streams=len(x)) as clf:
        assert clf.precision == precision and clf.source.endswith(entry["onnx"])
        assert {k: str(v.dtype) for k, v in clf.state.items()} == {t["input"]: t["dtype"] for t in entry["state"]}
        assert clf.state_bytes == len(x) * entry["state_bytes"]
        got = frame_by_frame(clf, x)
        assert clf.frames_seen == x.shape[2]
        # predict runs each clip from zeros: a clip of T frames gives the streams' logits at frame T
        t = clf.contract.frames
        np.testing.assert_allclose(clf.logits(x[:, :, :t]), got[:, t - 1], atol=1e-5)
    assert np.ptp(want, -1).min() > 0.3, "logits too flat for top-1 to mean anything"
    diff = np.abs(got - want).max()
    assert 0 < diff <= LOGIT_TOL[precision]
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9


def test_int8_step_calibration_sees_carried_states(built):
    exported, _, seen = built
    step = B.read_bundle(exported)["step"]
    assert len(seen) == 1, "one multi-input calibration: the int8 step model"
    feeds = seen[0]
    frames = B.read_bundle(exported)["contract"]["frames"]
    assert sorted(feeds) == sorted([step["frame"]["name"], *(t["input"] for t in step["state"])])
    rows = CALIB * (frames - frames // 2)
    assert all(len(v) == rows for v in feeds.values())
    for t in step["state"]:
        assert feeds[t["input"]].shape[1:] == tuple(t["shape"])
        assert np.abs(feeds[t["input"]]).max() > 0, f"{t['input']} reached calibration as zeros"


def test_a_missing_step_variant_names_the_build_command(built):
    exported, _, _ = built
    with pytest.raises(LvtEdgeError, match=rf"no int8 step model .*`lvt-edge build {exported} --precision int8`"):
        load_step(exported, "int8")
    with pytest.raises(LvtEdgeError, match="unknown precision"):
        load_step(exported, "int4")


def test_a_variant_that_disagrees_is_refused_and_nothing_is_written(built, synth_clips, tmp_path, monkeypatch):
    from lvt_edge.variants import build_bundle
    from lvt_edge.variants import step as S

    exported, _, _ = built
    work = tmp_path / "b"
    shutil.copytree(exported, work)
    real = S.fp16_step_onnx_from_onnx

    def negated_logits(src, dst, feeds, step, **kw):
        """A conversion gone wrong: the variant's logits come out negated (top-1 becomes last)."""
        info = real(src, dst, feeds, step, **kw)
        model = onnx.load(str(dst))
        for node in model.graph.node:
            node.output[:] = [o + ".raw" if o == step["logits"] else o for o in node.output]
        model.graph.node.append(onnx.helper.make_node("Neg", [step["logits"] + ".raw"], [step["logits"]]))
        onnx.save(model, str(dst))
        return info

    monkeypatch.setattr(S, "fp16_step_onnx_from_onnx", negated_logits)
    with pytest.raises(LvtEdgeError, match=r"fp16 step model agrees .* at the final frame of 0\.0% .*nothing was "
                                           r"written.*--force"):
        build_bundle(work, ["fp16"], calib=synth_clips, calib_size=CALIB, eval_size=EVAL, latency_rounds=0,
                     progress=False, log=lambda msg: None)
    assert not (work / B.step_onnx_name("fp16")).exists()
    assert not list(work.glob(f".{B.step_onnx_name('fp16')}*"))
    assert "variants" not in B.read_bundle(work)["step"]
    assert not list(work.glob(".cache/calib/step-fp16-*")), "a refused variant is not cached for reuse"
    assert list(work.glob(".cache/calib/fp16-*")), "the clip variant before it was built as usual"
    with pytest.raises(LvtEdgeError, match="no fp16 step model"):
        load_step(work, "fp16")


def test_a_damaged_step_variant_entry_is_reported(built, tmp_path):
    _, work, _ = built
    data = json.loads((work / B.BUNDLE_JSON).read_text())
    data["step"]["variants"]["int8"]["state"] = "float32"
    data["step"]["variants"]["fp32"] = {}
    target = tmp_path / "b"
    target.mkdir()
    (target / B.BUNDLE_JSON).write_text(json.dumps(data))
    with pytest.raises(LvtEdgeError, match=r"step\.variants\.int8\.state .*step\.variants\.fp32"):
        B.read_bundle(target)


def test_step_variants_run_with_torch_blocked(built, without_torch):
    _, work, _ = built
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from lvt_edge.runtime import load_step
        for p in ("fp16", "int8"):
            with load_step({str(work)!r}, p) as clf:
                probs = clf.step(np.zeros((3, clf.contract.size, clf.contract.size), np.float32))
                assert probs.shape == (clf.contract.num_classes,) and abs(probs.sum() - 1) < 1e-4
        assert "torch" not in sys.modules
        print("ok")
    """)
    r = without_torch(code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
