"""Loading checkpoints of the official LVT code (OpenNLPLab/Linear_VideoTransformer), and writing ours
under its names.

The official model is an `XVIT` wrapper around `lvit_v2` (timm-style) with a `VVTHead`.
Its parameter names map onto ours as follows (after stripping `module.` and unwrapping
`model_state` / `model` / `state_dict`):

    base_model.patch_embed.{proj,norm}.*        -> patch_embed.{proj,norm}.*
    base_model.temp_embed   (1 x S x 1 x C)     -> temporal_embed (T x C), frame t uses slot t % S (S = 8)
    base_model.blocks.N.mlp.dwconv.dwconv.*     -> blocks.N.mlp.dwconv.*
    base_model.blocks.N.<anything else>         -> blocks.N.<same>
    base_model.norm.*                           -> norm.*
    consensus.mlp_head.{0,1,4}.*                -> head.{0,1,4}.*
    new_fc.*, base_model.head.*                 ignored: unused by the official forward pass

What the weights fix (width, depth, heads, gate, classes) must agree with the named config, the
checkpoint's own training config and the caller's overrides: a checkpoint that lost a block must
not become a shallower network without a word. `infer_architecture=True` takes the weights' word.

The official training script saves `{"epoch", "model_state", "optimizer_state", "cfg"}` where
`cfg` is the slowfast (yacs) config dumped as YAML. When present it is read: it fixes classes,
frames, crop size, shift_div and the gate, and settings our op cannot compute (a temporal shift
that restarts every NUM_SEGMENTS frames, a spatial shift of more than one cell, ...) are refused
by name. The official diagonal spatial shift keeps a border cell's own value where we put zeros;
the loader turns that behaviour on (`official_border=True`) so outputs match the official code.
Checkpoints are untrusted: they are read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from lvt_edge.errors import LvtEdgeError
from lvt_edge.model.config import LVTConfig, get_config

# The official backbone always has 8 temporal-embedding slots (lvit_v2's default num_frames; XVIT
# never passes the clip length) and frame f of the flattened batch uses slot f % 8.
OFFICIAL_TEMPORAL_SLOTS = 8

_WRAPPERS = ("model_state", "model", "state_dict", "module")
_IGNORED = (re.compile(r"^new_fc\."), re.compile(r"^base_model\.head\."))
_RULES = (
    (re.compile(r"^base_model\.blocks\.(\d+)\.mlp\.dwconv\.dwconv\.(.+)$"), r"blocks.\1.mlp.dwconv.\2"),
    (re.compile(r"^base_model\.(patch_embed\.(?:proj|norm)\..+)$"), r"\1"),
    (re.compile(r"^base_model\.(blocks\..+)$"), r"\1"),
    (re.compile(r"^base_model\.(norm\..+)$"), r"\1"),
    (re.compile(r"^consensus\.mlp_head\.(\d+)\.(.+)$"), r"head.\1.\2"),
)
_GATE_KEY = re.compile(r"^base_model\.blocks\.\d+\.(?:attn|temporal_attn)\.(pgate|q_gate)\.weight$")
# The architecture fields the weights fix, in the order errors name them.
_ARCH_FIELDS = ("embed_dim", "depth", "num_heads", "attention", "gate", "patch_size", "head_hidden", "num_classes")


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


def architecture_from_weights(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """What the official-named weights fix: width, depth, heads (with a gate), gate, head sizes."""
    found: dict[str, Any] = {}
    if "base_model.patch_embed.proj.weight" in sd:
        found["embed_dim"] = sd["base_model.patch_embed.proj.weight"].shape[0]
        found["patch_size"] = sd["base_model.patch_embed.proj.weight"].shape[-1]
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"base_model\.blocks\.(\d+)\.", k))}
    if blocks:
        found["depth"] = max(blocks) + 1
    gate = next(((m.group(1), sd[k]) for k in sorted(sd) if (m := _GATE_KEY.match(k))), None)
    if gate is None:
        found["attention"] = "linear"  # no gate anywhere: plain linear attention (heads not fixed)
    else:
        found["attention"] = "ffla"
        found["gate"] = "shared" if gate[0] == "pgate" else "separate"
        if "embed_dim" in found:
            found["num_heads"] = found["embed_dim"] // gate[1].shape[0]
    if "consensus.mlp_head.1.weight" in sd:
        found["head_hidden"] = sd["consensus.mlp_head.1.weight"].shape[0]
    if "consensus.mlp_head.4.weight" in sd:
        found["num_classes"] = sd["consensus.mlp_head.4.weight"].shape[0]
    return found


# ---- the official training config (slowfast `cfg.dump()`, stored under "cfg") ----

# slowfast/config/defaults.py values of the keys read here: yacs dumps every key, so these only
# fill in for a hand-made partial dict (yacs would have merged it into the same defaults).
_OFFICIAL_DEFAULTS: dict[str, Any] = {
    "MODEL.MODEL_NAME": "SlowFast", "MODEL.NUM_CLASSES": 400, "MODEL.DROPOUT_RATE": 0.5,
    "DATA.NUM_FRAMES": 8, "DATA.TRAIN_CROP_SIZE": 224, "DATA.TEST_CROP_SIZE": 256,
    "TRAIN.ENABLE": True, "TEST.ENABLE": True, "TEMPORAL_HEAD.MLP_DIM": 768,
    "XVIT.BASE_MODEL": "resnet50", "XVIT.CONSENSUS_TYPE": "vit", "XVIT.BACKBONE.NORM_LAYER": "LN",
    "XVIT.USE_XVIT": True, "XVIT.USE_SpatialShift": False, "XVIT.NUM_SEGMENTS": 8,
    "XVIT.SPATIAL_SIZE": 289, "XVIT.SHIFT_DIV": 8, "XVIT.SHIFT_SIZE": 1, "XVIT.LOCATIONS_LIST": [9, 10, 11],
    "USE_CGATE": False, "SHARE_GATE": True, "LINEAR_TYPE": "relu",
    "ATTENTION_TYPE": "full_time_space", "USE_3D": False, "USE_MOTION": False,
}
# Settings that change the arithmetic to something our op (and the fused ONNX node and the
# TensorRT plugin) does not compute: key -> (the value we compute, what the other value means).
_FIXED: dict[str, tuple[Any, str]] = {
    "MODEL.MODEL_NAME": ("XVIT", "not the XVIT wrapper LVT checkpoints come from"),
    "XVIT.CONSENSUS_TYPE": ("vit", "a different classification head"),
    "XVIT.BACKBONE.NORM_LAYER": ("LN", "another normalisation layer"),
    "ATTENTION_TYPE": ("divided_time_space", "another attention layout"),
    "LINEAR_TYPE": ("relu", "another feature map than ReLU(x) + d^-0.5"),
    "USE_3D": (False, "a 3D patch embedding"),
    "USE_MOTION": (False, "an extra motion attention"),
}


@dataclass
class TrainingConfig:
    """What an official training config says about the network, in our terms."""

    fields: dict[str, Any]            # LVTConfig fields it fixes
    sources: dict[str, str]           # field -> the official key it came from
    unsupported: list[str]            # settings we cannot reproduce, each named with its value
    values: dict[str, Any]            # the official keys read (defaults filled in)

    def problems(self, cfg: LVTConfig) -> list[str]:
        """Unsupported settings, including those that depend on the final depth and grid."""
        out = list(self.unsupported)
        v = self.values
        if cfg.uses_shift:
            blocks = set(range(cfg.depth))
            where = set(v["XVIT.LOCATIONS_LIST"] or ())
            if not blocks <= where:
                out.append(f"XVIT.LOCATIONS_LIST {list(v['XVIT.LOCATIONS_LIST'])} leaves blocks "
                           f"{sorted(blocks - where)} without shifts (our op shifts in every block)")
            if v["XVIT.USE_SpatialShift"] and v["XVIT.SPATIAL_SIZE"] != cfg.tokens_per_frame:
                out.append(f"XVIT.SPATIAL_SIZE {v['XVIT.SPATIAL_SIZE']} is not the {cfg.grid}x{cfg.grid} "
                           f"token grid of {cfg.img_size}-pixel frames")
        return out


def read_training_config(obj: Any) -> TrainingConfig | None:
    """The training config stored beside the weights (`cfg`: YAML text or a dict), or None."""
    raw = obj.get("cfg") if isinstance(obj, dict) else None
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            import yaml
        except ImportError as e:
            raise LvtEdgeError("the checkpoint's training config is YAML; install PyYAML "
                               "(`pip install pyyaml`) to read it") from e
        try:
            raw = yaml.safe_load(raw)
        except yaml.YAMLError as e:
            raise LvtEdgeError(f"the checkpoint's training config ('cfg') is not valid YAML ({e}); "
                               "the file is damaged, or not from the official training script") from e
    if not isinstance(raw, dict):
        raise LvtEdgeError(f"the checkpoint's training config ('cfg') is a {type(raw).__name__}, "
                           "not the YAML mapping the official training script saves")
    v = {key: _lookup(raw, key, default) for key, default in _OFFICIAL_DEFAULTS.items()}
    wrong = [f"{key} {v[key]!r} (expected {_kind(default)})" for key, default in _OFFICIAL_DEFAULTS.items()
             if not _fits(v[key], default)]
    if wrong:
        raise LvtEdgeError("the checkpoint's training config ('cfg') has values of the wrong type: "
                           + "; ".join(wrong) + "; the file is damaged, or not from the official training script")
    unsupported = [f"{key} {v[key]!r} ({why})" for key, (ok, why) in _FIXED.items() if v[key] != ok]
    if "lvit_v2" not in str(v["XVIT.BASE_MODEL"]):
        unsupported.append(f"XVIT.BASE_MODEL {v['XVIT.BASE_MODEL']!r} (LVT is an lvit_v2 backbone)")
    temporal, spatial = bool(v["XVIT.USE_XVIT"]), bool(v["XVIT.USE_SpatialShift"])
    if temporal != spatial:
        unsupported.append(f"XVIT.USE_XVIT {temporal} with XVIT.USE_SpatialShift {spatial} "
                           "(our op shifts both ways or neither)")
    if (temporal or spatial) and not v["USE_CGATE"]:
        unsupported.append("USE_CGATE False with neighbourhood shifts (our op shifts only with the gate)")
    frames = v["DATA.NUM_FRAMES"]
    if temporal and v["XVIT.NUM_SEGMENTS"] != frames:
        unsupported.append(
            f"XVIT.NUM_SEGMENTS {v['XVIT.NUM_SEGMENTS']} with DATA.NUM_FRAMES {frames}: a segment-restarting "
            f"temporal shift (it restarts every {v['XVIT.NUM_SEGMENTS']} frames; our op shifts across the clip)")
    if temporal and v["XVIT.SHIFT_DIV"] not in (4, 8):
        unsupported.append(f"XVIT.SHIFT_DIV {v['XVIT.SHIFT_DIV']} (our op moves C/4 or C/8 channels each way)")
    if spatial and v["XVIT.SHIFT_SIZE"] != 1:
        unsupported.append(f"XVIT.SHIFT_SIZE {v['XVIT.SHIFT_SIZE']}: a spatial shift of more than one cell "
                           "(our op shifts to the 8 neighbours one cell away)")
    test_only = bool(v["TEST.ENABLE"]) and not bool(v["TRAIN.ENABLE"])
    crop_key = "DATA.TEST_CROP_SIZE" if test_only else "DATA.TRAIN_CROP_SIZE"  # the official model's img_size
    picked = {
        "num_classes": "MODEL.NUM_CLASSES", "frames": "DATA.NUM_FRAMES", "img_size": crop_key,
        "head_hidden": "TEMPORAL_HEAD.MLP_DIM", "drop_rate": "MODEL.DROPOUT_RATE",
    }
    fields: dict[str, Any] = {f: v[k] for f, k in picked.items()}
    sources = dict(picked)
    if v["USE_CGATE"]:
        fields.update(attention="ffla", gate="shared" if v["SHARE_GATE"] else "separate")
        sources.update(attention="USE_CGATE", gate="SHARE_GATE")
    else:
        fields["attention"], sources["attention"] = "linear", "USE_CGATE"
    if temporal and v["XVIT.SHIFT_DIV"] in (4, 8):
        fields["shift_div"], sources["shift_div"] = v["XVIT.SHIFT_DIV"], "XVIT.SHIFT_DIV"
    fields["neighbour"], sources["neighbour"] = temporal and spatial, "XVIT.USE_XVIT"
    return TrainingConfig(fields, sources, unsupported, v)


def _fits(value: Any, default: Any) -> bool:
    """The type the official config gives the key (sizes and counts positive)."""
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in value)
    return isinstance(value, str)


def _kind(default: Any) -> str:
    return {bool: "true or false", int: "a positive integer", float: "a number in [0, 1)",
            list: "a list of integers", str: "a string"}[type(default)]


def _lookup(tree: dict[str, Any], dotted: str, default: Any) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def resolve_config(
    sd: dict[str, torch.Tensor],
    model: str,
    training: TrainingConfig | None = None,
    *,
    infer_architecture: bool = False,
    **overrides: Any,
) -> tuple[LVTConfig, dict[str, Any]]:
    """The config to build: the named config, then the training config, then `overrides`.

    The architecture the weights fix must agree with it, or the error names every difference;
    `infer_architecture=True` takes the weights' word instead (never over an explicit override).
    Returns the config and a record of what was taken from where.
    """
    base = get_config(model)
    said = {f: (getattr(base, f), f"config {model!r}") for f in _ARCH_FIELDS}
    settings: dict[str, Any] = {}
    if training is not None:
        for f, value in training.fields.items():
            settings[f] = value
            said[f] = (value, f"the checkpoint's training config ({training.sources[f]})")
    settings.update(overrides)
    for f in _ARCH_FIELDS:
        if f in overrides:
            said[f] = (overrides[f], "your override")
    weights = architecture_from_weights(sd)
    differ = {f: w for f, w in weights.items() if f in said and said[f][0] != w}
    forced = [f for f in differ if f in overrides]
    if differ and (not infer_architecture or forced):
        named = [f"{f}: the weights say {differ[f]!r}, {said[f][1]} says {said[f][0]!r}"
                 for f in _ARCH_FIELDS if f in differ and (not infer_architecture or f in forced)]
        raise LvtEdgeError(
            "the checkpoint's weights do not describe the network asked for: " + "; ".join(named)
            + ". A damaged or truncated checkpoint, or another model? Pick the matching model config "
            "or pass the values (e.g. num_classes=...); to build the network the weights describe, "
            "load with infer_architecture=True (`lvt-edge export --infer-architecture`)"
        )
    settings.update({f: weights[f] for f in differ})
    try:
        cfg = base.replace(**settings)
    except TypeError as e:
        raise LvtEdgeError(f"unknown config field in {sorted(overrides)}: {e}") from e
    record = {"inferred_from_weights": {f: {"config": said[f][0], "weights": w} for f, w in differ.items()}}
    if training is not None:
        record["training_config"] = {f: training.sources[f] for f in training.fields}
        problems = training.problems(cfg)
        if problems:
            raise LvtEdgeError(
                "the checkpoint's training config asks for what lvt_edge cannot compute: " + "; ".join(problems)
                + ". lvt_edge's op (and its fused ONNX node and TensorRT plugin) implements the SSv2-style "
                "LVT: one temporal shift across the whole clip, one-cell 8-neighbour spatial shifts in every block. "
                "This checkpoint has no faithful export; run it with the official code"
            )
    return cfg, record


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
    infer_architecture: bool = False,
    **overrides: Any,
):
    """Load an official checkpoint into our LVT; returns a `Checkpoint`.

    `model` names the registered config that fixes what neither the weights nor a stored
    training config fix; `overrides` are config fields. The weights must agree with them unless
    `infer_architecture=True`. `official_border=False` switches to our zero-border shift.
    """
    from lvt_edge.model.checkpoint import Checkpoint, check_contract, contract_for, torch_load_untrusted
    from lvt_edge.model.lvt import LVT
    from lvt_edge.io import sha256_file

    path = Path(path)
    if not path.is_file():
        raise LvtEdgeError(f"checkpoint {path} not found")
    obj = torch_load_untrusted(path, "official checkpoint")
    training = read_training_config(obj)
    sd = unwrap_state_dict(obj)
    try:
        cfg, record = resolve_config(sd, model, training, infer_architecture=infer_architecture,
                                     official_border=official_border, **overrides)
    except LvtEdgeError as e:
        raise LvtEdgeError(f"{path}: {e}") from None
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
    return Checkpoint(net, contract, path, sha256_file(path), {"official": {**conv.summary(), **record}})


def _names(keys: list[str], n: int = 8) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def official_temporal_slots(embed: torch.Tensor, *, take_first_slots: bool = False) -> torch.Tensor:
    """Fold our T temporal-embedding slots into the official 8 (1 x 8 x 1 x C).

    The official code gives frame f of the flattened batch slot f % 8, so frame t of every clip
    sees slot t only if the slots repeat every gcd(T, 8) frames; otherwise this refuses, unless
    `take_first_slots` (the first clip's 8 frames decide).
    """
    frames = embed.shape[0]
    period = math.gcd(frames, OFFICIAL_TEMPORAL_SLOTS)
    idx = torch.arange(OFFICIAL_TEMPORAL_SLOTS) % frames
    if not take_first_slots and not torch.equal(embed, embed[torch.arange(frames) % period]):
        raise LvtEdgeError(
            f"the temporal embedding's {frames} slots do not repeat every {period} frames, so the official "
            f"code's {OFFICIAL_TEMPORAL_SLOTS} slots (frame f uses slot f % {OFFICIAL_TEMPORAL_SLOTS}) cannot "
            "hold them; pass take_first_slots=True to keep the first "
            f"{min(frames, OFFICIAL_TEMPORAL_SLOTS)} and accept different outputs"
        )
    return embed[idx][None, :, None, :].clone()


def to_official_state_dict(model: torch.nn.Module, *, take_first_slots: bool = False) -> dict[str, torch.Tensor]:
    """Our state dict under the official names, loadable strictly by the official XVIT model.

    Writes the 8 temporal-embedding slots the official backbone has (see `official_temporal_slots`)
    and the classifier the official XVIT builds but never uses: `new_fc` when the head has dropout,
    `base_model.head` without (zeros: it does not affect the output).
    """
    cfg: LVTConfig = model.cfg
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        if key == "temporal_embed":
            out["base_model.temp_embed"] = official_temporal_slots(value.detach(), take_first_slots=take_first_slots)
        elif key.startswith("head."):
            out["consensus.mlp_head." + key[len("head."):]] = value
        elif m := re.match(r"^blocks\.(\d+)\.mlp\.dwconv\.(.+)$", key):
            out[f"base_model.blocks.{m.group(1)}.mlp.dwconv.dwconv.{m.group(2)}"] = value
        else:
            out["base_model." + key] = value
    ref = out["consensus.mlp_head.4.weight"]
    unused = "new_fc" if cfg.drop_rate > 0 else "base_model.head"
    out[f"{unused}.weight"] = ref.new_zeros(cfg.num_classes, cfg.embed_dim)
    out[f"{unused}.bias"] = ref.new_zeros(cfg.num_classes)
    return out
