"""Our checkpoint format: round trip, metadata, and clear errors for what is not ours."""

from __future__ import annotations

import json

import pytest
import torch

from lvt_edge import __version__
from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import create_model
from lvt_edge.model.checkpoint import contract_for, load_checkpoint, save_checkpoint


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = create_model("lvt-test").eval()
    contract = contract_for(model.cfg, labels=list("abcde"))
    save_checkpoint(tmp_path / "m", model, contract, extra={"epoch": 2})
    return tmp_path / "m", model, contract


def test_round_trip_reproduces_outputs_and_metadata(saved):
    stem, model, contract = saved
    for spelling in (stem, stem.with_suffix(".safetensors"), stem.with_suffix(".json")):
        ckpt = load_checkpoint(spelling)
        assert ckpt.contract == contract and ckpt.config == model.cfg and ckpt.extra == {"epoch": 2}
        clip = torch.randn(1, 3, 4, 56, 56)
        with torch.no_grad():
            torch.testing.assert_close(ckpt.model(clip), model(clip), rtol=0, atol=0)
    meta = json.loads(stem.with_suffix(".json").read_text())
    assert meta["lvt_edge_version"] == __version__ and meta["contract"]["labels"] == list("abcde")


def test_a_json_that_is_not_ours_is_refused(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    (tmp_path / "x.safetensors").write_bytes(b"")
    with pytest.raises(LvtEdgeError, match="not an lvt_edge checkpoint"):
        load_checkpoint(tmp_path / "x.safetensors")


def test_missing_metadata_says_what_a_checkpoint_is(tmp_path):
    with pytest.raises(LvtEdgeError, match="NAME.safetensors plus NAME.json"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def test_config_and_weights_shape_mismatch_names_the_keys(saved):
    stem, _, _ = saved
    meta_path = stem.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["config"]["embed_dim"] = 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(LvtEdgeError, match=r"shape mismatches .*patch_embed"):
        load_checkpoint(stem)


def test_damaged_weights_are_reported(saved):
    stem, _, _ = saved
    stem.with_suffix(".safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(LvtEdgeError, match="damaged"):
        load_checkpoint(stem)


def test_labels_must_match_the_head(tmp_path):
    model = create_model("lvt-test")
    with pytest.raises(LvtEdgeError, match="labels"):
        save_checkpoint(tmp_path / "m", model, contract_for(model.cfg, labels=["only", "two"]))


def _edit_meta(stem, edit):
    meta_path = stem.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    edit(meta)
    meta_path.write_text(json.dumps(meta))
    return meta_path


@pytest.mark.parametrize("edit,field", [
    (lambda m: m.pop("config"), "no 'config'"),
    (lambda m: m.pop("contract"), "no 'contract'"),
    (lambda m: m.update(config=[1, 2]), "config must be an object"),
    (lambda m: m["config"].update(embed_dim="32"), "config.embed_dim must be an integer, got '32'"),
    (lambda m: m["config"].update(num_heads=0), "config.num_heads must be >= 1, got 0"),
    (lambda m: m["config"].update(patch_stride=0), "config.patch_stride must be >= 1"),
    (lambda m: m["config"].update(mlp_ratio="4"), "config.mlp_ratio must be a number"),
    (lambda m: m["config"].update(neighbour="yes"), "config.neighbour must be true or false"),
    (lambda m: m["contract"].update(frames="4"), "contract.frames must be an integer"),
    (lambda m: m["contract"].update(labels=["a", "b"]), "contract.labels has 2 labels but config.num_classes is 5"),
    (lambda m: m.update(extra=[]), "extra must be an object"),
])
def test_damaged_metadata_names_the_field_and_the_file(saved, edit, field):
    stem, _, _ = saved
    meta_path = _edit_meta(stem, edit)
    with pytest.raises(LvtEdgeError) as e:
        load_checkpoint(stem)
    assert field in str(e.value) and str(meta_path) in str(e.value)


def test_an_invalid_config_value_names_the_file(saved):
    stem, _, _ = saved
    meta_path = _edit_meta(stem, lambda m: m["config"].update(attention="magic"))
    with pytest.raises(LvtEdgeError, match=rf"{meta_path.name}: invalid LVT config: attention"):
        load_checkpoint(stem)
