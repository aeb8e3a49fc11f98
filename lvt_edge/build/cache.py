"""Calibration cache: a calibrated ONNX is reused while the model, the clips and the settings
that made it are unchanged.

An entry is a folder WORKDIR/.cache/calib/<precision>-<key>/ holding `model.onnx` and
`meta.json`; it appears in one rename, so an interrupted build never leaves half an entry.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvt_edge.io import sha256_json

CACHE_DIR = ".cache"


def cache_root(workdir: str | os.PathLike) -> Path:
    return Path(workdir) / CACHE_DIR


def calibration_key(precision: str, model_sha256: str, clips_hash: str, settings: dict[str, Any]) -> str:
    """The key of one calibration: model hash + clip subset content hash + settings."""
    return sha256_json({"precision": precision, "model": model_sha256, "clips": clips_hash,
                        "settings": settings})[:20]


@dataclass(frozen=True)
class CacheEntry:
    folder: Path

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.folder / "meta.json").read_text())


class CalibrationCache:
    """Calibrated ONNX files by key, under WORKDIR/.cache/calib."""

    def __init__(self, workdir: str | os.PathLike) -> None:
        self.root = cache_root(workdir) / "calib"

    def _folder(self, precision: str, key: str) -> Path:
        return self.root / f"{precision}-{key}"

    def get(self, precision: str, key: str) -> CacheEntry | None:
        entry = CacheEntry(self._folder(precision, key))
        if entry.onnx.is_file() and (entry.folder / "meta.json").is_file():
            return entry
        return None

    def put(self, precision: str, key: str, onnx_file: str | os.PathLike, meta: dict[str, Any]) -> CacheEntry:
        """Copy `onnx_file` and `meta` into a new entry (replacing an old one with the same key)."""
        final = self._folder(precision, key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.root))
        try:
            shutil.copyfile(onnx_file, tmp / "model.onnx")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return CacheEntry(final)
