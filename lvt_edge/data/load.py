"""Clip set -> arrays under a clip contract, skipping (and counting) bad clips."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lvt_edge.contract import ClipContract
from lvt_edge.data.clipset import Clip, ClipSet
from lvt_edge.data.decode import BadClip, decode_clip
from lvt_edge.errors import LvtEdgeError, LvtEdgeWarning


class BadClipWarning(LvtEdgeWarning):
    """A clip was skipped; the message names it and says why."""


@dataclass
class DecodedClips:
    """Clips as the contract samples them, before normalisation.

    frames: uint8 N x T x size x size x 3 in the contract's channel order.
    labels: int64 N, indices into contract.labels.
    """

    frames: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class LoadedClips:
    """Model-ready clips: float32 N x 3 x T x H x W normalised by the contract."""

    clips: np.ndarray
    labels: np.ndarray
    paths: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


def decode_clips(clipset: ClipSet, contract: ClipContract, *, max_bad_fraction: float = 0.05,
                 progress: bool = True) -> DecodedClips:
    """Decode every clip of `clipset` under `contract` into uint8 frames (N x T x H x W x 3).

    Bad clips are skipped with a BadClipWarning; more than `max_bad_fraction` of them, none
    left, or a class that had clips and has none left, is an LvtEdgeError."""
    from lvt_edge.console import bar

    index = _label_index(clipset, contract)
    frames, labels, paths, skipped, bad = [], [], [], [], []
    for clip in bar(clipset.clips, "decoding clips", "clip", enabled=progress):
        try:
            frames.append(decode_clip(clip, contract))
        except BadClip as e:
            skipped.append((clip.path, str(e)))
            bad.append(clip)
            warnings.warn(f"skipping {clip.path}: {e}", BadClipWarning, stacklevel=2)
            continue
        labels.append(index[clip.label])
        paths.append(clip.path)
    _check_bad(clipset, skipped, max_bad_fraction)
    _check_classes_kept(clipset, bad, skipped)
    return DecodedClips(np.stack(frames), np.asarray(labels, np.int64), paths, skipped)


def load_clips(clipset: ClipSet, contract: ClipContract, *, max_bad_fraction: float = 0.05,
               progress: bool = True) -> LoadedClips:
    """Decode and preprocess `clipset` under `contract`: float32 N x 3 x T x H x W."""
    d = decode_clips(clipset, contract, max_bad_fraction=max_bad_fraction, progress=progress)
    clips = np.stack([contract.normalize(f) for f in d.frames])
    return LoadedClips(clips, d.labels, d.paths, d.skipped)


def _label_index(clipset: ClipSet, contract: ClipContract) -> dict[str, int]:
    if not contract.labels:
        raise LvtEdgeError("the clip contract has no labels; clips cannot be matched to classes")
    index = {label: i for i, label in enumerate(contract.labels)}
    unknown = sorted({c.label for c in clipset.clips} - set(index))
    if unknown:
        raise LvtEdgeError(
            f"clip set {clipset.root} has labels the model does not know: {', '.join(unknown)}; "
            f"the model's labels are {', '.join(contract.labels)}. Use a matching clip set, "
            "or fine-tune the model on these labels (`lvt-edge train --finetune`)."
        )
    return index


def _check_bad(clipset: ClipSet, skipped: list[tuple[Path, str]], max_bad_fraction: float) -> None:
    total = len(clipset.clips)
    if len(skipped) == total:
        raise LvtEdgeError(f"no usable clips in {clipset.root}: all {total} were bad "
                           f"(first: {skipped[0][0]}: {skipped[0][1]})")
    if len(skipped) > max_bad_fraction * total:
        listed = "; ".join(f"{p}: {why}" for p, why in skipped[:5])
        more = f" (+{len(skipped) - 5} more)" if len(skipped) > 5 else ""
        raise LvtEdgeError(
            f"{len(skipped)} of {total} clips in {clipset.root} are bad, more than the allowed "
            f"{max_bad_fraction:.0%}: {listed}{more}. Remove or re-encode them, or raise the allowed fraction."
        )


def _check_classes_kept(clipset: ClipSet, bad: list[Clip], skipped: list[tuple[Path, str]]) -> None:
    """A class whose every clip is bad would stay in the label list with nothing to learn from
    or to measure: an error naming it, whatever fraction of the whole set that is."""
    bad_set, reasons = set(bad), dict(skipped)
    by_label: dict[str, list[Clip]] = {}
    for c in clipset.clips:
        by_label.setdefault(c.label, []).append(c)
    lost = [(label, [c.path for c in cs]) for label, cs in by_label.items() if all(c in bad_set for c in cs)]
    if lost:
        label, paths = lost[0]
        where = clipset.root / label if clipset.layout == "folders" else clipset.root
        others = f" (also: {', '.join(repr(x) for x, _ in lost[1:])})" if len(lost) > 1 else ""
        raise LvtEdgeError(
            f"class {label!r} in {where} has no usable clip: all {len(paths)} of its clips are bad "
            f"(first: {paths[0].name}: {reasons[paths[0]]}){others}. Replace or re-encode its clips, or "
            "remove the class from the clip set")
