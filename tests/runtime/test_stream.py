"""The step classifier carries the state of a causal bundle (issue 15), without torch."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from lvt_edge.errors import LvtEdgeError  # noqa: E402
from lvt_edge.runtime import load_step  # noqa: E402
from lvt_edge.runtime.stream import StepClassifier, step_calibration_inputs  # noqa: E402

ORT_TOL = 1e-4


@pytest.fixture(scope="module")
def causal(causal_bundle):
    """(bundle folder, PyTorch model) of a causal lvt-test with spread logits."""
    return causal_bundle


def clips(model, n, frames, seed=0):
    cfg = model.cfg
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, frames, cfg.img_size, cfg.img_size)).astype(np.float32)


def test_step_carries_the_state_and_matches_the_causal_model(causal):
    bundle, model = causal
    x = clips(model, 1, 3 * model.cfg.time_horizon)
    with torch.no_grad():
        ref = torch.softmax(model.forward_stream(torch.from_numpy(x))[0][0], -1).numpy()
    with load_step(bundle) as clf:
        assert isinstance(clf, StepClassifier) and clf.state_bytes > 0
        got = np.stack([clf.step(x[0, :, t]) for t in range(x.shape[2])])
        assert clf.frames_seen == x.shape[2]
        assert np.abs(got - ref).max() <= ORT_TOL
        # after reset the stream starts over: the first frame's probabilities come back
        clf.reset()
        assert clf.frames_seen == 0 and not any(a.any() for a in clf.state.values())
        assert np.abs(clf.step(x[0, :, 0]) - ref[0]).max() <= ORT_TOL


def test_predict_is_the_causal_clip_prediction_and_leaves_the_stream_alone(causal):
    bundle, model = causal
    x = clips(model, 3, model.cfg.frames, seed=1)
    with torch.no_grad():
        ref = torch.softmax(model(torch.from_numpy(x)), -1).numpy()
    with load_step(bundle) as clf:
        clf.step(x[0, :, 0])
        before = clf.state
        assert np.abs(clf.predict(x) - ref).max() <= ORT_TOL
        assert np.abs(clf.predict(x[1]) - ref[1]).max() <= ORT_TOL
        assert all(np.array_equal(before[k], v) for k, v in clf.state.items())


def test_streams_side_by_side(causal):
    bundle, model = causal
    x = clips(model, 2, 5, seed=2)
    with load_step(bundle, streams=2) as clf:
        both = np.stack([clf.step(x[:, :, t]) for t in range(5)])
        with pytest.raises(LvtEdgeError, match="reset"):
            clf.step(x[0, :, 0])
        clf.reset(1)
        alone = np.stack([clf.step(x[1, :, t]) for t in range(5)])
    assert np.abs(both[:, 1] - alone).max() <= ORT_TOL


def test_prepare_matches_the_contract_preprocessing(causal):
    bundle, _ = causal
    image = np.random.default_rng(3).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    with load_step(bundle) as clf:
        want = clf.contract.preprocess([image] * clf.contract.frames, order="BGR")[:, 0]
        np.testing.assert_array_equal(clf.prepare(image, order="BGR"), want)
        with pytest.raises(LvtEdgeError, match="do not fit"):
            clf.step(np.zeros((3, 8, 8), np.float32))
        with pytest.raises(LvtEdgeError, match="floating"):
            clf.step(np.zeros(clf.prepare(image, order="BGR").shape, np.uint8))


def test_a_window_bundle_has_no_step(bundle):
    with pytest.raises(LvtEdgeError, match="not causal"):
        load_step(bundle)


def test_a_changed_step_file_is_refused(causal, tmp_path):
    import shutil

    src, _ = causal
    work = tmp_path / "b"
    shutil.copytree(src, work)
    with open(work / "model.step.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(LvtEdgeError, match="sha256"):
        load_step(work)


def test_step_runs_with_torch_blocked(causal, without_torch):
    bundle, _ = causal
    code = textwrap.dedent(f"""
        import numpy as np
        from lvt_edge.runtime import load_step
        with load_step({str(bundle)!r}) as clf:
            p = clf.step(np.zeros((3, clf.contract.size, clf.contract.size), np.float32))
            assert p.shape == (clf.contract.num_classes,)
        print("ok")
    """)
    r = without_torch(code)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_calibration_inputs_carry_realistic_states(causal):
    bundle, model = causal
    x = clips(model, 3, model.cfg.frames, seed=4)
    with load_step(bundle) as clf:
        feeds = step_calibration_inputs(clf, x)
        n = 3 * (model.cfg.frames - model.cfg.frames // 2)
        names = [i.name for i in clf._session.get_inputs()]
        assert sorted(feeds) == sorted(names) and all(len(v) == n for v in feeds.values())
        state = [k for k in feeds if k != "frame"]
        assert all(np.abs(feeds[k]).max() > 0 for k in state)  # no all-zero state reaches calibration
        # the recorded inputs are what the step sees: the last recorded frame's logits match
        last = {k: v[-1:] for k, v in feeds.items()}
        out = clf._session.run(["logits"], last)[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(x[2:3]))[0].numpy()
    assert np.abs(out[0] - ref).max() <= ORT_TOL
