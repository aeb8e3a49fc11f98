"""The bundled demo model: lvt-tiny trained on synthetic motion clips (see calib/README.md)."""

from __future__ import annotations

from pathlib import Path

from lvt_edge.errors import LvtEdgeError

DEMO_CHECKPOINT = Path(__file__).parent / "assets" / "lvt-tiny-motion"


def demo_checkpoint() -> Path:
    """Path stem of the bundled demo checkpoint (NAME.safetensors + NAME.json)."""
    weights = DEMO_CHECKPOINT.with_name(DEMO_CHECKPOINT.name + ".safetensors")
    if not weights.is_file():
        raise LvtEdgeError(
            f"the bundled demo model is missing ({weights}); reinstall lvt-edge, or pass a checkpoint"
        )
    return DEMO_CHECKPOINT
