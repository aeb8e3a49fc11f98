"""PyTorch backend: the bundle's source checkpoint, run in eager mode as the reference.

This is the only runtime module that needs torch, and it imports it (and the model code)
only when a torch classifier is made.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.runtime.base import Classifier


def source_checkpoint(workdir: str | os.PathLike, data: dict[str, Any], override: str | os.PathLike | None = None) -> Path:
    """The checkpoint the bundle was exported from: `override`, else bundle.json's source entry.

    The source is looked for at its recorded path (relative to WORKDIR when not absolute), in
    WORKDIR by name, and as the bundled demo model; its weights must hash to the recorded sha256.
    """
    source = data.get("source") or {}
    if override is not None:
        candidates = [Path(override)]
    else:
        candidates = []
        for key in ("path", "checkpoint"):
            if source.get(key):
                p = Path(source[key])
                candidates.append(p if p.is_absolute() else Path(workdir) / p)
        if source.get("checkpoint"):
            candidates.append(_demo_candidate(source["checkpoint"]))
    for cand in filter(None, candidates):
        weights = _weights_of(cand)
        if weights.is_file():
            return weights
    name = source.get("checkpoint") or "(not recorded)"
    raise LvtEdgeError(
        f"the torch backend needs the bundle's source checkpoint {name}, which is not available "
        f"(looked at {', '.join(str(c) for c in candidates if c) or 'nothing'}); "
        "pass checkpoint=PATH (CLI: --checkpoint) or use backend='onnxruntime'"
    )


def _weights_of(path: Path) -> Path:
    return path if path.suffix == ".safetensors" else path.with_name(path.name + ".safetensors")


def _demo_candidate(name: str) -> Path | None:
    from lvt_edge.demo import ASSETS, DEMOS

    stem = Path(name).name.removesuffix(".safetensors").removesuffix(".json")
    return ASSETS / stem if stem in DEMOS.values() else None


class TorchClassifier(Classifier):
    """The PyTorch model of a checkpoint (fp32 eager; the reference for every other backend)."""

    backend = "torch"

    def __init__(self, checkpoint: str | os.PathLike, *, expect_sha256: str | None = None,
                 device: str = "cpu", threads: int | None = None) -> None:
        try:
            import torch
        except ImportError as e:
            raise LvtEdgeError(f"the torch backend needs PyTorch ({e}); install it (`pip install torch`) "
                               "or use backend='onnxruntime'") from e
        from lvt_edge.model.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        if expect_sha256 and ckpt.sha256 and ckpt.sha256 != expect_sha256:
            raise LvtEdgeError(
                f"{ckpt.path} is not the checkpoint this bundle was exported from (weights sha256 differs); "
                "pass the original with checkpoint=PATH, or re-export the bundle from this one"
            )
        super().__init__(ckpt.contract, precision="fp32", source=str(ckpt.path))
        if threads is not None:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self._device = torch.device(device)
        self._model = ckpt.model.to(self._device).eval()

    @classmethod
    def from_bundle(cls, workdir: str | os.PathLike, data: dict[str, Any], precision: str, *,
                    checkpoint: str | os.PathLike | None = None, **opts: Any) -> "TorchClassifier":
        if precision != "fp32":
            raise LvtEdgeError(
                f"the torch backend runs the fp32 source model only, not {precision}; "
                f"use backend='onnxruntime' or 'tensorrt' for the {precision} variant"
            )
        path = source_checkpoint(workdir, data, checkpoint)
        sha = None if checkpoint is not None else (data.get("source") or {}).get("sha256")
        clf = cls(path, expect_sha256=sha, **opts)
        if clf.contract != B.bundle_contract(data):
            clf.close()
            raise LvtEdgeError(f"{path} has a different clip contract than the bundle in {workdir}; "
                               "pass the checkpoint the bundle was exported from")
        return clf

    def _logits(self, batch: np.ndarray) -> np.ndarray:
        with self._torch.inference_mode():
            out = self._model(self._torch.from_numpy(batch).to(self._device))
        return out.float().cpu().numpy()

    def _close(self) -> None:
        del self._model
