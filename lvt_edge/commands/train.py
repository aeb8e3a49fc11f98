"""`lvt-edge train`: train or fine-tune an LVT model on a clip set."""

from __future__ import annotations

import argparse

BUNDLED_DEMO = "<the bundled demo model>"  # what a bare --finetune means


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.commands.common import add_renamed

    p.add_argument("--model", help="model config (see `lvt-edge models`). Default: lvt-tiny from scratch, the "
                   "checkpoint's own config with --finetune; there, the causal config of the same size (e.g. "
                   "lvt-tiny-causal) converts a window checkpoint and the window one (lvt-tiny) a causal checkpoint")
    p.add_argument("--attention", choices=("ffla", "linear", "softmax"), default=None,
                   help="attention variant (default: the config's, ffla)")
    p.add_argument("--data", required=True, help="training clip set (folder per class, manifest, or folder with one)")
    p.add_argument("--val", required=True, help="validation clip set; the best epoch by its top-1 is kept")
    p.add_argument("--epochs", type=int, default=10, help="total epochs, also when resuming (default 10)")
    p.add_argument("--out", required=True, help="output folder: best.safetensors/.json, last.pt, train_log.json")
    p.add_argument("--resume", metavar="STATE", default=None, help="continue from a run's last.pt")
    p.add_argument("--finetune", metavar="CKPT", nargs="?", const=BUNDLED_DEMO, default=None,
                   help="start from this checkpoint; a new classifier is made when the labels differ. "
                        "--finetune alone starts from the bundled demo model, which already tells motion "
                        "directions apart (training from scratch on small sets often does not); "
                        "--finetune demo-causal from the bundled causal one")
    p.add_argument("--batch", type=int, default=16, help="clips per training step (default 16)")
    add_renamed(p, "--batch-size", "--batch", "batch", type=int)
    p.add_argument("--lr", type=float, default=1e-3, help="peak AdamW learning rate (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    p.add_argument("--warmup-epochs", type=float, default=1.0, help="linear warm-up length (default 1)")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="default 0.1")
    p.add_argument("--hflip", action="store_true",
                   help="random horizontal flips (off by default: they swap left and right motion)")
    p.add_argument("--reverse-pairs", default=None, metavar="A:B,C:D|synth",
                   help="classes that are each other played backwards (A:A for a class that is its own "
                        "reverse); half of their clips are reversed and relabelled. `synth`: the synthetic motion pairs")
    p.add_argument("--temporal-init-std", type=float, default=0.0, metavar="STD",
                   help="start the temporal embedding from N(0, STD^2) instead of zeros (from-scratch "
                        "training on small sets learns frame order much sooner; the demo model uses 1.0)")
    p.add_argument("--frame-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between the model's frames, recorded for live streams (default: measured "
                        "from the training videos' frame rates, else the fine-tuned checkpoint's)")
    p.add_argument("--train-size", type=int, default=None, help="class-balanced subset of the training set")
    p.add_argument("--val-size", type=int, default=None, help="class-balanced subset of the validation set")
    p.add_argument("--max-bad-fraction", type=float, default=0.05,
                   help="fail when more than this fraction of clips is unreadable (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, order and augmentation (default 0)")
    p.add_argument("--chain", type=int, default=1, metavar="N",
                   help="causal models: clips per training sequence; the carried state runs across them as in "
                        "a stream whose class changes (default 1)")
    add_renamed(p, "--no-progress", "-q/--quiet", "verbosity", nargs=0, const=0)


def run(args: argparse.Namespace) -> int:
    from lvt_edge.training import TrainOptions, train

    opts = TrainOptions(
        model=args.model, attention=args.attention, epochs=args.epochs, batch_size=args.batch,
        lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing, hflip=args.hflip, seed=args.seed,
        reverse_pairs=parse_pairs(args.reverse_pairs),
        temporal_init_std=args.temporal_init_std, frame_interval=args.frame_interval, train_size=args.train_size, val_size=args.val_size, max_bad_fraction=args.max_bad_fraction,
        chain=args.chain,
    )
    opts.check()  # before anything is loaded or decoded
    finetune = args.finetune
    if finetune is not None:
        from lvt_edge.demo import demo_checkpoint, resolve_checkpoint

        finetune = demo_checkpoint() if finetune == BUNDLED_DEMO else resolve_checkpoint(finetune)
    result = train(args.data, args.val, args.out, opts, resume=args.resume, finetune=finetune,
                   progress=True)
    print(f"best val top-1 {result.best_top1:.4f}: checkpoint {result.best}.safetensors (+ .json); "
          f"resume with --resume {result.last}")
    import shlex

    from lvt_edge import console

    console.done(f"checkpoint {result.best}.safetensors",
                 f"lvt-edge build DIR --checkpoint {shlex.quote(str(result.best))}   (export and build in one step)")
    return 0


def parse_pairs(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    if text == "synth":
        from lvt_edge.data.synth import REVERSED_PAIRS

        return REVERSED_PAIRS
    pairs = []
    for item in text.split(","):
        a, sep, b = item.strip().partition(":")
        if not sep or not a or not b:
            from lvt_edge.errors import LvtEdgeError

            raise LvtEdgeError(f"--reverse-pairs: {item!r} is not A:B; write e.g. left:right,up:down")
        pairs.append((a, b))
    return tuple(pairs)
