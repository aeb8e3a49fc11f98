"""Is the eval set fit to judge the bundle? Warnings for an eval set that overlaps the
calibration clips and for classes with too few (or no) clips."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

import numpy as np

#: Fewer eval clips than this in a class make its accuracy (and a gate over it) a guess.
MIN_CLIPS_PER_CLASS = 5


def _content_hash(digests: Iterable[str]) -> str:
    """ClipSet.content_hash from per-clip digests (the same sum, without hashing files again)."""
    h = hashlib.sha256()
    for d in sorted(digests):
        h.update(bytes.fromhex(d))
    return h.hexdigest()


def calibration_overlap(bundle: dict[str, Any], clipset: Any) -> dict[str, Any]:
    """How the eval clips meet each variant's calibration clips, from bundle.json's records.

    Per-clip digests (`calibration.clipset.digests`) are compared one by one when the build
    recorded them. Otherwise only the subset's content hash is known: the eval set matches when
    it is the calibration subset itself, or when the subset build would draw from it (same size,
    same seed) is that subset, i.e. the eval set is the clip set the bundle was calibrated on.
    A partial overlap without digests (bundles built before they were recorded) cannot be seen.
    """
    from lvt_edge.variants.clips import CALIB_SEED

    by_clip = {c: c.digest() for c in clipset.clips}
    eval_hash = _content_hash(by_clip.values())
    out: dict[str, Any] = {"method": None, "overlapping_clips": 0, "variants": []}
    for precision, entry in sorted((bundle.get("variants") or {}).items()):
        calib = ((entry or {}).get("calibration") or {}).get("clipset") or {}
        if not calib:
            continue
        digests = calib.get("digests")
        if digests:
            used, width = set(digests), len(digests[0])  # recorded shortened: compare as long a prefix
            n = sum(1 for d in by_clip.values() if d[:width] in used)
            method = "clip digests"
        elif calib.get("content_hash") == eval_hash:
            n, method = len(by_clip), "content hash"
        elif calib.get("content_hash") and 0 < int(calib.get("clips") or 0) < len(by_clip):
            drawn = clipset.subset(int(calib["clips"]), CALIB_SEED).clips
            n = len(drawn) if _content_hash(by_clip[c] for c in drawn) == calib["content_hash"] else 0
            method = "content hash of the calibration draw"
        else:
            n, method = 0, "content hash"
        out["method"] = out["method"] or method
        if n:
            out["overlapping_clips"] = max(out["overlapping_clips"], n)
            out["variants"].append(precision)
    return out


def overlap_warning(overlap: dict[str, Any], total: int) -> str | None:
    if not overlap["variants"]:
        return None
    return (f"eval set overlaps the calibration clips of {', '.join(overlap['variants'])}: "
            f"{overlap['overlapping_clips']} of {total} eval clips were used to calibrate ({overlap['method']}); "
            "accuracy is optimistic, evaluate on held-out clips")


def class_count_warnings(labels: np.ndarray, class_names: Sequence[str]) -> list[str]:
    """Warnings for classes with no eval clips and with fewer than MIN_CLIPS_PER_CLASS."""
    counts = np.bincount(np.asarray(labels, np.int64), minlength=len(class_names))
    empty = [n for n, c in zip(class_names, counts) if c == 0]
    few = [f"{n} ({c})" for n, c in zip(class_names, counts) if 0 < c < MIN_CLIPS_PER_CLASS]
    out = []
    if empty:
        out.append(f"{len(empty)} of {len(class_names)} classes have no eval clips ({_names(empty)}): "
                   "top-1 and the gate say nothing about them")
    if few:
        out.append(f"{len(few)} classes have fewer than {MIN_CLIPS_PER_CLASS} eval clips ({_names(few)}): "
                   "their accuracy is a guess; use a larger clip set")
    return out


def _names(names: list[str], shown: int = 6) -> str:
    return ", ".join(names[:shown]) + (f", +{len(names) - shown} more" if len(names) > shown else "")
