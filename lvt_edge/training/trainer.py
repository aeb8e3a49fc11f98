"""Training and fine-tuning an LVT model on clip sets.

AdamW, linear warm-up then cosine decay (per step), label smoothing, motion-safe augmentation.
The training set is decoded once into memory as uint8 so epochs cost only the model's time.
Each epoch writes OUT/last.pt (resumable state); the best epoch by validation top-1 is saved
as the checkpoint OUT/best.{safetensors,json}; OUT/train_log.json holds the history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import math
import numbers
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from lvt_edge.contract import ClipContract
from lvt_edge.data import decode_clips, measure_frame_interval, open_clipset
from lvt_edge import console
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import write_json_atomic
from lvt_edge.model import LVT, LVTConfig, create_model
from lvt_edge.model.checkpoint import contract_for, load_checkpoint, load_state_dict_checked, save_checkpoint
from lvt_edge.training.augment import augment, reverse_time, to_input
from lvt_edge.training.state import load_state, save_state


@dataclass
class TrainOptions:
    """What a training run does. `epochs` is the total, also when resuming."""

    model: str | None = None  # None: lvt-tiny from scratch, the checkpoint's own config when fine-tuning
    attention: str | None = None  # None: the config's own ("ffla")
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    hflip: bool = False
    seed: int = 0
    train_size: int | None = None
    val_size: int | None = None
    max_bad_fraction: float = 0.05
    reverse_pairs: tuple[tuple[str, str], ...] = ()  # classes that are each other played backwards
    # The model zero-initialises the temporal embedding (as the official code does); from scratch
    # on small data that leaves the network blind to frame order for many epochs, so training
    # can start it from N(0, std^2) instead. 0 keeps the zeros.
    temporal_init_std: float = 0.0
    # Seconds between the model's frames (recorded in the clip contract; live streams sample by
    # it). None: measured from the training videos' frame rates, else kept from the checkpoint.
    frame_interval: float | None = None
    # Causal models: clips per training sequence. The state runs on across the clips of a
    # sequence, as in a stream whose class changes, and each clip's last frame is scored against
    # its own label; 1 trains on clips alone, each from a zero state, which never shows the model
    # the full, stale state it carries in a long stream.
    chain: int = 1

    def problems(self) -> list[str]:
        """Every option out of range, naming its flag (checked before any clip is read)."""
        out = []

        def whole(name: str, value, low: int, none_ok: bool = False) -> None:
            if value is None and none_ok:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                out.append(f"--{name} must be a whole number >= {low} (got {value!r})")

        def real(name: str, value, low: float, high: float | None = None, *, low_open: bool = False,
                 high_open: bool = True, none_ok: bool = False) -> None:
            if value is None and none_ok:
                return
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            ok = ok and (value > low if low_open else value >= low)
            if ok and high is not None:
                ok = value < high if high_open else value <= high
            if not ok:
                lo = f"{'>' if low_open else '>='} {low:g}"
                hi = "" if high is None else f" and {'<' if high_open else '<='} {high:g}"
                out.append(f"--{name} must be a number {lo}{hi} (got {value!r})")

        whole("epochs", self.epochs, 1)
        whole("batch", self.batch_size, 1)
        real("lr", self.lr, 0.0, low_open=True)
        real("weight-decay", self.weight_decay, 0.0)
        real("warmup-epochs", self.warmup_epochs, 0.0)
        real("label-smoothing", self.label_smoothing, 0.0, 1.0)
        real("temporal-init-std", self.temporal_init_std, 0.0)
        real("frame-interval", self.frame_interval, 0.0, low_open=True, none_ok=True)
        real("max-bad-fraction", self.max_bad_fraction, 0.0, 1.0, high_open=False)
        whole("train-size", self.train_size, 1, none_ok=True)
        whole("val-size", self.val_size, 1, none_ok=True)
        whole("seed", self.seed, 0)
        whole("chain", self.chain, 1)
        if isinstance(self.chain, int) and isinstance(self.batch_size, int) and self.chain > self.batch_size:
            out.append(f"--chain {self.chain} needs --batch of at least {self.chain} clips")
        return out

    def check(self) -> None:
        """Raise an LvtEdgeError listing every option out of range."""
        problems = self.problems()
        if problems:
            raise LvtEdgeError("invalid training options: " + "; ".join(problems))


@dataclass
class TrainResult:
    best: Path  # checkpoint stem (best.safetensors + best.json)
    best_top1: float
    last: Path
    history: list[dict[str, Any]] = field(default_factory=list)


def train(data: str | os.PathLike, val: str | os.PathLike, out_dir: str | os.PathLike,
          options: TrainOptions | None = None, *, resume: str | os.PathLike | None = None,
          finetune: str | os.PathLike | None = None, progress: bool = True) -> TrainResult:
    """Train on clip set `data`, select by top-1 on clip set `val`, write into `out_dir`."""
    opts = options or TrainOptions()
    opts.check()
    if resume and finetune:
        raise LvtEdgeError("use --resume or --finetune, not both (resume continues a run, fine-tune starts one)")
    out = writable_folder(out_dir)
    state = load_state(resume) if resume else None
    train_set = open_clipset(data)
    if state is not None:
        model, contract = model_from_state(state)
        train_set = open_clipset(data, labels=contract.labels)
    elif finetune:
        model, contract = model_for_finetune(finetune, train_set.labels, model=opts.model)
    else:
        model = create_model(opts.model or "lvt-tiny", num_classes=len(train_set.labels),
                             **({"attention": opts.attention} if opts.attention else {}))
        if opts.temporal_init_std > 0:
            if model.temporal_embed is None:
                raise LvtEdgeError(f"--temporal-init-std applies to window models; {opts.model} is causal and has "
                                   "no temporal embedding (drop the option)")
            with torch.no_grad():
                torch.manual_seed(opts.seed)
                std = opts.temporal_init_std
                nn.init.trunc_normal_(model.temporal_embed, std=std, a=-2 * std, b=2 * std)
        contract = contract_for(model.cfg, train_set.labels)
    if opts.chain > 1 and not model.cfg.causal:
        raise LvtEdgeError(f"--chain runs clips as one stream, which only a causal model does; {model.cfg.name} is a "
                           "window model (use a causal config such as lvt-tiny-causal, or drop --chain)")
    if state is None:
        contract = contract.replace(frame_interval=training_frame_interval(train_set, contract, opts.frame_interval))
    val_set = open_clipset(val, labels=contract.labels)
    train_set = train_set.subset(opts.train_size, opts.seed)
    val_set = val_set.subset(opts.val_size, opts.seed)

    train_data = decode_clips(train_set, contract, max_bad_fraction=opts.max_bad_fraction, progress=progress)
    val_data = decode_clips(val_set, contract, max_bad_fraction=opts.max_bad_fraction, progress=progress)
    x_train, y_train = torch.from_numpy(train_data.frames), torch.from_numpy(train_data.labels)
    x_val, y_val = torch.from_numpy(val_data.frames), torch.from_numpy(val_data.labels)

    torch.manual_seed(opts.seed)
    gen = torch.Generator().manual_seed(opts.seed)
    optimizer = make_optimizer(model, opts)
    steps_per_epoch = math.ceil(len(x_train) / opts.batch_size)
    total_steps, warmup_steps = opts.epochs * steps_per_epoch, round(opts.warmup_epochs * steps_per_epoch)
    start_epoch, step, best_top1, history = 0, 0, -1.0, []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        info = state["info"]
        start_epoch, step, best_top1, history = info["epoch"] + 1, info["step"], info["best_top1"], list(info["history"])
        if start_epoch >= opts.epochs:
            raise LvtEdgeError(f"{resume} already ran {start_epoch} epochs; pass --epochs greater than {start_epoch} to continue")

    record = {
        "model": model.cfg.name, "attention": model.cfg.attention, "options": dataclasses.asdict(opts),
        "train_hash": train_set.content_hash, "train_clips": len(x_train), "train_skipped": len(train_data.skipped),
        "val_hash": val_set.content_hash, "val_clips": len(x_val), "val_skipped": len(val_data.skipped),
        "finetuned_from": str(finetune) if finetune else None,
    }
    partner = partner_index(contract.labels, opts.reverse_pairs)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=opts.label_smoothing)
    for epoch in range(start_epoch, opts.epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        bar = _bar(range(steps_per_epoch), f"epoch {epoch + 1}/{opts.epochs}", progress)
        for i in bar:
            idx = order[i * opts.batch_size:(i + 1) * opts.batch_size]
            idx = idx[: len(idx) - len(idx) % opts.chain] if len(idx) >= opts.chain else idx[:0]
            for g in optimizer.param_groups:
                g["lr"] = lr_at(step, total_steps, warmup_steps, opts.lr)
            if len(idx) == 0:  # a last batch smaller than one chain
                step += 1
                continue
            x, y = reverse_time(x_train[idx], y_train[idx], partner, gen)
            x = augment(x, contract, gen, hflip=opts.hflip)
            logits = chained_logits(model, x, opts.chain) if opts.chain > 1 else model(x)
            loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        train_s = time.perf_counter() - t0
        val_loss, val_top1 = evaluate(model, x_val, y_val, contract)
        row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_top1": correct / seen,
               "val_loss": val_loss, "val_top1": val_top1, "train_seconds": round(train_s, 2),
               "lr": optimizer.param_groups[0]["lr"]}
        history.append(row)
        console.note(f"epoch {epoch + 1}/{opts.epochs}: loss {row['train_loss']:.4f} train top-1 {row['train_top1']:.3f} "
                     f"val loss {val_loss:.4f} val top-1 {val_top1:.4f} ({train_s:.0f} s)")
        with _saving(out, epoch):
            if val_top1 > best_top1:
                best_top1 = val_top1
                save_checkpoint(out / "best", model, contract, extra={**record, "epoch": epoch + 1, "val_top1": val_top1})
            save_state(out / "last.pt", model=model, optimizer=optimizer, gen=gen, info={
                "config": model.cfg.to_dict(), "contract": contract.to_dict(), "epoch": epoch, "step": step,
                "best_top1": best_top1, "history": history, "options": dataclasses.asdict(opts)})
            write_json_atomic(out / "train_log.json", {**record, "best_val_top1": best_top1, "history": history})
    return TrainResult(out / "best", best_top1, out / "last.pt", history)


def chained_logits(model: LVT, clips: torch.Tensor, chain: int) -> torch.Tensor:
    """A causal model's logits at the last frame of each clip when every `chain` consecutive clips
    run as one stream: B x 3 x T x H x W (B a multiple of chain) -> B x classes, in clip order."""
    b, c, t, h, w = clips.shape
    seq = clips.view(b // chain, chain, c, t, h, w).transpose(1, 2).reshape(b // chain, c, chain * t, h, w)
    per_frame, _ = model.forward_stream(seq)
    return per_frame[:, t - 1 :: t].reshape(b, -1)


def writable_folder(out_dir: str | os.PathLike) -> Path:
    """The output folder, made if missing and checked writable before any work starts."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LvtEdgeError(f"--out {out} is a file, not a folder; choose a folder for the training outputs")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise LvtEdgeError(f"cannot write into --out {out} ({e.strerror or e}); choose a writable folder") from e
    return out


