"""A work folder's rules, which export and build both follow: one run per folder at a time
(`workdir_lock`), files and bundle.json committed together or not at all (`commit`), and
temporaries of interrupted runs swept (`sweep_stale`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from lvt_edge.errors import LvtEdgeError

LOCK_FILE = ".lock"
# How long a second export/build waits for the folder before failing.
LOCK_TIMEOUT_S = 600.0
# Temporaries of interrupted runs are swept once this old; a younger one may belong to a
# run in another folder sharing the name pattern, or to a run of an older lvt_edge.
STALE_AFTER_S = 24 * 3600.0
_held_locks: dict[str, int] = {}  # per thread: flock excludes other threads' fds too


@contextlib.contextmanager
def workdir_lock(workdir: str | os.PathLike, *, log: Callable[[str], None] | None = None,
                 timeout: float | None = None) -> Iterator[Path]:
    """Hold WORKDIR/.lock (fcntl.flock) for the block: one export or build per folder at a time.

    A second run says it waits and waits up to `timeout` (LOCK_TIMEOUT_S), then fails with an
    LvtEdgeError. Re-entrant within a thread (build exports under its own lock). The lock
    file is removed on release; a waiter that wakes on a removed file tries again.
    """
    workdir = _checked_workdir(Path(workdir))
    path = workdir / LOCK_FILE
    key = f"{threading.get_ident()}:{path.resolve()}"
    if _held_locks.get(key):
        _held_locks[key] += 1
        try:
            yield workdir
        finally:
            _held_locks[key] -= 1
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield workdir
        return
    deadline = time.monotonic() + (LOCK_TIMEOUT_S if timeout is None else timeout)
    said = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise LvtEdgeError(f"cannot create the lock file {path}: {e.strerror}; choose a writable folder") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = _lock_owner(path)
            if time.monotonic() >= deadline:
                raise LvtEdgeError(
                    f"{workdir} is still in use by another lvt-edge run{owner} after "
                    f"{LOCK_TIMEOUT_S if timeout is None else timeout:.0f} s; wait for it to finish, or use "
                    "another folder") from None
            if not said and log:
                log(f"{workdir} is in use by another lvt-edge run{owner}; waiting for it to finish")
                said = True
            time.sleep(0.2)
            continue
        except BaseException:
            os.close(fd)
            raise
        try:  # the holder may have removed the file between our open and our flock
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _held_locks[key] = 1
        yield workdir
    finally:
        _held_locks.pop(key, None)
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _lock_owner(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""


def _checked_workdir(workdir: Path) -> Path:
    if workdir.exists() and not workdir.is_dir():
        raise LvtEdgeError(f"{workdir} is a file, not a folder; pass a folder for the bundle")
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LvtEdgeError(f"cannot create output folder {workdir}: {e.strerror}; choose a writable folder") from e
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise LvtEdgeError(f"output folder {workdir} is not writable; choose another folder")
    return workdir


def sweep_stale(folder: str | os.PathLike, patterns: Sequence[str], *, log: Callable[[str], None] | None = None,
                older_than_s: float = STALE_AFTER_S) -> list[str]:
    """Remove files and folders under `folder` matching our temporary-name `patterns` and older
    than `older_than_s`: what a killed run could not clean. Returns their names."""
    folder = Path(folder)
    now, removed = time.time(), []
    for pattern in patterns:
        for p in folder.glob(pattern):
            try:
                if now - p.lstat().st_mtime < older_than_s:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except OSError:
                continue
            removed.append(str(p.relative_to(folder)))
    if removed and log:
        log(f"removed {len(removed)} temporar{'y' if len(removed) == 1 else 'ies'} left by an interrupted run "
            f"in {folder}: {', '.join(removed[:5])}{' ...' if len(removed) > 5 else ''}")
    return removed


@contextlib.contextmanager
def temp_beside(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file name next to `path` (`.NAME.*.tmp`), removed when the block ends."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise LvtEdgeError(f"cannot write to {path.parent}: {e.strerror}; choose a writable output folder") from e
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        Path(tmp).unlink(missing_ok=True)


def commit(moves: Iterable[tuple[Path, Path]], finish: Callable[[], None]) -> None:
    """Move each (tmp, dst) into place, then call `finish` (it writes bundle.json). If anything
    fails or is interrupted before `finish` returns, every dst gets its previous content back,
    so the files and bundle.json always describe each other."""
    backups: dict[Path, Path] = {}
    moved: list[Path] = []
    try:
        for tmp, dst in moves:
            if dst.exists():
                bak = dst.with_name(f".{dst.name}.{os.getpid()}.bak.tmp")
                try:
                    os.link(dst, bak)
                except OSError:
                    shutil.copy2(dst, bak)
                backups[dst] = bak
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, dst)
            moved.append(dst)
        finish()
    except BaseException:
        for dst in reversed(moved):
            if dst in backups:
                os.replace(backups.pop(dst), dst)
            else:
                dst.unlink(missing_ok=True)
        raise
    finally:
        for bak in backups.values():
            bak.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
