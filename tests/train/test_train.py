"""A short training run on an easy clip set: loss falls, the best checkpoint reloads to the same
outputs, training resumes and fine-tunes to new labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvt_edge.data import decode_clips, open_clipset
from lvt_edge.data.synth import write_video
from lvt_edge.errors import LvtEdgeError
from lvt_edge.model.checkpoint import load_checkpoint
from lvt_edge.training import TrainOptions, evaluate, lr_at, train
from lvt_edge.training.augment import augment, to_input

COLOURS = {"red": (0, 0, 220), "green": (0, 200, 0), "blue": (230, 0, 0)}  # BGR


def _colour_set(root, labels, per_class, seed):
    """Classes told apart by colour: easy enough to learn in a few steps."""
    rng = np.random.default_rng(seed)
    for label in labels:
        for i in range(per_class):
            frames = rng.normal(110, 25, (6, 56, 56, 3))
            frames[:, 14:42, 14:42] = np.asarray(COLOURS[label]) + rng.normal(0, 10, (6, 28, 28, 3))
            write_video(root / label / f"{i}.avi", np.clip(frames, 0, 255).astype(np.uint8))
    return root


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("colours")
    return _colour_set(base / "train", COLOURS, 6, 0), _colour_set(base / "val", COLOURS, 2, 1)


OPTS = dict(model="lvt-test", batch_size=3, lr=3e-3, warmup_epochs=0.5, label_smoothing=0.0, seed=0)


def test_loss_falls_and_best_checkpoint_reloads_to_the_same_outputs(sets, tmp_path):
    train_dir, val_dir = sets
    result = train(train_dir, val_dir, tmp_path / "run", TrainOptions(epochs=6, **OPTS), progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.7 * losses[0]
    assert result.best_top1 == max(row["val_top1"] for row in result.history) >= 2 / 3

    ckpt = load_checkpoint(result.best)
    assert ckpt.contract.labels == ("blue", "green", "red") and ckpt.config.num_classes == 3
    # 6-frame clips at 15 FPS sampled to lvt-test's 4 frames: 0.1 s apart, read off the videos
    assert ckpt.contract.frame_interval == pytest.approx(6 / 15 / 4)
    assert ckpt.extra["train_hash"] == open_clipset(train_dir).content_hash
    best_row = next(r for r in result.history if r["epoch"] == ckpt.extra["epoch"])
    val = decode_clips(open_clipset(val_dir, labels=ckpt.contract.labels), ckpt.contract, progress=False)
    loss, top1 = evaluate(ckpt.model, torch.from_numpy(val.frames), torch.from_numpy(val.labels), ckpt.contract)
    assert loss == pytest.approx(best_row["val_loss"], rel=1e-5) and top1 == best_row["val_top1"]
    log = json.loads((tmp_path / "run" / "train_log.json").read_text())
    assert log["history"] == result.history


def test_resume_continues_the_run(sets, tmp_path):
    train_dir, val_dir = sets
    first = train(train_dir, val_dir, tmp_path / "run", TrainOptions(epochs=2, **OPTS), progress=False)
    resumed = train(train_dir, val_dir, tmp_path / "run", TrainOptions(epochs=3, **OPTS),
                    resume=first.last, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    assert resumed.history[:2] == first.history
    with pytest.raises(LvtEdgeError, match="already ran 3 epochs"):
        train(train_dir, val_dir, tmp_path / "run", TrainOptions(epochs=3, **OPTS), resume=resumed.last, progress=False)


def test_finetune_to_new_labels_replaces_the_classifier(sets, tmp_path):
    train_dir, val_dir = sets
    base = train(train_dir, val_dir, tmp_path / "base", TrainOptions(epochs=1, **OPTS), progress=False)
    new_train = tmp_path / "new_train"
    (new_train / "warm").mkdir(parents=True)
    (new_train / "cold").mkdir()
    for clip in sorted((train_dir / "red").iterdir()):
        (new_train / "warm" / clip.name).write_bytes(clip.read_bytes())
    for clip in sorted((train_dir / "blue").iterdir()):
        (new_train / "cold" / clip.name).write_bytes(clip.read_bytes())
    tuned = train(new_train, new_train, tmp_path / "tuned", TrainOptions(epochs=1, **OPTS),
                  finetune=base.best, progress=False)
    ckpt = load_checkpoint(tuned.best)
    assert ckpt.contract.labels == ("cold", "warm") and ckpt.model.head[-1].out_features == 2
    assert ckpt.extra["finetuned_from"] == str(base.best)


def test_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 10, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:])) and lrs[-1] < 0.01


def test_augmentation_keeps_motion_direction():
    """A bright column moving right still moves right after augmentation (no flips by default)."""
    from lvt_edge.contract import ClipContract

    contract = ClipContract(frames=4, size=32, resize=32, labels=("x",))
    frames = torch.zeros(8, 4, 32, 32, 3, dtype=torch.uint8)
    for t in range(4):
        frames[:, t, :, 8 + 4 * t: 10 + 4 * t] = 255
    gen = torch.Generator().manual_seed(0)
    out = augment(frames, contract, gen)
    assert out.shape == to_input(frames, contract).shape
    columns = out.mean(dim=(1, 3)).argmax(dim=-1)  # B x T: brightest column per frame
    assert torch.all(columns[:, 1:] > columns[:, :-1])
    flipped = augment(frames, contract, torch.Generator().manual_seed(1), hflip=True).mean(dim=(1, 3)).argmax(-1)
    assert torch.any(flipped[:, 1:] < flipped[:, :-1])


def test_train_cli(sets, tmp_path, capsys):
    from lvt_edge.cli import main

    train_dir, val_dir = sets
    assert main(["train", "--model", "lvt-test", "--data", str(train_dir), "--val", str(val_dir), "--epochs", "1",
                 "--out", str(tmp_path / "cli"), "--attention", "linear", "-q"]) == 0
    assert "best val top-1" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "cli" / "best").config.attention == "linear"


def test_time_reversal_relabels_partner_classes():
    from lvt_edge.commands.train import parse_pairs
    from lvt_edge.training.augment import reverse_time
    from lvt_edge.training.trainer import partner_index

    partner = partner_index(("left", "right", "still", "other"), parse_pairs("left:right,still:still"))
    assert partner.tolist() == [1, 0, 2, -1]
    frames = torch.arange(4).view(1, 4, 1, 1, 1).expand(64, 4, 2, 2, 3).to(torch.uint8)
    labels = torch.tensor([0, 1, 2, 3] * 16)
    out, new = reverse_time(frames, labels, partner, torch.Generator().manual_seed(0))
    flipped = out[:, 0, 0, 0, 0] == 3
    assert 0 < int(flipped.sum()) < 48 and not flipped[labels == 3].any()
    assert torch.equal(new[flipped], partner[labels[flipped]]) and torch.equal(new[~flipped], labels[~flipped])
    assert torch.equal(frames[0, :, 0, 0, 0], torch.arange(4).to(torch.uint8))  # input untouched
    with pytest.raises(LvtEdgeError, match="lacks: up"):
        partner_index(("left",), (("left", "up"),))
    with pytest.raises(LvtEdgeError, match="not A:B"):
        parse_pairs("left-right")


def test_temporal_init_std_starts_the_embedding_off_zero(sets, tmp_path, monkeypatch):
    import lvt_edge.training.trainer as trainer

    seen, real = [], trainer.make_optimizer
    monkeypatch.setattr(trainer, "make_optimizer",  # see the embedding before any step
                        lambda model, opts: (seen.append(model.temporal_embed.detach().clone()), real(model, opts))[1])
    train_dir, val_dir = sets
    for std in (0.0, 1.0):
        train(train_dir, val_dir, tmp_path / f"std{std}", TrainOptions(epochs=1, temporal_init_std=std, **OPTS),
              progress=False)
    assert torch.count_nonzero(seen[0]) == 0  # the model's own zeros
    assert 0.5 < seen[1].std().item() < 1.5 and seen[1].abs().max() <= 2.0


def test_frame_interval_is_asked_for_when_the_clips_do_not_tell(tmp_path):
    import cv2

    for label in ("a", "b"):
        folder = tmp_path / "frames" / label / "clip0"
        folder.mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((32, 32, 3), 40 * i, np.uint8))
    with pytest.raises(LvtEdgeError, match="--frame-interval"):
        train(tmp_path / "frames", tmp_path / "frames", tmp_path / "run", TrainOptions(epochs=1, **OPTS), progress=False)
    result = train(tmp_path / "frames", tmp_path / "frames", tmp_path / "run",
                   TrainOptions(epochs=1, frame_interval=0.25, **OPTS), progress=False)
    assert load_checkpoint(result.best).contract.frame_interval == 0.25


BAD_OPTIONS = [
    (dict(epochs=0), "--epochs must be a whole number >= 1"),
    (dict(epochs=-3), "--epochs"),
    (dict(batch_size=0), "--batch must"),
    (dict(batch_size=-1), "--batch must"),
    (dict(lr=float("nan")), "--lr must be a number > 0"),
    (dict(lr=0.0), "--lr"),
    (dict(weight_decay=-0.1), "--weight-decay"),
    (dict(weight_decay=float("inf")), "--weight-decay"),
    (dict(warmup_epochs=float("nan")), "--warmup-epochs"),
    (dict(label_smoothing=1.0), r"--label-smoothing must be a number >= 0 and < 1"),
    (dict(label_smoothing=-0.1), "--label-smoothing"),
    (dict(train_size=0), "--train-size"),
    (dict(val_size=-5), "--val-size"),
    (dict(max_bad_fraction=1.5), "--max-bad-fraction"),
    (dict(frame_interval=0.0), "--frame-interval"),
    (dict(seed=-1), "--seed"),
]


@pytest.mark.parametrize("bad,why", BAD_OPTIONS, ids=[next(iter(b)) + "=" + str(next(iter(b.values()))) for b, _ in BAD_OPTIONS])
def test_bad_options_are_refused_before_any_clip_is_read(tmp_path, monkeypatch, bad, why):
    import lvt_edge.training.trainer as trainer

    def never(*a, **k):
        raise AssertionError("clips were read before the options were checked")

    monkeypatch.setattr(trainer, "open_clipset", never)
    monkeypatch.setattr(trainer, "decode_clips", never)
    with pytest.raises(LvtEdgeError, match=why):
        train(tmp_path / "data", tmp_path / "val", tmp_path / "run", TrainOptions(**(OPTS | bad)), progress=False)
    assert not (tmp_path / "run").exists()


def test_train_cli_refuses_zero_epochs_without_claiming_a_checkpoint(sets, tmp_path, capsys):
    from lvt_edge.cli import main

    train_dir, val_dir = sets
    assert main(["train", "--model", "lvt-test", "--data", str(train_dir), "--val", str(val_dir), "--epochs", "0",
                 "--out", str(tmp_path / "cli"), "-q"]) == 1
    captured = capsys.readouterr()
    assert "--epochs must be" in captured.err and "best val top-1" not in captured.out
    assert not (tmp_path / "cli").exists()


def test_output_folder_must_be_a_writable_folder(tmp_path, monkeypatch):
    import errno
    import tempfile

    import lvt_edge.training.trainer as trainer

    monkeypatch.setattr(trainer, "open_clipset", lambda *a, **k: pytest.fail("clips read before --out was checked"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(LvtEdgeError, match="is a file, not a folder"):
        train(tmp_path, tmp_path, tmp_path / "file", TrainOptions(**OPTS), progress=False)

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    with pytest.raises(LvtEdgeError, match="cannot write into --out .*Read-only file system"):
        train(tmp_path, tmp_path, tmp_path / "run", TrainOptions(**OPTS), progress=False)


def test_a_full_disk_keeps_the_last_resumable_state(sets, tmp_path, monkeypatch):
    import errno

    import lvt_edge.training.state as state_module
    from lvt_edge.training.state import load_state

    train_dir, val_dir = sets
    real_save, calls = torch.save, []

    def save_until_the_disk_fills(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == 2:  # epoch 2's state: half written, then ENOSPC
            with open(f, "wb") as fh:
                fh.write(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(state_module.torch, "save", save_until_the_disk_fills)
    run = tmp_path / "run"
    with pytest.raises(LvtEdgeError, match=r"saving epoch 2 .*still holds the state after epoch 1.*--resume .*last\.pt"):
        train(train_dir, val_dir, run, TrainOptions(epochs=3, **OPTS), progress=False)
    monkeypatch.setattr(state_module.torch, "save", real_save)
    assert load_state(run / "last.pt")["info"]["epoch"] == 0  # epoch 1's state, intact
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []
    resumed = train(train_dir, val_dir, run, TrainOptions(epochs=2, **OPTS), resume=run / "last.pt", progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2]
