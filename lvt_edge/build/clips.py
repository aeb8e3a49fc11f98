"""The clips a build calibrates on and verifies with.

With no clip set given, both come from the synthetic motion generator, cached in
WORKDIR/.cache/synth by split, seed and count: calibration clips from the "calib" split,
held-out clips from the "test" split with another seed, so none was seen in training
or calibration. With a clip set given, the held-out clips are the ones calibration did not use.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

from lvt_edge.build.cache import cache_root
from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError

# Fewer clips than this give noisy activation ranges (one clip per class and a few more):
# the build warns. Zero clips is an error.
MIN_CALIB_CLIPS = 32
DEFAULT_CALIB_SIZE = 256
# The must-show accuracy comparisons need >= 500 held-out clips; generating, decoding and
# running 500 tiny clips at three precisions takes about a minute on 2 cores.
DEFAULT_EVAL_SIZE = 500
CALIB_SEED = 0
EVAL_SEED = 20261124  # unseen by training (train/val splits) and by calibration


class CalibrationWarning(UserWarning):
    """The calibration set is small enough to make int8/fp16 ranges unreliable."""


def synthetic_clipset(workdir: str | os.PathLike, *, split: str, num: int, seed: int, contract: ClipContract,
                      progress: bool = True):
    """A synthetic clip set of `num` clips, generated once per (split, seed, num) under WORKDIR/.cache."""
    from lvt_edge.data import open_clipset
    from lvt_edge.data import synth

    folder = cache_root(workdir) / "synth" / f"{split}-seed{seed}-n{num}"
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        synth.generate(folder, split=split, num=num, seed=seed, progress=progress)
    _check_labels(contract, synth.LABELS)
    return open_clipset(manifest, labels=contract.labels)


def _check_labels(contract: ClipContract, synth_labels: tuple[str, ...]) -> None:
    unknown = sorted(set(synth_labels) - set(contract.labels))
    if unknown:
        raise LvtEdgeError(
            f"the model's labels ({', '.join(contract.labels)}) are not the synthetic motion classes, so "
            "synthetic clips cannot calibrate or verify it; pass your own clips with --calib CLIPSET"
        )


def open_calibration_set(calib: str | os.PathLike, contract: ClipContract):
    from lvt_edge.data import open_clipset

    return open_clipset(calib, labels=contract.labels)


def calibration_subset(clipset, size: int | None, seed: int = CALIB_SEED):
    """The class-balanced subset calibration uses; warns when small, fails when empty."""
    if size is not None and size < 1:
        raise LvtEdgeError(f"--calib-size must be >= 1 (got {size})")
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


def describe(clipset) -> dict:
    root = Path(clipset.root)
    return {"root": root.name, "clips": len(clipset), "content_hash": clipset.content_hash}
