"""`lvt-edge export`: checkpoint -> verified ONNX with fused FFLA nodes + bundle.json."""

from __future__ import annotations

import argparse


def register(p: argparse.ArgumentParser) -> None:
    from lvt_edge.bundle import DEFAULT_WORKDIR

    p.add_argument("checkpoint", nargs="?", default=None,
                   help="checkpoint (NAME, NAME.safetensors or NAME.json; official .pth too); default: the bundled demo model")
    p.add_argument("-o", "--output", "--workdir", dest="workdir", default=DEFAULT_WORKDIR,
                   help=f"bundle folder to write model.onnx and bundle.json into (default: {DEFAULT_WORKDIR})")
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

    from lvt_edge.bundle import read_bundle
    from lvt_edge.export import onnx_from_checkpoint

    path = onnx_from_checkpoint(args.checkpoint, args.workdir, simplifier=args.simplifier, fuse=args.fuse,
                                opset=args.opset, verify_clipset=args.verify_clips,
                                infer_architecture=args.infer_architecture)
    exp = read_bundle(args.workdir)["export"]
    ver = exp["verification"]
    print(f"wrote {path} ({exp['ffla_nodes']} FFLinearAttention nodes, opset {exp['opset']}, "
          f"simplifier {exp['simplifier']}, {exp['export_time_s']:.1f} s)")
    print(f"verified vs PyTorch: max abs logit diff {ver['max_abs_diff']:.2e}, top-1 agreement "
          f"{ver['top1_agreement']:.0%} ({json.dumps(ver['tolerance'])})")
    return 0
