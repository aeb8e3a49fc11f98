"""The bundled demo models, trained on synthetic motion clips (see calib/README.md).

- `demo`: lvt-tiny, the window model every bare `lvt-edge build` ships;
- `demo-causal`: lvt-tiny-causal, the same network made causal, for frame-by-frame streaming
  (`lvt-edge build DIR --checkpoint demo-causal`, then `lvt-edge live --bundle DIR --mode stream`).

Either name stands for a checkpoint wherever one is asked for (`--checkpoint`, `--finetune`,
`export CKPT`), unless a file of that name exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from lvt_edge.errors import LvtEdgeError

ASSETS = Path(__file__).parent / "assets"
DEMOS = {"demo": "lvt-tiny-motion", "demo-causal": "lvt-tiny-causal-motion"}
DEMO_CHECKPOINT = ASSETS / DEMOS["demo"]


def demo_checkpoint(name: str = "demo") -> Path:
    """Path stem of a bundled demo checkpoint (NAME.safetensors + NAME.json)."""
    if name not in DEMOS:
        raise LvtEdgeError(f"no bundled model {name!r}; the bundled ones are {', '.join(DEMOS)}")
    stem = ASSETS / DEMOS[name]
    weights = stem.with_name(stem.name + ".safetensors")
    if not weights.is_file():
        raise LvtEdgeError(f"the bundled model {name!r} is missing ({weights}); reinstall lvt-edge, "
                           "or pass a checkpoint")
    return stem


def resolve_checkpoint(checkpoint: str | os.PathLike) -> str | os.PathLike:
    """`checkpoint` itself, or the bundled model it names when no file of that name exists."""
    p = Path(checkpoint)
    if str(checkpoint) in DEMOS and not p.exists() and not p.with_name(p.name + ".safetensors").exists():
        return demo_checkpoint(str(checkpoint))
    return checkpoint
