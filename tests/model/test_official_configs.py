"""Official checkpoints: the architecture the weights fix must agree with what was asked for, the
stored training config is read (and what our op cannot compute is refused by name), and our
official-name export loads strictly into the official structure."""

from __future__ import annotations

import re

import pytest
import torch
import yaml

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import create_model
from lvt_edge.model.checkpoint import load_checkpoint
from lvt_edge.model.official import to_official_state_dict

from official_style import OfficialStyleLVT, training_cfg


def _randomise(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def _official(seed: int = 0, **kw) -> OfficialStyleLVT:
    ref = OfficialStyleLVT(**kw).eval()
    _randomise(ref, seed)
    return ref


def _save(path, state: dict, cfg=None):
    """What the official training script writes: epoch, model_state, optimizer_state and cfg (YAML)."""
    obj = {"epoch": 34, "model_state": state, "optimizer_state": {"state": {}, "param_groups": []}}
    if cfg is not None:
        obj["cfg"] = cfg
    torch.save(obj, path)
    return path


# ---- 1. the weights' architecture against the named config ----

def test_a_checkpoint_missing_its_last_block_is_refused_not_made_shallower(tmp_path):
    sd = {k: v for k, v in _official(depth=12).state_dict().items() if not k.startswith("base_model.blocks.11.")}
    path = _save(tmp_path / "truncated.pyth", sd)
    with pytest.raises(LvtEdgeError, match=r"depth: the weights say 11, your override says 12"):
        load_checkpoint(path, model="lvt-test", depth=12)
    # an explicit request is never overruled by the weights, even when inferring
    with pytest.raises(LvtEdgeError, match="depth"):
        load_checkpoint(path, model="lvt-test", depth=12, infer_architecture=True)


def test_a_missing_block_against_the_named_config_and_the_explicit_opt_in(tmp_path):
    ref = _official(seed=1)
    sd = {k: v for k, v in ref.state_dict().items() if not k.startswith("base_model.blocks.1.")}
    path = _save(tmp_path / "truncated.pyth", sd)
    with pytest.raises(LvtEdgeError, match=r"depth: the weights say 1, config 'lvt-test' says 2.*infer_architecture"):
        load_checkpoint(path, model="lvt-test")
    ckpt = load_checkpoint(path, model="lvt-test", infer_architecture=True)
    assert ckpt.config.depth == 1
    assert ckpt.extra["official"]["inferred_from_weights"] == {"depth": {"config": 2, "weights": 1}}


def test_every_difference_is_named(tmp_path):
    ref = _official(seed=2, dim=64, heads=4, classes=7)
    path = _save(tmp_path / "wider.pyth", ref.state_dict())
    with pytest.raises(LvtEdgeError) as err:
        load_checkpoint(path, model="lvt-test")
    for named in ("embed_dim: the weights say 64", "num_heads: the weights say 4", "num_classes: the weights say 7"):
        assert named in str(err.value)
    assert "depth" not in str(err.value)
    ckpt = load_checkpoint(path, model="lvt-test", infer_architecture=True)
    assert (ckpt.config.embed_dim, ckpt.config.num_heads, ckpt.config.num_classes) == (64, 4, 7)
    clip = torch.randn(2, 3, 4, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(clip), ref(clip), rtol=1e-4, atol=1e-5)


def test_values_passed_explicitly_that_match_the_weights_load(tmp_path):
    path = _save(tmp_path / "seven.pyth", _official(seed=3, classes=7).state_dict())
    with pytest.raises(LvtEdgeError, match="num_classes: the weights say 7, config 'lvt-test' says 5"):
        load_checkpoint(path, model="lvt-test")
    assert load_checkpoint(path, model="lvt-test", num_classes=7).config.num_classes == 7


# ---- 2. the training config stored in the checkpoint ----

def _cfg_as(cfg: dict, form: str):
    return yaml.safe_dump(cfg, default_flow_style=False) if form == "yaml" else cfg


@pytest.mark.parametrize("form", ["yaml", "dict"])
def test_ssv2_style_training_config_loads_as_before(tmp_path, form):
    ref = _official(seed=4, classes=7)
    path = _save(tmp_path / "ssv2.pyth", {"module." + k: v for k, v in ref.state_dict().items()},
                 _cfg_as(training_cfg(classes=7), form))
    ckpt = load_checkpoint(path, model="lvt-test")
    cfg = ckpt.config
    assert (cfg.num_classes, cfg.frames, cfg.img_size, cfg.shift_div, cfg.gate) == (7, 4, 56, 4, "shared")
    assert cfg.neighbour and cfg.official_border
    assert ckpt.extra["official"]["training_config"]["num_classes"] == "MODEL.NUM_CLASSES"
    clip = torch.randn(2, 3, 4, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(clip), ref(clip), rtol=1e-4, atol=1e-5)


def test_shift_div_8_is_taken_from_the_training_config(tmp_path):
    ref = _official(seed=5, div=8)
    path = _save(tmp_path / "div8.pyth", ref.state_dict(), _cfg_as(training_cfg(SHIFT_DIV=8), "yaml"))
    ckpt = load_checkpoint(path, model="lvt-test")
    assert ckpt.config.shift_div == 8
    assert ckpt.extra["official"]["training_config"]["shift_div"] == "XVIT.SHIFT_DIV"
    clip = torch.randn(2, 3, 4, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.model(clip), ref(clip), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("changes,named", [
    ({"NUM_SEGMENTS": 2}, [r"XVIT\.NUM_SEGMENTS 2 with DATA\.NUM_FRAMES 4", "segment-restarting temporal shift"]),
    ({"SHIFT_SIZE": 4}, [r"XVIT\.SHIFT_SIZE 4", "spatial shift of more than one cell"]),
    # the Kinetics-400/600 and Charades recipes: 8-frame segments, shift_div 8, some with 4-cell shifts
    ({"NUM_SEGMENTS": 2, "SHIFT_DIV": 8, "SHIFT_SIZE": 4}, ["segment-restarting", "more than one cell"]),
    ({"USE_SpatialShift": False}, [r"XVIT\.USE_SpatialShift False"]),
    ({"LOCATIONS_LIST": [9, 10, 11]}, [r"XVIT\.LOCATIONS_LIST .* blocks \[0, 1\]"]),
    ({"SPATIAL_SIZE": 289}, [r"XVIT\.SPATIAL_SIZE 289"]),
])
def test_settings_our_op_cannot_compute_are_refused_by_name(tmp_path, changes, named):
    path = _save(tmp_path / "kinetics.pyth", _official(seed=6).state_dict(), _cfg_as(training_cfg(**changes), "yaml"))
    with pytest.raises(LvtEdgeError) as err:
        load_checkpoint(path, model="lvt-test")
    for pattern in named:
        assert re.search(pattern, str(err.value)), (pattern, str(err.value))


def test_training_config_and_weights_must_agree(tmp_path):
    cfg = training_cfg()
    cfg["SHARE_GATE"] = False  # separate q/k gates, while the weights hold one shared gate
    path = _save(tmp_path / "gates.pyth", _official(seed=7).state_dict(), _cfg_as(cfg, "yaml"))
    with pytest.raises(LvtEdgeError, match=r"gate: the weights say 'shared', the checkpoint's training config \(SHARE_GATE\)"):
        load_checkpoint(path, model="lvt-test")


def test_an_unreadable_training_config_is_reported(tmp_path):
    path = _save(tmp_path / "bad.pyth", _official().state_dict(), "XVIT: [unclosed")
    with pytest.raises(LvtEdgeError, match="not valid YAML"):
        load_checkpoint(path, model="lvt-test")


def test_training_config_values_of_the_wrong_type_are_named(tmp_path):
    cfg = training_cfg()
    cfg["MODEL"]["NUM_CLASSES"] = "many"
    cfg["XVIT"]["USE_XVIT"] = "yes"
    path = _save(tmp_path / "typed.pyth", _official().state_dict(), _cfg_as(cfg, "yaml"))
    with pytest.raises(LvtEdgeError, match=r"MODEL\.NUM_CLASSES 'many' \(expected a positive integer\); XVIT\.USE_XVIT 'yes'"):
        load_checkpoint(path, model="lvt-test")


# ---- 3. our state dict under the official names ----

@pytest.mark.parametrize("drop,head", [(0.0, "base_model.head"), (0.5, "new_fc")])
def test_official_name_export_loads_strictly_into_the_official_structure(drop, head):
    model = create_model("lvt-test", official_border=True, drop_rate=drop).eval()
    _randomise(model, seed=8)
    sd = to_official_state_dict(model)
    assert sd["base_model.temp_embed"].shape == (1, 8, 1, 32)
    assert sd[f"{head}.weight"].shape == (5, 32) and sd[f"{head}.bias"].shape == (5,)
    ref = OfficialStyleLVT(slots=8, dropout=drop).eval()
    ref.load_state_dict(sd, strict=True)
    clip = torch.randn(2, 3, 4, 56, 56)  # 4-frame clips in pairs fill the official 8 slots
    with torch.no_grad():
        torch.testing.assert_close(ref(clip), model(clip), rtol=1e-4, atol=1e-5)


def test_sixteen_frames_fold_into_the_official_eight_slots(tmp_path):
    model = create_model("lvt-test", frames=16, official_border=True).eval()
    _randomise(model, seed=9)
    with torch.no_grad():
        model.temporal_embed.copy_(model.temporal_embed[torch.arange(16) % 8])
    sd = to_official_state_dict(model)
    ref = OfficialStyleLVT(frames=16, slots=8, dropout=0.0).eval()
    ref.load_state_dict(sd, strict=True)
    clip = torch.randn(1, 3, 16, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(ref(clip), model(clip), rtol=1e-4, atol=1e-5)
    path = _save(tmp_path / "ours.pyth", sd)
    back = load_checkpoint(path, model="lvt-test", frames=16)
    torch.testing.assert_close(back.model.temporal_embed, model.temporal_embed, rtol=0, atol=0)


def test_slots_that_do_not_fold_are_refused_unless_the_first_eight_are_taken():
    model = create_model("lvt-test", frames=16).eval()
    _randomise(model, seed=10)
    with pytest.raises(LvtEdgeError, match="do not repeat every 8 frames.*take_first_slots=True"):
        to_official_state_dict(model)
    sd = to_official_state_dict(model, take_first_slots=True)
    torch.testing.assert_close(sd["base_model.temp_embed"][0, :, 0], model.temporal_embed[:8], rtol=0, atol=0)
