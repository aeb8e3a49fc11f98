"""Loading checkpoints of the official LVT code (OpenNLPLab/Linear_VideoTransformer).

The official model is an `XVIT` wrapper around `lvit_v2` (timm-style) with a `VVTHead`.
Its parameter names map onto ours as follows (after stripping `module.` and unwrapping
`model_state` / `model` / `state_dict`):

    base_model.patch_embed.{proj,norm}.*        -> patch_embed.{proj,norm}.*
    base_model.temp_embed   (1 x S x 1 x C)     -> temporal_embed (T x C), frame t uses slot t % S
    base_model.blocks.N.mlp.dwconv.dwconv.*     -> blocks.N.mlp.dwconv.*
    base_model.blocks.N.<anything else>         -> blocks.N.<same>
    base_model.norm.*                           -> norm.*
    consensus.mlp_head.{0,1,4}.*                -> head.{0,1,4}.*
    new_fc.*, base_model.head.*                 ignored: unused by the official forward pass

The official diagonal spatial shift keeps a border cell's own value where we put zeros; the
loader turns that behaviour on (`official_border=True`) so outputs match the official code.
Checkpoints are untrusted: they are read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model.config import LVTConfig, get_config

_WRAPPERS = ("model_state", "model", "state_dict", "module")
_IGNORED = (re.compile(r"^new_fc\."), re.compile(r"^base_model\.head\."))
_RULES = (
    (re.compile(r"^base_model\.blocks\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)$"), r"blocks.\1.mlp.dwconv.\2"),
    (re.compile(r"^base_model\.(patch_embed\.(?:proj|norm)\..+)$"), r"\1"),
    (re.compile(r"^base_model\.(blocks\..+)$"), r"\1"),
    (re.compile(r"^base_model\.(norm\..+)$"), r"\1"),
    (re.compile(r"^consensus\.mlp_head\.(\d+)\.(.+)$"), r"head.\1.\2"),
)


@dataclass
class Conversion:
    """Result of mapping an official state dict onto our names."""

    state: dict[str, torch.Tensor]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, list[str]]:
        return {"missing": self.missing, "unexpected": self.unexpected, "ignored": self.ignored}


def unwrap_state_dict(obj: Any) -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a training checkpoint and strip DDP's `module.` prefix."""
    while isinstance(obj, dict):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        key = next((k for k in _WRAPPERS if k in obj and isinstance(obj[k], dict)), None)
        if key is None:
            raise LvtEdgeError(
                "no state dict found in the checkpoint (looked for a tensor dict under "
                f"{', '.join(_WRAPPERS)}); is it an official LVT training checkpoint?"
            )
        obj = obj[key]
    if not isinstance(obj, dict):
        raise LvtEdgeError(f"the checkpoint holds a {type(obj).__name__}, not a state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def infer_config(sd: dict[str, torch.Tensor], base: LVTConfig, **overrides: Any) -> LVTConfig:
    """Read the shapes the weights fix (width, depth, heads, gate, head sizes) over a named base config."""
    found: dict[str, Any] = {}
    if "base_model.patch_embed.proj.weight" in sd:
        found["embed_dim"] = sd["base_model.patch_embed.proj.weight"].shape[0]
        found["patch_size"] = sd["base_model.patch_embed.proj.weight"].shape[-1]
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"base_model\.blocks\.(\d+)\.", k))}
    if blocks:
        found["depth"] = max(blocks) + 1
    if "base_model.blocks.0.attn.pgate.weight" in sd:
        found["gate"], gate_w = "shared", sd["base_model.blocks.0.attn.pgate.weight"]
    elif "base_model.blocks.0.attn.q_gate.weight" in sd:
        found["gate"], gate_w = "separate", sd["base_model.blocks.0.attn.q_gate.weight"]
    else:
        gate_w = None
        found["attention"] = "linear"
    if gate_w is not None:
        found["attention"] = "ffla"
        found["num_heads"] = found.get("embed_dim", base.embed_dim) // gate_w.shape[0]
    if "consensus.mlp_head.1.weight" in sd:
        found["head_hidden"] = sd["consensus.mlp_head.1.weight"].shape[0]
    if "consensus.mlp_head.4.weight" in sd:
        found["num_classes"] = sd["consensus.mlp_head.4.weight"].shape[0]
    found.update(overrides)
    return base.replace(**found)


