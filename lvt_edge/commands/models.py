"""`lvt-edge models`: the registered configs with their sizes and costs."""

from __future__ import annotations

import argparse


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("--num-classes", type=int, default=None, help="count parameters for this many classes (default: each config's own)")


def run(args: argparse.Namespace) -> int:
    import torch

    from lvt_edge.model import get_config, list_configs
    from lvt_edge.model.flops import count_flops, count_params
    from lvt_edge.model.lvt import LVT

    rows = []
    for name in list_configs():
        cfg = get_config(name)
        if args.num_classes is not None:
            cfg = cfg.replace(num_classes=args.num_classes)
        with torch.device("meta"):
            params = count_params(LVT(cfg))
        flops = count_flops(cfg)
        rows.append((name, f"{cfg.frames}x{cfg.img_size}^2", f"{cfg.embed_dim}/{cfg.num_heads}/{cfg.depth}",
                     str(cfg.num_classes), f"{params / 1e6:.2f}", f"{flops / 2e9:.2f}", f"{flops / 1e9:.2f}"))
    head = ("model", "clip (TxHW)", "C/heads/depth", "classes", "params (M)", "GMACs/clip", "GFLOPs/clip")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print("\nGMACs: multiply-adds per clip (the LVT paper's 'FLOPs'); GFLOPs counts 2 per multiply-add.")
    from lvt_edge import console

    console.done(f"{len(rows)} configs", "lvt-edge export --model NAME --random-init -o DIR   (build and time any of them untrained)",
                 "lvt-edge train --model NAME --data CLIPS --val CLIPS --out runs/NAME")
    return 0
