"""The LVT model: configs, the network, the reference FFLA op, checkpoints."""

from lvt_edge.model.config import LVTConfig, get_config, list_configs, register_config
from lvt_edge.model.ffla import ffla, spatial_shift, temporal_shift
from lvt_edge.model.lvt import LVT


def create_model(name: str, num_classes: int | None = None, **overrides) -> LVT:
    """Build a registered config by name, timm style: `create_model("lvt-tiny", num_classes=10)`."""
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    return LVT(get_config(name, **overrides))


__all__ = [
    "LVT", "LVTConfig", "create_model", "ffla", "get_config", "list_configs",
    "register_config", "spatial_shift", "temporal_shift",
]
