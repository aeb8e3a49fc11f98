"""load_bundle on a real tiny bundle: backends agree, checks fire with fix-it messages."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime import BACKENDS, load_bundle, resolve_backend


def test_onnxruntime_predicts_probabilities(bundle, tiny):
    with load_bundle(bundle, "fp32", "onnxruntime", threads=1) as clf:
        assert clf.backend == "onnxruntime" and clf.labels == clf.contract.labels
        x = tiny.clips_for(clf.contract, 3)
        p = clf.predict(x)
        assert p.shape == (3, len(clf.labels)) and p.dtype == np.float32
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
        one = clf.predict(x[0])  # one clip -> one probability vector
        np.testing.assert_allclose(one, p[0], atol=1e-6)
        clf.warmup(runs=1)
    with pytest.raises(LvtEdgeError, match="closed"):
        clf.predict(x)


def test_torch_reference_matches_onnxruntime(bundle, tiny):
    with load_bundle(bundle, "fp32", "torch") as ref, load_bundle(bundle, "fp32", "onnxruntime") as ort:
        x = tiny.clips_for(ref.contract, 2, seed=3)
        np.testing.assert_allclose(ort.logits(x), ref.logits(x), atol=1e-4)
        assert ref.contract == ort.contract


def test_variants_differ_as_built(bundle, tiny):
    x = tiny.clips_for(B.bundle_contract(B.read_bundle(bundle)), 4, seed=5)
    with load_bundle(bundle, "fp32") as fp32, load_bundle(bundle, "int8") as int8, load_bundle(bundle, "fp16") as neg:
        np.testing.assert_allclose(int8.logits(x), fp32.logits(x), atol=0.05)
        np.testing.assert_allclose(neg.logits(x), -fp32.logits(x), atol=1e-5)
        assert int8.source.endswith("model.int8.onnx")


def test_auto_is_onnxruntime_without_an_engine_or_tensorrt(bundle):
    data = B.read_bundle(bundle)
    assert resolve_backend(data, "fp32") == "onnxruntime"
    data["variants"]["fp32"]["tensorrt"] = {"engine": "model.fp32.engine"}
    assert resolve_backend(data, "fp32") == "onnxruntime"  # TensorRT does not import here
    with pytest.raises(LvtEdgeError, match="choose one of auto, onnxruntime, tensorrt, torch"):
        resolve_backend(data, "fp32", "tflite")


def test_bad_inputs_say_how_to_fix(bundle, tiny):
    with load_bundle(bundle) as clf:
        with pytest.raises(LvtEdgeError, match="preprocess"):
            clf.predict(np.zeros((2, 3, 4, 32, 32), np.float32))
        with pytest.raises(LvtEdgeError, match="floating point"):
            clf.predict(np.zeros((1, *clf.contract.input_shape), np.uint8))
        # float64 is accepted and computed in float32
        x = tiny.clips_for(clf.contract, 1)
        np.testing.assert_allclose(clf.predict(x.astype(np.float64)), clf.predict(x), atol=1e-6)


def test_unknown_options_and_precisions_are_refused(bundle):
    with pytest.raises(LvtEdgeError, match="takes no option plugin"):
        load_bundle(bundle, "fp32", "onnxruntime", plugin="x.so")
    with pytest.raises(LvtEdgeError, match="fp32 source model only"):
        load_bundle(bundle, "int8", "torch")
    with pytest.raises(LvtEdgeError, match="install onnxruntime-gpu"):
        load_bundle(bundle, "fp32", "onnxruntime", device="cuda")
    assert set(BACKENDS) == {"onnxruntime", "tensorrt", "torch"}


def test_missing_or_changed_files_name_the_rebuild(tmp_path, bundle):
    work = tmp_path / "w"
    shutil.copytree(bundle, work)
    with pytest.raises(LvtEdgeError, match="no bf16|unknown precision"):
        load_bundle(work, "bf16")
    (work / "model.int8.onnx").write_bytes(b"not onnx")
    with pytest.raises(LvtEdgeError, match=r"changed after the build.*lvt-edge build .* --precision int8 --force"):
        load_bundle(work, "int8")
    (work / "model.int8.onnx").unlink()
    with pytest.raises(LvtEdgeError, match="missing"):
        load_bundle(work, "int8")
    data = json.loads((work / "bundle.json").read_text())
    del data["variants"]["int8"]
    (work / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(LvtEdgeError, match="lvt-edge build .* --precision int8"):
        load_bundle(work, "int8")


def test_torch_backend_needs_the_source_checkpoint(tmp_path, bundle):
    work = tmp_path / "w"
    shutil.copytree(bundle, work)
    for f in work.glob("src.*"):
        f.unlink()
    with pytest.raises(LvtEdgeError, match="source checkpoint src.safetensors, which is not available.*checkpoint=PATH"):
        load_bundle(work, "fp32", "torch")
    with load_bundle(work, "fp32", "torch", checkpoint=bundle / "src") as clf:  # explicit override
        assert clf.backend == "torch"
    data = B.read_bundle(work)
    data["source"]["sha256"] = "0" * 64
    B.write_bundle(work, data)
    shutil.copy(bundle / "src.safetensors", work)
    shutil.copy(bundle / "src.json", work)
    with pytest.raises(LvtEdgeError, match="sha256 differs"):
        load_bundle(work, "fp32", "torch")


def _stamp(path, **meta):
    """Give an ONNX file the lvt_edge metadata_props that export and build write."""
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, str(path))


@pytest.fixture
def stamped(tmp_path, bundle):
    """A copy of the bundle whose ONNX files carry their precision, labels and contract, as built ones do."""
    from lvt_edge.io import sha256_file

    work = tmp_path / "w"
    shutil.copytree(bundle, work)
    data = B.read_bundle(work)
    contract = B.bundle_contract(data)
    for p, entry in data["variants"].items():
        _stamp(work / entry["onnx"], **{B.META_PRECISION: p, B.META_LABELS: json.dumps(list(contract.labels)),
                                        B.META_CONTRACT: contract.to_json()})
        entry["sha256"] = sha256_file(work / entry["onnx"])
    B.write_bundle(work, data)
    return work


def test_stamped_variants_load(stamped):
    with load_bundle(stamped, "int8") as clf:
        assert clf.metadata[B.META_PRECISION] == "int8"


def test_mixed_up_variants_are_refused_with_the_rebuild(stamped):
    data = B.read_bundle(stamped)
    data["variants"]["fp16"] = dict(data["variants"]["int8"], precision="fp16")  # fp16 now points at the int8 file
    B.write_bundle(stamped, data)
    with pytest.raises(LvtEdgeError, match=r"model\.int8\.onnx does not match bundle.json: the file is the int8 model "
                                           r".*as the fp16 variant.*lvt-edge build .* --precision fp16 --force"):
        load_bundle(stamped, "fp16")


def test_edited_labels_are_refused(stamped):
    data = B.read_bundle(stamped)
    labels = data["contract"]["labels"]
    labels[0], labels[1] = labels[1], labels[0]
    B.write_bundle(stamped, data)
    with pytest.raises(LvtEdgeError, match=r"class 0 is .* in the file, .* in bundle.json.*lvt-edge export"):
        load_bundle(stamped, "fp32")


def test_an_edited_contract_is_refused(stamped):
    data = B.read_bundle(stamped)
    data["contract"]["mean"] = [0.4, 0.4, 0.4]
    B.write_bundle(stamped, data)
    with pytest.raises(LvtEdgeError, match=r"clip contract .* differs from bundle.json's in mean"):
        load_bundle(stamped, "int8")


def test_a_variant_without_its_hash_is_refused(stamped):
    data = B.read_bundle(stamped)
    del data["variants"]["int8"]["sha256"]
    B.write_bundle(stamped, data)
    with pytest.raises(LvtEdgeError, match=r"no sha256 for the int8 variant.*--precision int8 --force"):
        load_bundle(stamped, "int8")
