"""`lvt-edge export`: checkpoint -> verified ONNX with fused FFLA nodes + bundle.json."""

from __future__ import annotations

import argparse
import shlex


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.bundle import DEFAULT_WORKDIR
    from lvt_edge.commands.common import add_renamed

    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint (NAME, NAME.safetensors or NAME.json; official .pth too), or `demo` / "
                        "`demo-causal` for a bundled model; default: the bundled demo model (or, with "
                        "--random-init, none)")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="model config (`lvt-edge models`): the config to build with --random-init, or the config "
                        "of an official checkpoint (default lvt-base)")
    p.add_argument("--random-init", action="store_true",
                   help="export --model untrained, with seeded random weights (for sizes, latency and pipeline "
                        "tests, not predictions); bundle.json records source.random_init. Labels: the synthetic "
                        "motion classes, or class_0.. with --num-classes; frame interval 2/15 s (the synthetic "
                        "clips' 15 fps at the contract's stride 2), which live streams sample at")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="--random-init: weight seed (default 0)")
    p.add_argument("--num-classes", type=int, default=None, metavar="N",
                   help="--random-init: N classes named class_0.. (default: the 11 synthetic motion classes)")
    p.add_argument("-o", "--out", dest="workdir", default=DEFAULT_WORKDIR,
                   help=f"bundle folder to write model.onnx and bundle.json into (default: {DEFAULT_WORKDIR})")
    for old in ("--output", "--workdir"):
        add_renamed(p, old, "-o/--out", "workdir")
    p.add_argument("--simplifier", choices=("onnxslim", "onnxsim", "none"), default="onnxslim",
                   help="graph simplifier (default: onnxslim, which keeps MatMul for quantization)")
    p.add_argument("--no-fuse", dest="fuse", action="store_false",
                   help="plain ONNX ops only, no lvt_edge::FFLinearAttention nodes (for tools without local functions)")
    p.add_argument("--infer-architecture", action="store_true",
                   help="official checkpoints: build the network the weights describe where it differs from "
                        "the model config (default: refuse, naming each difference)")
    p.add_argument("--opset", type=int, default=20, help="ONNX opset, >= 19 (default: 20)")
    p.add_argument("--verify-clips", dest="verify_clips", default=None, metavar="CLIPSET",
                   help="also verify ONNX Runtime against PyTorch on the clips of this clip set")


def run(args: argparse.Namespace) -> int:
    import json

    from lvt_edge.bundle import read_bundle, untrained_note
    from lvt_edge.export import onnx_from_checkpoint
    from lvt_edge.export.pipeline import random_init_checkpoint

    _check_source_args(args)
    source, model = args.checkpoint, args.model
    if args.random_init:
        source = random_init_checkpoint(args.model, seed=args.seed or 0, num_classes=args.num_classes)
        model = None
    path = onnx_from_checkpoint(source, args.workdir, simplifier=args.simplifier, fuse=args.fuse,
                                opset=args.opset, verify_clipset=args.verify_clips,
                                infer_architecture=args.infer_architecture, model=model)
    exp = read_bundle(args.workdir)["export"]
    ver = exp["verification"]
    print(f"wrote {path} ({exp['ffla_nodes']} FFLinearAttention nodes, opset {exp['opset']}, "
          f"simplifier {exp['simplifier']}, {exp['export_time_s']:.1f} s)")
    print(f"verified vs PyTorch: max abs logit diff {ver['max_abs_diff']:.2e}, top-1 agreement "
          f"{ver['top1_agreement']:.0%} ({json.dumps(ver['tolerance'])})")
    note = untrained_note(read_bundle(args.workdir))
    if note:
        print(note)
    from lvt_edge import console

    console.done(f"{path} and bundle.json", f"lvt-edge build {shlex.quote(str(args.workdir))}   (fp32/fp16/int8 variants, verified)")
    return 0


def _check_source_args(args: argparse.Namespace) -> None:
    """Which model to export: a checkpoint, the demo model, or --model NAME --random-init."""
    from lvt_edge.errors import LvtEdgeError

    if args.random_init:
        if args.model is None:
            raise LvtEdgeError("--random-init needs the config to build: add --model NAME (see `lvt-edge models`), "
                               "e.g. `lvt-edge export --model lvt-tiny --random-init`")
        if args.checkpoint is not None:
            raise LvtEdgeError(f"--random-init exports untrained weights, but a checkpoint ({args.checkpoint}) was "
                               "given too: drop one of them")
        if args.infer_architecture:
            raise LvtEdgeError("--infer-architecture reads an official checkpoint's weights; drop it with --random-init")
        return
    given = [f for f, v in (("--seed", args.seed), ("--num-classes", args.num_classes)) if v is not None]
    if given:
        raise LvtEdgeError(f"{' and '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} with --random-init: add "
                           f"`--model NAME --random-init`, or drop {' and '.join(given)}")
    if args.model is not None and args.checkpoint is None:
        raise LvtEdgeError(f"--model {args.model} needs weights: add --random-init to export it untrained "
                           f"(`lvt-edge export --model {args.model} --random-init`), or pass a checkpoint "
                           f"(`lvt-edge export CKPT --model {args.model}`)")
