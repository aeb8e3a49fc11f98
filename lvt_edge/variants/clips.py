"""The clips a build calibrates on and verifies with.

With no clip set given, both come from the synthetic motion generator, cached in
WORKDIR/.cache/synth by split, seed and count: calibration clips from the "calib" split,
held-out clips from the "test" split with another seed, so none was seen in training
or calibration. With a clip set given, the held-out clips are the ones calibration did not use.

Calibration needs pixels only, so it takes any clips whatever their labels (a 174-class model
calibrates on local motion clips); labels matter only for the held-out accuracy check, which
runs when the clips' labels are the model's (`labels_match`).
Callers hold the work folder's lock (`lvt_edge.workdir.workdir_lock`), so one build at
a time reads and fills the synthetic-clip cache.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import shutil
import warnings
from pathlib import Path

from lvt_edge.variants.cache import cache_root
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError, LvtEdgeWarning

# Fewer clips than this give noisy activation ranges (one clip per class and a few more):
# the build warns. Zero clips is an error.
MIN_CALIB_CLIPS = 32
DEFAULT_CALIB_SIZE = 256
# The must-show accuracy comparisons need >= 500 held-out clips; generating, decoding and
# running 500 tiny clips at three precisions takes about a minute on 2 cores.
DEFAULT_EVAL_SIZE = 500
CALIB_SEED = 0
EVAL_SEED = 20261124  # unseen by training (train/val splits) and by calibration


class CalibrationWarning(LvtEdgeWarning):
    """The calibration set is small enough to make int8/fp16 ranges unreliable."""


def synthetic_clipset(workdir: str | os.PathLike, *, split: str, num: int, seed: int, progress: bool = True):
    """A synthetic clip set of `num` clips, generated once per (split, seed, num) under WORKDIR/.cache.

    A cached folder that is not a complete set (an interrupted or foreign write) is made again."""
    from lvt_edge.data import open_clipset
    from lvt_edge.data import synth

    folder = cache_root(workdir) / "synth" / f"{split}-seed{seed}-n{num}"
    manifest = folder / "manifest.csv"
    if folder.exists() and not _complete_synth(folder, split=split, num=num, seed=seed):
        shutil.rmtree(folder)
    if not manifest.is_file():
        synth.generate(folder, split=split, num=num, seed=seed, progress=progress)
    return open_clipset(manifest)


def _complete_synth(folder: Path, *, split: str, num: int, seed: int) -> bool:
    try:
        info = json.loads((folder / "synth.json").read_text())
        rows = (folder / "manifest.csv").read_text().splitlines()[1:]
    except (OSError, ValueError):
        return False
    return ((info.get("split"), info.get("num"), info.get("seed")) == (split, num, seed)
            and len(rows) == num and all((folder / r.split(",")[0]).is_file() for r in rows))


def open_calibration_set(calib: str | os.PathLike):
    """A clip set with its own labels (labels.txt or the names found): calibration ignores them."""
    from lvt_edge.data import open_clipset

    return open_clipset(calib)


def labels_match(clipset, contract: ClipContract) -> bool:
    """Whether every clip's label is one of the model's, so top-1 on `clipset` means something."""
    return {c.label for c in clipset.clips} <= set(contract.labels)


def load_pixels(clipset, contract: ClipContract, *, progress: bool = True):
    """Clips preprocessed by `contract` whatever their labels (LoadedClips; labels index
    clipset.labels, not the model's)."""
    from lvt_edge.data import load_clips

    return load_clips(clipset, contract.replace(labels=clipset.labels), progress=progress)


def calibration_subset(clipset, size: int | None, seed: int = CALIB_SEED):
    """The class-balanced subset calibration uses; warns when small, fails when empty."""
    check_count("--calib-size", size, minimum=1, optional=True)
    subset = clipset.subset(size, seed)
    if len(subset) == 0:
        raise LvtEdgeError(f"calibration set {clipset.root} has no clips; pass a clip set with --calib")
    if len(subset) < MIN_CALIB_CLIPS:
        warnings.warn(
            f"calibrating on only {len(subset)} clips (fewer than {MIN_CALIB_CLIPS}); int8/fp16 ranges "
            "may not cover real inputs. Use a larger clip set or --calib-size",
            CalibrationWarning, stacklevel=2,
        )
    return subset


def held_out(clipset, used, size: int, seed: int = CALIB_SEED):
    """Up to `size` clips of `clipset` that calibration did not use (None if there are none)."""
    seen = {(c.path, c.start, c.end) for c in used.clips}
    rest = tuple(c for c in clipset.clips if (c.path, c.start, c.end) not in seen)
    if not rest:
        return None
    return dataclasses.replace(clipset, clips=rest).subset(size, seed)


#: hex digits kept of each calibration clip's digest in bundle.json (64 bits: no accidental match)
DIGEST_PREFIX = 16


def describe(clipset, *, digests: bool = False) -> dict:
    """What bundle.json records about a clip set; `digests` adds each clip's (shortened) digest, so a
    report can tell exactly which eval clips were used to calibrate."""
    root = Path(clipset.root)
    out = {"root": root.name, "clips": len(clipset), "content_hash": clipset.content_hash}
    if digests:
        out["digests"] = sorted(c.digest()[:DIGEST_PREFIX] for c in clipset.clips)
    return out


def check_count(flag: str, value, *, minimum: int, optional: bool = False) -> None:
    """`value` must be a whole number >= `minimum` (or None when `optional`)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise LvtEdgeError(f"{flag} must be >= {minimum}, a whole number (got {value!r})")
