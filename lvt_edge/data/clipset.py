"""Clip sets: which clips exist, their labels, subsets and a content hash (no decoding here).

Three layouts are read (see calib/README.md):
- a folder per class: ROOT/<label>/<clip>, a clip being a video file or a folder of frames;
- a manifest, CSV or JSONL, with `path,label[,start,end]` (paths relative to the manifest's
  folder; start/end are frame indices, end exclusive); a folder holding exactly one
  `manifest.csv` or `manifest.jsonl` is read through it;
- folders of frames (one folder per clip, images in natural name order: `2.jpg` before
  `10.jpg`), inside class folders or listed in a manifest.
An optional `labels.txt` (one label per line) at the root fixes the label order; otherwise
labels are sorted by name. Manifests and `labels.txt` are UTF-8 (a BOM is allowed).
Every class folder must hold at least one clip, so a class never silently drops out of the
label list.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import sha256_file

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MANIFEST_SUFFIXES = (".csv", ".jsonl")
MANIFEST_NAMES = ("manifest.csv", "manifest.jsonl")
LABELS_FILE = "labels.txt"


@dataclass(frozen=True)
class Clip:
    """One labelled clip: a video file or a folder of frames, optionally a frame range."""

    path: Path
    label: str
    start: int | None = None
    end: int | None = None

    @property
    def is_frames(self) -> bool:
        return self.path.is_dir()

    def frame_files(self) -> list[Path]:
        """The image files of a frame-folder clip, in natural name order (see `frame_order`)."""
        return frame_order([p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES], self.path)

    def digest(self) -> str:
        """Hash of the clip's bytes, label and frame range (not of its path)."""
        h = hashlib.sha256()
        if self.is_frames:
            # Plain byte order of the names, not the reading order: hashes stay what they were.
            frames = [p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            for f in sorted(frames, key=lambda p: os.fsencode(p.name)):
                h.update(os.fsencode(f.name) + b"\0" + bytes.fromhex(sha256_file(f)))
        elif self.path.is_file():
            h.update(bytes.fromhex(sha256_file(self.path)))
        else:
            h.update(b"<missing>")
        h.update(json.dumps([self.label, self.start, self.end]).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class ClipSet:
    """Labelled clips under one root. `labels` is the label list; index = class id."""

    root: Path
    labels: tuple[str, ...]
    clips: tuple[Clip, ...]
    layout: str = "folders"

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def counts(self) -> dict[str, int]:
        """Clips per label, in label order."""
        out = {label: 0 for label in self.labels}
        for c in self.clips:
            out[c.label] += 1
        return out

    def subset(self, size: int | None, seed: int = 0) -> "ClipSet":
        """A deterministic, class-balanced subset of `size` clips (all clips if size is None or
        too big). Classes take turns; a class that runs out leaves its turns to the others."""
        if size is None or size >= len(self.clips):
            return self
        if size < 1:
            raise LvtEdgeError(f"subset size must be >= 1 (got {size})")
        rng = np.random.default_rng(seed)
        by_label: dict[str, list[Clip]] = {label: [] for label in self.labels}
        for c in sorted(self.clips, key=_sort_key):
            by_label[c.label].append(c)
        queues = [[q[i] for i in rng.permutation(len(q))] for q in by_label.values() if q]
        order = rng.permutation(len(queues))
        picked: list[Clip] = []
        depth = 0
        while len(picked) < size:
            for qi in order:
                if depth < len(queues[qi]) and len(picked) < size:
                    picked.append(queues[qi][depth])
            depth += 1
        return replace(self, clips=tuple(sorted(picked, key=_sort_key)))

    @functools.cached_property
    def content_hash(self) -> str:
        """sha256 over the clips' bytes, labels and frame ranges; independent of order and paths."""
        h = hashlib.sha256()
        for d in sorted(c.digest() for c in self.clips):
            h.update(bytes.fromhex(d))
        return h.hexdigest()


def _sort_key(c: Clip) -> tuple:
    return (str(c.path), c.start or 0, c.end or 0)


_DIGITS = re.compile(r"(\d+)")


def _natural_key(stem: str) -> tuple:
    """'img_10' -> ('img_', 10, ''): runs of digits compare as numbers, so 2 sorts before 10."""
    parts = _DIGITS.split(stem)
    return tuple(int(x) if i % 2 else x for i, x in enumerate(parts))


def frame_order(files: Sequence[Path], folder: Path | None = None) -> list[Path]:
    """Frame files in natural order of their names (`1.jpg, 2.jpg, ..., 10.jpg`, as ffmpeg's
    `%d.jpg` writes them). Names that give the same position (`1.jpg` and `01.jpg`, or `1.jpg`
    and `1.png`) are an error: no order between them is right."""
    keyed = sorted(((_natural_key(p.stem), p.name, p) for p in files), key=lambda t: (t[0], t[1]))
    for (k1, n1, _), (k2, n2, _) in zip(keyed, keyed[1:]):
        if k1 == k2:
            where = folder if folder is not None else Path(n1).parent
            raise LvtEdgeError(
                f"frame folder {where} has frames {n1!r} and {n2!r} at the same position in the frame "
                "order, so the order of its frames is ambiguous; keep one numbering and one image type "
                "per folder (e.g. ffmpeg's %05d.jpg)")
    return [p for _, _, p in keyed]


def open_clipset(path: str | os.PathLike, labels: Sequence[str] | None = None) -> ClipSet:
    """Read a clip set in any supported layout. `labels` fixes the label list (and its order);
    clips with a label outside it are an error."""
    p = Path(path)
    if not p.exists():
        raise LvtEdgeError(f"clip set {p} not found; pass a folder per class, a manifest (.csv/.jsonl) "
                           "or make one with `lvt-edge clips synth`")
    if p.is_file():
        if p.suffix.lower() not in MANIFEST_SUFFIXES:
            raise LvtEdgeError(f"{p} is not a clip-set manifest; manifests end in .csv or .jsonl")
        clips, layout, root = _read_manifest(p), "manifest", p.parent
    else:
        manifests = [p / n for n in MANIFEST_NAMES if (p / n).is_file()]
        if len(manifests) > 1:
            raise LvtEdgeError(f"{p} has both {' and '.join(MANIFEST_NAMES)}; keep one or pass the one to use")
        if manifests:
            clips, layout, root = _read_manifest(manifests[0]), "manifest", p
        else:
            clips, layout, root = _read_class_folders(p), "folders", p
    if not clips:
        raise LvtEdgeError(f"clip set {p} has no clips; see calib/README.md for the layouts")
    label_list = _label_list(root, clips, labels)
    return ClipSet(root=root, labels=label_list, clips=tuple(sorted(clips, key=_sort_key)), layout=layout)


def _label_list(root: Path, clips: list[Clip], labels: Sequence[str] | None) -> tuple[str, ...]:
    if labels is None and (root / LABELS_FILE).is_file():
        labels = [s.strip() for s in read_utf8(root / LABELS_FILE).splitlines() if s.strip()]
    if labels is None:
        return tuple(sorted({c.label for c in clips}))
    labels = tuple(str(x) for x in labels)
    unknown = sorted({c.label for c in clips} - set(labels))
    if unknown:
        raise LvtEdgeError(
            f"clip set {root} has labels not in the label list: {', '.join(unknown)}; "
            f"known labels are {', '.join(labels)}. Fix the labels or the label list."
        )
    return labels


def _read_class_folders(root: Path) -> list[Clip]:
    """Clips of every class folder. A class folder without any clip is an error: dropping it
    would silently remove its class from the label list (and shift every class id after it)."""
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        return []
    clips = []
    for class_dir in class_dirs:
        if not _is_utf8(class_dir.name):
            raise LvtEdgeError(
                f"class folder {class_dir} has a name that is not valid UTF-8 ({ascii(class_dir.name)}); "
                "folder names are the class labels and must be text: rename it")
        found, ignored = [], []
        for item in sorted(class_dir.iterdir()):
            if item.name.startswith("."):
                continue
            if item.is_file() and item.suffix.lower() in VIDEO_SUFFIXES:
                found.append(Clip(item, class_dir.name))
            elif item.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in item.iterdir()):
                found.append(Clip(item, class_dir.name))
            else:
                ignored.append(item)
        if not found:
            raise LvtEdgeError(_empty_class_message(class_dir, ignored))
        clips.extend(found)
    return clips


def _empty_class_message(class_dir: Path, ignored: list[Path]) -> str:
    if not ignored:
        held = "nothing"
    else:
        kinds = sorted({"folders without images" if p.is_dir() else (p.suffix.lower() or "no suffix")
                        for p in ignored})
        held = f"{len(ignored)} item(s) that are not clips ({', '.join(kinds)})"
    return (f"class folder {class_dir} has no clips: it holds {held}. A clip is a video "
            f"({' '.join(VIDEO_SUFFIXES)}) or a folder of frames ({' '.join(IMAGE_SUFFIXES)}). "
            "Convert or rename the videos, or remove the folder (or start its name with '.') "
            "to leave the class out")


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def read_utf8(path: Path) -> str:
    """A text file we read (manifest, labels.txt) as UTF-8, with or without a BOM ("CSV UTF-8")."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LvtEdgeError(f"{path} is saved as UTF-16; save it as UTF-8 (\"CSV UTF-8\" in spreadsheet programs)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise LvtEdgeError(
            f"{path}:{line} is not valid UTF-8 (byte {data[e.start]:#04x}); the file was probably saved in "
            "another encoding (e.g. Latin-1 / Windows-1252). Save it as UTF-8 (\"CSV UTF-8\" in "
            "spreadsheet programs) and try again") from None


def _read_manifest(manifest: Path) -> list[Clip]:
    rows = _manifest_rows(manifest)
    root = manifest.parent.resolve()
    clips = []
    for line, row in rows:
        where = f"{manifest}:{line}"
        rel, label = str(row.get("path") or "").strip(), str(row.get("label") or "").strip()
        if not rel or not label:
            raise LvtEdgeError(f"{where}: every row needs a path and a label")
        clips.append(Clip(_inside(root, rel, where), label, _frame_index(row.get("start"), where),
                          _frame_index(row.get("end"), where)))
        c = clips[-1]
        if c.start is not None and c.end is not None and c.end <= c.start:
            raise LvtEdgeError(f"{where}: end ({c.end}) must be greater than start ({c.start})")
    return clips


def _manifest_rows(manifest: Path) -> list[tuple[int, dict]]:
    text = read_utf8(manifest)
    if manifest.suffix.lower() == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LvtEdgeError(f"{manifest}:{i} is not valid JSON ({e.msg})") from e
                if not isinstance(obj, dict):
                    raise LvtEdgeError(f"{manifest}:{i} must be an object with \"path\" and \"label\"")
                rows.append((i, obj))
        return rows
    lines = [r for r in csv.reader(text.splitlines())]
    numbered = [(i, r) for i, r in enumerate(lines, 1) if r and any(x.strip() for x in r)]
    if numbered and numbered[0][1][0].strip().lower() == "path":  # optional header row
        numbered = numbered[1:]
    fields = ("path", "label", "start", "end")
    out = []
    for i, r in numbered:
        if len(r) not in (2, 4):
            raise LvtEdgeError(f"{manifest}:{i}: expected path,label or path,label,start,end (got {len(r)} columns)")
        out.append((i, dict(zip(fields, r))))
    return out


def _inside(root: Path, rel: str, where: str) -> Path:
    """`rel` resolved under `root`; refuses absolute paths and paths (or symlinks) leading out."""
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise LvtEdgeError(f"{where}: absolute path {rel!r}; manifest paths must be relative to the manifest's folder")
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise LvtEdgeError(f"{where}: path {rel!r} leads outside the clip-set root {root}; "
                           "move the clip inside the root or the manifest above it")
    return target


def _frame_index(value, where: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        v = int(str(value).strip())
    except ValueError:
        raise LvtEdgeError(f"{where}: start/end must be frame indices (integers), got {value!r}") from None
    if v < 0:
        raise LvtEdgeError(f"{where}: start/end must be >= 0, got {v}")
    return v
