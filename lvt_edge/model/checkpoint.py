"""Our checkpoint format: `NAME.safetensors` (weights) + `NAME.json` (config, clip contract,
lvt_edge version). Official checkpoints (.pth/.pyth/.pt) go through `official.py`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lvt_edge import __version__
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import atomic_path, dataclass_dict_errors, read_format_json, sha256_file, type_error, write_json_atomic
from lvt_edge.model.config import LVTConfig
from lvt_edge.model.lvt import LVT

FORMAT = "lvt_edge.checkpoint"
FORMAT_VERSION = 1
OFFICIAL_SUFFIXES = (".pth", ".pyth", ".pt", ".ckpt")


@dataclass
class Checkpoint:
    """A loaded model with the metadata that travels with it."""

    model: LVT
    contract: ClipContract
    path: Path | None = None
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> LVTConfig:
        return self.model.cfg


def contract_for(cfg: LVTConfig, labels: list[str] | tuple[str, ...] | None = None, **kw: Any) -> ClipContract:
    """The default clip contract of a config (mean = std = 0.5, uniform sampling)."""
    labels = tuple(labels) if labels is not None else tuple(f"class_{i}" for i in range(cfg.num_classes))
    return ClipContract(frames=cfg.frames, size=cfg.img_size, resize=kw.pop("resize", cfg.img_size), labels=labels, **kw)


def check_contract(cfg: LVTConfig, contract: ClipContract) -> None:
    problems = []
    if contract.frames != cfg.frames:
        problems.append(f"contract has {contract.frames} frames, model {cfg.frames}")
    if contract.size != cfg.img_size:
        problems.append(f"contract size {contract.size}, model {cfg.img_size}")
    if contract.num_classes != cfg.num_classes:
        problems.append(f"contract has {contract.num_classes} labels, model {cfg.num_classes} classes")
    if problems:
        raise LvtEdgeError("clip contract does not match the model: " + "; ".join(problems))


def paths_of(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights, metadata) paths for a checkpoint given as NAME, NAME.safetensors or NAME.json."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def torch_load_untrusted(path: str | os.PathLike, what: str) -> Any:
    """torch.load for files we did not write: weights_only=True, so pickled code is refused.

    `what` names the file for the error ("official checkpoint", "training state").
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for unreadable or unsafe files
        raise LvtEdgeError(
            f"cannot load {what} {path} safely ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            "it is read with weights_only=True, so damaged files and files that pickle code are refused"
        ) from e


def save_checkpoint(path: str | os.PathLike, model: LVT, contract: ClipContract, extra: dict[str, Any] | None = None) -> Path:
    """Write weights and metadata atomically; returns the weights path."""
    from safetensors.torch import save_file

    check_contract(model.cfg, contract)
    weights, meta = paths_of(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(weights) as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT})
    write_json_atomic(meta, {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lvt_edge_version": __version__,
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "config": model.cfg.to_dict(),
        "contract": contract.to_dict(),
        "extra": extra or {},
    })
    return weights


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """NAME.json of a checkpoint, checked: fields present and of the right types."""
    weights, meta = paths_of(path)
    if not meta.is_file():
        raise LvtEdgeError(f"{meta} not found: an lvt_edge checkpoint is NAME.safetensors plus NAME.json")
    data = read_format_json(meta, FORMAT, FORMAT_VERSION, "an lvt_edge checkpoint",
                            "an lvt_edge checkpoint is NAME.safetensors plus the NAME.json that save_checkpoint wrote")
    problems = metadata_problems(data)
    if problems:
        raise LvtEdgeError(f"{meta} is damaged or was edited by hand: {'; '.join(problems[:6])}; "
                           "restore it, or save the checkpoint again (lvt_edge.model.checkpoint.save_checkpoint)")
    return data


# Lower bounds of the config's numbers. LVTConfig checks some itself, but a zero head count or
# patch stride divides by zero before it can, so they are checked here first.
_CONFIG_MINIMUM = {"embed_dim": 16, "num_heads": 1, "depth": 1, "frames": 1, "img_size": 1, "patch_size": 1,
                   "patch_stride": 1, "head_hidden": 1, "num_classes": 1, "mlp_ratio": 0, "eps": 0, "drop_rate": 0}
_STRICTLY_ABOVE = {"mlp_ratio", "eps"}
_META_FIELDS = {"config": "dict", "contract": "dict", "weights": "str", "weights_sha256": "str", "extra": "dict"}


def config_problems(config: dict[str, Any], where: str = "config") -> list[str]:
    """Type and range problems of an LVT config dict, before LVTConfig(**config) sees it."""
    problems = dataclass_dict_errors(LVTConfig, config, where)
    bad = {p.split()[0] for p in problems}
    for k, low in _CONFIG_MINIMUM.items():
        v = config.get(k)
        if f"{where}.{k}" in bad or v is None:
            continue
        if v < low or (k in _STRICTLY_ABOVE and v <= low):
            problems.append(f"{where}.{k} must be {'>' if k in _STRICTLY_ABOVE else '>='} {low}, got {v!r}")
    if "drop_rate" in config and f"{where}.drop_rate" not in bad and not config["drop_rate"] < 1:
        problems.append(f"{where}.drop_rate must be < 1, got {config['drop_rate']!r}")
    return problems


def metadata_problems(meta: dict[str, Any]) -> list[str]:
    """Every way a checkpoint's NAME.json breaks its layout, as "field why"."""
    problems = [f"no {k!r}" for k in ("config", "contract") if k not in meta]
    problems += [f"{k} {why}" for k, kind in _META_FIELDS.items() if k in meta and (why := type_error(meta[k], kind))]
    if problems:
        return problems
    problems = config_problems(meta["config"]) + dataclass_dict_errors(ClipContract, meta["contract"], "contract")
    labels, classes = meta["contract"].get("labels"), meta["config"].get("num_classes")
    if not problems and isinstance(labels, list) and isinstance(classes, int) and len(labels) != classes:
        problems.append(f"contract.labels has {len(labels)} labels but config.num_classes is {classes}")
    return problems


def load_checkpoint(path: str | os.PathLike, **official_kw: Any) -> Checkpoint:
    """Load our checkpoint, or an official one (by suffix; `official_kw` go to its loader)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if p.suffix in OFFICIAL_SUFFIXES:
        from lvt_edge.model.official import load_official_checkpoint

        return load_official_checkpoint(p, **official_kw)
    weights, meta_path = paths_of(p)
    meta = read_metadata(p)
    try:
        cfg = LVTConfig.from_dict(meta["config"])
        contract = ClipContract.from_dict(meta["contract"])
        check_contract(cfg, contract)
    except LvtEdgeError as e:
        raise LvtEdgeError(f"{meta_path}: {e}") from e
    if not weights.is_file():
        raise LvtEdgeError(f"checkpoint weights {weights} not found next to its metadata")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise LvtEdgeError(f"cannot read {weights}: {e}; the file is damaged or not safetensors") from e
    model = LVT(cfg)
    load_state_dict_checked(model, state, source=str(weights))
    model.eval()
    return Checkpoint(model, contract, weights, sha256_file(weights), meta.get("extra", {}))


def load_state_dict_checked(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict that names missing/unexpected keys and shape mismatches in one error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_short(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_short(shapes)}")
        raise LvtEdgeError(
            f"{source} does not fit the model config: " + "; ".join(parts)
            + ". Check that the checkpoint's JSON config (or --model) matches the weights."
        )
    model.load_state_dict(state)


def _short(items: list[str], n: int = 6) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")