def convert_official_state_dict(sd: dict[str, torch.Tensor], cfg: LVTConfig, own_keys: Sequence[str]) -> Conversion:
    """Map official parameter names onto ours; report missing, unexpected and ignored keys by name."""
    out: dict[str, torch.Tensor] = {}
    source: dict[str, str] = {}  # our name -> official name, to report keys as the user knows them
    conv = Conversion(out)
    for key, value in sd.items():
        if any(p.match(key) for p in _IGNORED):
            conv.ignored.append(key)
            continue
        if key == "base_model.temp_embed":
            slots = value.reshape(-1, value.shape[-1])
            idx = torch.arange(cfg.frames) % slots.shape[0]
            out["temporal_embed"] = slots[idx].clone()
            source["temporal_embed"] = key
            continue
        for pattern, repl in _RULES:
            if pattern.match(key):
                ours = pattern.sub(repl, key)
                out[ours], source[ours] = value, key
                break
        else:
            conv.unexpected.append(key)
    own = set(own_keys)
    for k in sorted(k for k in out if k not in own):
        conv.unexpected.append(source[k])
        del out[k]
    conv.missing = sorted(own - set(out))
    return conv


def load_official_checkpoint(
    path: str | Path,
    model: str = "lvt-base",
    *,
    labels: Sequence[str] | None = None,
    official_border: bool = True,
    strict: bool = True,
    **overrides: Any,
):
    """Load an official checkpoint into our LVT; returns a `Checkpoint`.

    `model` names the registered config that fixes what the weights cannot (clip length,
    input size, shift_div); `official_border=False` switches to our zero-border shift.
    """
    from lvt_edge.model.checkpoint import Checkpoint, check_contract, contract_for, torch_load_untrusted
    from lvt_edge.model.lvt import LVT
    from lvt_edge.io import sha256_file

    path = Path(path)
    if not path.is_file():
        raise LvtEdgeError(f"checkpoint {path} not found")
    obj = torch_load_untrusted(path, "official checkpoint")
    sd = unwrap_state_dict(obj)
    cfg = infer_config(sd, get_config(model), official_border=official_border, **overrides)
    net = LVT(cfg)
    conv = convert_official_state_dict(sd, cfg, list(net.state_dict()))
    if strict and (conv.missing or conv.unexpected):
        raise LvtEdgeError(
            f"{path} does not match config {model!r}: missing {_names(conv.missing)}; "
            f"unexpected {_names(conv.unexpected)}. Pick the matching model config, or load with "
            "strict=False to accept the partial match (missing parameters keep their initial values)"
        )
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(net.state_dict()[k].shape)}"
              for k, v in conv.state.items() if v.shape != net.state_dict()[k].shape]
    if shapes:
        raise LvtEdgeError(f"{path} does not fit config {model!r}: {'; '.join(shapes[:6])}")
    net.load_state_dict(conv.state, strict=strict)
    net.eval()
    contract = contract_for(cfg, labels)
    check_contract(cfg, contract)
    return Checkpoint(net, contract, path, sha256_file(path), {"official": conv.summary()})


def _names(keys: list[str], n: int = 8) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def to_official_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Our state dict under the official names (for round trips and for comparing with official code)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key == "temporal_embed":
            out["base_model.temp_embed"] = value[None, :, None, :].clone()
        elif key.startswith("head."):
            out["consensus.mlp_head." + key[len("head."):]] = value
        elif m := re.match(r"^blocks\.(\d+)\.mlp\.dwconv\.(.+)$", key):
            out[f"base_model.blocks.{m.group(1)}.mlp.dwconv.dwconv.{m.group(2)}"] = value
        else:
            out["base_model." + key] = value
    return out
