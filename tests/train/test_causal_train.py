"""Training the causal variant: from scratch, and fine-tuned from a window checkpoint (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lvt_edge.data.synth import write_video
from lvt_edge.errors import LvtEdgeError
from lvt_edge.model import create_model, get_config
from lvt_edge.model.checkpoint import contract_for, load_checkpoint, save_checkpoint
from lvt_edge.training import TrainOptions, train
from lvt_edge.training.trainer import causal_from_window, chained_logits, model_for_finetune, window_from_causal

COLOURS = {"red": (0, 0, 220), "green": (0, 200, 0), "blue": (230, 0, 0)}  # BGR


def _colour_set(root, per_class, seed):
    rng = np.random.default_rng(seed)
    for label, bgr in COLOURS.items():
        for i in range(per_class):
            frames = rng.normal(110, 25, (8, 48, 48, 3))
            frames[:, 12:36, 12:36] = np.asarray(bgr) + rng.normal(0, 10, (8, 24, 24, 3))
            write_video(root / label / f"{i}.avi", np.clip(frames, 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("colours-causal")
    return _colour_set(base / "train", 5, 0), _colour_set(base / "val", 2, 1)


OPTS = dict(batch_size=5, lr=3e-3, warmup_epochs=0.5, label_smoothing=0.0, seed=0)


def test_causal_from_window_keeps_every_weight_but_the_frame_slots():
    torch.manual_seed(0)
    window = create_model("lvt-test")
    causal = causal_from_window(window, get_config("lvt-test", causal=True, horizon=3))
    assert causal.cfg.causal and causal.cfg.time_horizon == 3 and causal.temporal_embed is None
    own = causal.state_dict()
    for k, v in window.state_dict().items():
        if k != "temporal_embed":
            assert torch.equal(own[k], v), k


def test_causal_from_window_refuses_another_size():
    with pytest.raises(LvtEdgeError, match="cannot become lvt-tiny-causal"):
        causal_from_window(create_model("lvt-test"), get_config("lvt-tiny-causal"))


def test_window_from_causal_keeps_every_weight_and_starts_the_frame_slots_at_zero():
    torch.manual_seed(0)
    causal = create_model("lvt-test", causal=True, horizon=3)
    window = window_from_causal(causal, get_config("lvt-test"))
    assert not window.cfg.causal and window.cfg.horizon is None and window.cfg.frames == get_config("lvt-test").frames
    assert torch.equal(window.temporal_embed, torch.zeros_like(window.temporal_embed))
    own = window.state_dict()
    for k, v in causal.state_dict().items():
        assert torch.equal(own[k], v), k
    # and back: the causal model again, weight for weight
    again = causal_from_window(window, causal.cfg)
    assert again.cfg == causal.cfg
    for k, v in causal.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_window_from_causal_refuses_another_size():
    with pytest.raises(LvtEdgeError, match="cannot become lvt-tiny: .*window config of the same size"):
        window_from_causal(create_model("lvt-test", causal=True), get_config("lvt-tiny"))


def test_finetune_keeps_the_checkpoint_config_unless_model_names_its_counterpart(tmp_path):
    torch.manual_seed(0)
    causal = create_model("lvt-tiny-causal")
    labels = tuple(f"c{i}" for i in range(causal.cfg.num_classes))
    stem = tmp_path / "causal"
    save_checkpoint(stem, causal, contract_for(causal.cfg, labels))
    kept, _ = model_for_finetune(stem, labels)  # no --model: never a silent conversion
    assert kept.cfg.causal and kept.cfg.name == "lvt-tiny-causal"
    window, contract = model_for_finetune(stem, labels, model="lvt-tiny")
    assert not window.cfg.causal and window.temporal_embed is not None and contract.frames == window.cfg.frames
    with pytest.raises(LvtEdgeError, match="cannot become lvt-small: embed_dim 64 vs 256"):
        model_for_finetune(stem, labels, model="lvt-small")  # window, but another size
    small = create_model("lvt-test")
    save_checkpoint(tmp_path / "window", small, contract_for(small.cfg, labels[: small.cfg.num_classes]))
    with pytest.raises(LvtEdgeError, match="holds a lvt-test model and --model asks for lvt-tiny: .*Drop --model"):
        model_for_finetune(tmp_path / "window", labels, model="lvt-tiny")


def test_train_a_causal_model_and_finetune_one_from_a_window_checkpoint(sets, tmp_path):
    train_dir, val_dir = sets
    scratch = train(train_dir, val_dir, tmp_path / "scratch", TrainOptions(model="lvt-tiny-causal", epochs=4, **OPTS),
                    progress=False)
    losses = [r["train_loss"] for r in scratch.history]
    assert losses[-1] < 0.8 * losses[0]
    ckpt = load_checkpoint(scratch.best)
    assert ckpt.config.causal and ckpt.config.name == "lvt-tiny-causal" and ckpt.model.temporal_embed is None

    window = train(train_dir, val_dir, tmp_path / "window", TrainOptions(model="lvt-tiny", epochs=1, **OPTS),
                   progress=False)
    tuned = train(train_dir, val_dir, tmp_path / "tuned", TrainOptions(model="lvt-tiny-causal", epochs=1, **OPTS),
                  finetune=window.best, progress=False)
    ckpt = load_checkpoint(tuned.best)
    assert ckpt.config.causal and ckpt.extra["finetuned_from"] == str(window.best)


def test_temporal_init_is_refused_for_a_causal_model(sets, tmp_path):
    train_dir, val_dir = sets
    with pytest.raises(LvtEdgeError, match="no temporal embedding"):
        train(train_dir, val_dir, tmp_path / "x", TrainOptions(model="lvt-tiny-causal", epochs=1,
                                                               temporal_init_std=1.0, **OPTS), progress=False)


def test_chained_logits_score_each_clip_of_a_stream_at_its_last_frame():
    torch.manual_seed(0)
    model = create_model("lvt-test", causal=True).eval()
    clips = torch.randn(4, 3, 4, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(chained_logits(model, clips, 1), model(clips))
        got = chained_logits(model, clips, 2)
        stream = model.forward_stream(torch.cat([clips[2], clips[3]], dim=1)[None])[0][0]
        torch.testing.assert_close(got[2], stream[3])
        torch.testing.assert_close(got[3], stream[7])
        assert not torch.allclose(got[3], model(clips[3:4])[0])  # the second clip carries the first's state


def test_chained_training_runs_and_is_refused_for_window_models(sets, tmp_path):
    train_dir, val_dir = sets
    opts = {**OPTS, "batch_size": 6}
    result = train(train_dir, val_dir, tmp_path / "chain", TrainOptions(model="lvt-tiny-causal", epochs=2, chain=3, **opts),
                   progress=False)
    assert load_checkpoint(result.best).extra["options"]["chain"] == 3
    with pytest.raises(LvtEdgeError, match="only a causal model"):
        train(train_dir, val_dir, tmp_path / "w", TrainOptions(model="lvt-tiny", epochs=1, chain=2, **opts),
              progress=False)
    with pytest.raises(LvtEdgeError, match="--batch of at least"):
        TrainOptions(model="lvt-tiny-causal", chain=8, batch_size=4).check()
