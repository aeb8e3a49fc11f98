"""Calibration cache: a calibrated ONNX is reused while the model, the clips and the settings
that made it are unchanged.

An entry is a folder WORKDIR/.cache/calib/<precision>-<key>/ holding `model.onnx` and
`meta.json`; it appears in one rename, so an interrupted build never leaves half an entry.
meta.json records the sha256 of model.onnx; an entry whose file no longer matches (disk
trouble, a hand edit, an older lvt_edge that recorded none) is reported, removed and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from lvt_edge.io import sha256_file, sha256_json

CACHE_DIR = ".cache"
# Temporaries an interrupted build can leave under WORKDIR/.cache (see `sweep_stale`).
CACHE_TEMPORARIES = ("calib/.*", "synth/.*")


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
    """Calibrated ONNX files by key, under WORKDIR/.cache/calib. `log` hears about corrupt entries."""

    def __init__(self, workdir: str | os.PathLike, log: Callable[[str], None] | None = None) -> None:
        self.root = cache_root(workdir) / "calib"
        self.log = log or (lambda msg: None)

    def _folder(self, precision: str, key: str) -> Path:
        return self.root / f"{precision}-{key}"

    def get(self, precision: str, key: str) -> CacheEntry | None:
        """The entry for `key` if it exists and its model.onnx still has the recorded sha256;
        a corrupt entry is reported and removed (so the caller recalibrates) and gives None."""
        entry = CacheEntry(self._folder(precision, key))
        if not entry.folder.exists():
            return None
        why = _corruption(entry)
        if why is None:
            return entry
        self.log(f"calibration cache entry {entry.folder.name} is corrupt ({why}); recalibrating")
        shutil.rmtree(entry.folder, ignore_errors=True)
        return None

    def put(self, precision: str, key: str, onnx_file: str | os.PathLike, meta: dict[str, Any]) -> CacheEntry:
        """Copy `onnx_file` and `meta` into a new entry (replacing an old one with the same key)."""
        final = self._folder(precision, key)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=self.root))
        try:
            shutil.copyfile(onnx_file, tmp / "model.onnx")
            meta = dict(meta, onnx_sha256=sha256_file(tmp / "model.onnx"))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return CacheEntry(final)


def _corruption(entry: CacheEntry) -> str | None:
    """Why `entry` cannot be trusted, or None."""
    if not entry.onnx.is_file():
        return "model.onnx is missing"
    try:
        meta = entry.meta
    except (OSError, ValueError) as e:
        return f"meta.json is unreadable: {e}"
    recorded = meta.get("onnx_sha256") if isinstance(meta, dict) else None
    if not recorded:
        return "meta.json records no sha256 of model.onnx"
    if sha256_file(entry.onnx) != recorded:
        return "model.onnx does not match the sha256 in meta.json"
    if not isinstance(meta.get("info"), dict) or "build_time_s" not in meta:
        return "meta.json lacks the build record"
    return None