@contextlib.contextmanager
def _saving(out: Path, epoch: int):
    """Writes of one epoch's outputs; a failure (a full disk) says what is still intact. Every
    write is atomic, so last.pt is always the last complete epoch's state."""
    try:
        yield
    except (LvtEdgeError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        last = out / "last.pt"
        kept = (f"{last} still holds the state after epoch {epoch} (the previous one): free some space and "
                f"continue with --resume {last}") if last.is_file() and epoch > 0 else "no epoch was saved yet"
        raise LvtEdgeError(f"saving epoch {epoch + 1} into {out} failed: {e}; {kept}") from e


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to zero at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def partner_index(labels: tuple[str, ...], pairs) -> torch.Tensor:
    """Class index -> index of its time-reversed class (-1: none) from (a, b) label pairs."""
    index = {label: i for i, label in enumerate(labels)}
    partner = torch.full((len(labels),), -1, dtype=torch.long)
    for a, b in pairs:
        missing = [x for x in (a, b) if x not in index]
        if missing:
            raise LvtEdgeError(f"--reverse-pairs names labels the clip set lacks: {', '.join(missing)}")
        partner[index[a]], partner[index[b]] = index[b], index[a]
    return partner


def make_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases, norms and the temporal embedding (1-D or embedding tensors)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name == "temporal_embed" else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": opts.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=opts.lr)


@torch.no_grad()
def evaluate(model: nn.Module, frames: torch.Tensor, labels: torch.Tensor, contract: ClipContract,
             batch_size: int = 64) -> tuple[float, float]:
    """(mean cross-entropy, top-1) of `model` on uint8 clips."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(frames), batch_size):
        logits = model(to_input(frames[i:i + batch_size], contract))
        y = labels[i:i + batch_size]
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    return loss_sum / len(frames), correct / len(frames)


def training_frame_interval(train_set, contract: ClipContract, given: float | None) -> float:
    """The contract's frame interval for a new run: given, measured from the clips, or inherited."""
    if given is not None:
        return given
    measured = measure_frame_interval(train_set.clips, contract)
    if measured is not None:
        return measured
    if contract.frame_interval is not None:
        return contract.frame_interval
    raise LvtEdgeError(
        f"cannot tell how far apart in time the model's frames are: the clips in {train_set.root} carry no "
        "frame rate (frame folders?). Pass --frame-interval SECONDS (e.g. 0.133 when 8 frames cover "
        "about 1 s); live streams sample frames by it"
    )


def model_from_state(state: dict[str, Any]) -> tuple[LVT, ClipContract]:
    info = state["info"]
    model = LVT(LVTConfig.from_dict(info["config"]))
    load_state_dict_checked(model, state["model"], source="training state")
    return model, ClipContract.from_dict(info["contract"])


def model_for_finetune(checkpoint: str | os.PathLike, labels: tuple[str, ...],
                       model: str | None = None) -> tuple[LVT, ClipContract]:
    """A checkpoint's model with a new classifier (last Linear) when the labels differ.

    `model` None keeps the checkpoint's own config. A config of the same size that is causal where
    the checkpoint is a window model (or the other way round) converts it (`causal_from_window`,
    `window_from_causal`); any other config is refused, as its weights would not fit."""
    from lvt_edge.model import get_config

    ckpt = load_checkpoint(checkpoint)
    if model is not None and model != ckpt.config.name:
        target = get_config(model)
        if target.causal == ckpt.config.causal:
            other = "window" if ckpt.config.causal else "causal"
            raise LvtEdgeError(
                f"{checkpoint} holds a {ckpt.config.name} model and --model asks for {model}: fine-tuning keeps the "
                f"checkpoint's config. Drop --model, or name the {other} config of the same size to convert it")
        convert = causal_from_window if target.causal else window_from_causal
        ckpt.model = convert(ckpt.model, target, source=str(checkpoint))
    model = ckpt.model
    if tuple(ckpt.contract.labels) != tuple(labels):
        old = model.head[-1]
        model.head[-1] = nn.Linear(old.in_features, len(labels))
        nn.init.trunc_normal_(model.head[-1].weight, std=0.02)
        nn.init.zeros_(model.head[-1].bias)
        model.cfg = model.cfg.replace(num_classes=len(labels))
    return model, ckpt.contract.replace(frames=model.cfg.frames, labels=tuple(labels))


_ARCH = ("embed_dim", "num_heads", "depth", "img_size", "patch_size", "patch_stride", "mlp_ratio", "head_hidden",
         "attention", "gate", "shift_div", "neighbour")


def _same_size(model: LVT, target: LVTConfig, source: str, counterpart: str) -> None:
    differ = [f"{k} {getattr(model.cfg, k)} vs {getattr(target, k)}" for k in _ARCH
              if getattr(model.cfg, k) != getattr(target, k)]
    if differ:
        raise LvtEdgeError(f"{source} ({model.cfg.name}) cannot become {target.name}: "
                           f"{', '.join(differ)}; fine-tune into the {counterpart} config of the same size")


def causal_from_window(window: LVT, target: LVTConfig, *, source: str = "the checkpoint") -> LVT:
    """The causal model `target` (a causal config) with a window model's weights: every weight has
    the same name and shape except the temporal embedding, which a causal model does not have."""
    _same_size(window, target, source, "causal")
    cfg = window.cfg.replace(name=target.name, causal=True, horizon=target.horizon)
    model = LVT(cfg)
    state = {k: v for k, v in window.state_dict().items() if k != "temporal_embed"}
    load_state_dict_checked(model, state, source=source)
    return model.train(window.training)


def window_from_causal(causal: LVT, target: LVTConfig, *, source: str = "the checkpoint") -> LVT:
    """The window model `target` (a window config) with a causal model's weights. The temporal
    embedding, which the causal model does not have, starts at zero, as in a window model trained
    from scratch; the attention then sees the whole clip instead of the frames before each one,
    so the model needs fine-tuning in its new config before it is any good."""
    _same_size(causal, target, source, "window")
    cfg = causal.cfg.replace(name=target.name, causal=False, horizon=None, frames=target.frames)
    model = LVT(cfg)
    state = {**causal.state_dict(), "temporal_embed": model.temporal_embed.detach().clone()}
    load_state_dict_checked(model, state, source=source)
    return model.train(causal.training)


def _bar(it, desc: str, enabled: bool):
    from lvt_edge.console import bar

    return bar(it, desc, "batch", enabled=enabled)


__all__ = ["TrainOptions", "TrainResult", "causal_from_window", "window_from_causal", "evaluate", "lr_at", "make_optimizer", "train"]
