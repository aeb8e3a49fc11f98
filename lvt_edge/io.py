"""Atomic file writes and content hashes: nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from lvt_edge.errors import LvtEdgeError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise LvtEdgeError(
            f"cannot write to {path.parent}: {e.strerror}; choose a writable output folder"
        ) from e
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_format_json(path: str | os.PathLike, fmt: str, version: int, what: str, fix: str) -> dict[str, Any]:
    """Read one of our JSON artifacts, checking its `format` tag and that no newer lvt_edge wrote it.

    `what` names the artifact ("an lvt_edge checkpoint"); `fix` says what to do about a bad one.
    """
    try:
        obj = json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LvtEdgeError(f"{path} is not valid JSON ({e}); is it {what}? {fix}") from e
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        raise LvtEdgeError(f"{path} is not {what} (no \"format\": \"{fmt}\"); {fix}")
    if obj.get("format_version", 0) > version:
        raise LvtEdgeError(f"{path} was written by a newer lvt_edge ({obj.get('lvt_edge_version', '?')}); "
                           "upgrade lvt_edge to read it")
    return obj


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-serialisable object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()
