"""Finding a bundle's artifacts and checking they are the ones bundle.json describes."""

from __future__ import annotations

import os
from pathlib import Path

from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file


def checked_file(workdir: str | os.PathLike, name: str, sha256: str | None, *, what: str, rebuild: str) -> Path:
    """WORKDIR/name, which must exist and (when the bundle recorded one) match its hash.

    `rebuild` is the command that remakes the file; it goes into the error messages.
    """
    path = Path(name) if Path(name).is_absolute() else Path(workdir) / name
    if not path.is_file():
        raise LvtEdgeError(f"{what} {path} is missing; remake it with `{rebuild}`")
    if sha256 and sha256_file(path) != sha256:
        raise LvtEdgeError(
            f"{what} {path} is not the file bundle.json describes (its sha256 differs); "
            f"it was changed after the build: remake it with `{rebuild}`"
        )
    return path
