"""Atomic file writes and content hashes: nothing half-written is ever left behind."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from lvt_edge.errors import LvtEdgeError

NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
NOT_WRITABLE = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted"}


def os_error_message(e: OSError, path: str | os.PathLike | None = None, needed: int | None = None,
                     writing: bool = False) -> str | None:
    """A fix-it message for an environment fault (full disk, read-only or forbidden folder),
    or None when `e` is something else. `path` names the file (else the exception's filename);
    `needed` is the size being written, when known; `writing` says the access was a write."""
    where = path if path is not None else e.filename
    if e.errno in NO_SPACE:
        need = f"; writing it needs about {human_bytes(needed)}" if needed else ""
        return (f"no space left on the device holding {where or 'the output'}{need}{_free_space(where)}; "
                "free some space or choose another output folder")
    if e.errno in NOT_WRITABLE:
        if writing or e.errno == errno.EROFS:
            return f"cannot write {where or 'the output'} ({NOT_WRITABLE[e.errno]}); choose a writable output folder"
        return (f"cannot access {where or 'a file'} ({NOT_WRITABLE[e.errno]}); check its permissions, "
                "or choose a writable output folder")
    return None


def human_bytes(n: int | float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def _free_space(where: str | os.PathLike | None) -> str:
    if where is None:
        return ""
    folder = Path(where)
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        return f" ({human_bytes(shutil.disk_usage(folder).free)} free there)"
    except OSError:
        return ""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, size: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds.

    The temporary file never outlives the block. A full disk or an unwritable folder becomes
    an LvtEdgeError naming `path` (`size`, the bytes to be written, goes into the message).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise LvtEdgeError(os_error_message(e, path.parent, size, writing=True)
                           or f"cannot write to {path.parent}: {e.strerror}; choose a writable output folder") from e
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except OSError as e:
        message = os_error_message(e, path, size, writing=True)
        if message is None:
            raise
        raise LvtEdgeError(message) from e
    finally:
        tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path, size=len(data)) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write strict JSON: NaN and infinities are refused (they are not JSON; a missing number
    is None, written as null), naming where they are."""
    try:
        text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as e:
        bad = ", ".join(nonfinite_paths(obj)[:5]) or "?"
        raise ValueError(f"refusing to write NaN/infinity into {path} (at {bad}); "
                         "a number that is legitimately missing must be None") from e
    write_text_atomic(path, text + "\n")


def nonfinite_paths(obj: Any, where: str = "$") -> list[str]:
    """Where NaN or an infinity sits in a JSON-like object ("$.a[2].b")."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [where]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in nonfinite_paths(v, f"{where}.{k}")]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in nonfinite_paths(v, f"{where}[{i}]")]
    return []


def finite_or_none(x: float | None) -> float | None:
    """x as a float, or None where it is missing, NaN or infinite (JSON has no such numbers)."""
    return None if x is None or not math.isfinite(x) else float(x)


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


_CHECKS = {
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "float": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), "a number"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "dict": (lambda v: isinstance(v, dict), "an object"),
    "list": (lambda v: isinstance(v, list), "a list"),
}


def type_error(value: Any, kind: str) -> str | None:
    """Why `value` is not of JSON kind `kind` (a dataclass annotation such as "int",
    "float | None", "tuple[str, ...]", "tuple[float, float, float]"), or None when it is.
    Unknown kinds pass: the dataclass checks them itself."""
    kind = kind.replace(" ", "")
    if kind.endswith("|None"):
        return None if value is None else type_error(value, kind[: -len("|None")])
    if kind.startswith("tuple[") and kind.endswith("]"):
        parts = kind[len("tuple["):-1].split(",")
        item = parts[0]
        if not isinstance(value, list) or not all(type_error(v, item) is None for v in value):
            return f"must be a list of {_CHECKS.get(item, (None, item))[1].split(' ', 1)[-1]}s, got {_short_repr(value)}"
        if parts[-1] != "..." and len(value) != len(parts):
            return f"must have {len(parts)} items, got {len(value)}"
        return None
    if kind in _CHECKS:
        ok, name = _CHECKS[kind]
        return None if ok(value) else f"must be {name}, got {_short_repr(value)}"
    return None


def dataclass_dict_errors(cls: type, d: dict[str, Any], where: str) -> list[str]:
    """Type problems of a dict meant for `cls(**d)` ("where.field must be an integer, got '8'"),
    read from the dataclass's own annotations so no field is declared twice."""
    import dataclasses

    kinds = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
             for f in dataclasses.fields(cls)}
    return [f"{where}.{k} {why}" for k, v in d.items() if k in kinds and (why := type_error(v, kinds[k]))]


def _short_repr(value: Any) -> str:
    r = repr(value)
    return r if len(r) <= 60 else r[:57] + "..."


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """Hash of a JSON-serialisable object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode("utf-8")).hexdigest()
