"""Bundle + labelled clip set -> the report's data (a dict that matches schema.json).

Stages: open the clip set and decode it once; load every variant; predict (accuracy);
time the model alone at batch 1, a larger batch, and decode+preprocess+predict per clip,
all interleaved across variants; then assemble numbers, verdicts and the gate.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from lvt_edge import console

from lvt_edge import __version__
from lvt_edge import bundle as B
from lvt_edge.errors import LvtEdgeError
from lvt_edge.io import finite_or_none
from lvt_edge.report.checks import calibration_overlap, class_count_warnings, overlap_warning
from lvt_edge.report.metrics import accuracy_metrics, latency_stats
from lvt_edge.report.timing import time_interleaved
from lvt_edge.report.verdict import BASELINE, METRICS, judge
from lvt_edge.runtime import BACKENDS, Classifier, load_bundle, resolve_backend

FORMAT = "lvt_edge.report"
FORMAT_VERSION = 1


@dataclass
class ReportSettings:
    """What `lvt-edge report` measures; `options` go to the backends that take them."""

    precisions: tuple[str, ...] | None = None  # None: every variant the bundle has
    backend: str = "auto"
    max_drop: float = 1.0
    runs: int = 50
    warmup: int = 5
    batch: int = 8
    e2e_clips: int = 8
    metric: str = "latency"  # what decides speed: batch-1 latency, or throughput at `batch`
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def check(self) -> None:
        """Refuse numbers that would make a meaningless report (a NaN gate cannot fail)."""
        problems = number_problems({"--max-drop": (self.max_drop, 0, 100, False), "--runs": (self.runs, 1, None, True),
                                    "--warmup": (self.warmup, 0, None, True), "--batch": (self.batch, 1, None, True),
                                    "--e2e-clips": (self.e2e_clips, 1, None, True),
                                    "--threads": (self.options.get("threads"), 1, None, True)})
        if self.metric not in METRICS:
            problems.append(f"--metric must be one of {', '.join(METRICS)} (got {self.metric!r})")
        if problems:
            raise LvtEdgeError("; ".join(problems))


def number_problems(numbers: dict[str, tuple[Any, float, float | None, bool]]) -> list[str]:
    """For {flag: (value, minimum, maximum or None, must be an integer)}: what is wrong, per flag.
    None values are unset options and pass; NaN and infinities never do."""
    problems = []
    for flag, (value, low, high, integer) in numbers.items():
        if value is None:
            continue
        kind = "an integer" if integer else "a number"
        ok = (isinstance(value, int) if integer else isinstance(value, (int, float))) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and value >= low and (high is None or value <= high)
        if not ok:
            bounds = f">= {low:g}" + ("" if high is None else f" and <= {high:g}")
            problems.append(f"{flag} must be {kind} {bounds} (got {value!r})")
    return problems


def choose_precisions(data: dict[str, Any], wanted: tuple[str, ...] | None) -> tuple[list[str], bool]:
    """Precisions to report, fp32 first; (list, whether fp32 was added as the baseline)."""
    built = [p for p in B.PRECISIONS if p in data.get("variants", {})]
    wanted = list(dict.fromkeys(wanted)) if wanted else built
    for p in wanted:
        B.variant(data, p)  # unknown or unbuilt -> the fix-it error
    added = BASELINE not in wanted
    if added:
        B.variant(data, BASELINE)
    return [BASELINE] + [p for p in wanted if p != BASELINE], added


def options_for(data: dict[str, Any], precision: str, backend: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(backend name, the options that backend takes); the rest are recorded, not passed."""
    name = resolve_backend(data, precision, backend)
    return name, {k: v for k, v in options.items() if v is not None and k in BACKENDS[name].options}


def predict_all(clf: Classifier, clips: np.ndarray, batch: int, progress: bool) -> np.ndarray:
    chunks = range(0, len(clips), batch)
    bar = console.bar(chunks, f"evaluating {clf.precision}", "batch", enabled=progress)
    return np.concatenate([clf.predict(clips[i : i + batch]) for i in bar])


def end_to_end_fns(clfs: dict[str, Classifier], clips: list[Any], contract: Any) -> dict[str, Any]:
    """Per variant, a call that decodes, preprocesses and classifies the next clip in turn."""
    from lvt_edge.data import decode_clip

    def make(clf: Classifier):
        order = itertools.cycle(clips)
        return lambda: clf.predict(contract.normalize(decode_clip(next(order), contract)))

    return {p: make(c) for p, c in clfs.items()}


def make_report(workdir: str | os.PathLike, eval_path: str | os.PathLike, settings: ReportSettings) -> dict[str, Any]:
    from lvt_edge.data import load_clips, open_clipset

    settings.check()
    data = B.read_bundle(workdir)
    precisions, added = choose_precisions(data, settings.precisions)
    if added:
        console.note(f"report: fp32 added as the baseline (asked for {', '.join(settings.precisions or ())})")
    contract = B.bundle_contract(data)
    clipset = open_clipset(eval_path, contract.labels)
    t0 = time.perf_counter()
    loaded = load_clips(clipset, contract, progress=settings.progress)
    decode_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(clipset))
    skipped = {str(p) for p, _ in loaded.skipped}
    good = [c for c in clipset.clips if str(c.path) not in skipped][: settings.e2e_clips]

    with contextlib.ExitStack() as stack:
        clfs: dict[str, Classifier] = {}
        for p in precisions:
            name, opts = options_for(data, p, settings.backend, settings.options)
            clfs[p] = stack.enter_context(load_bundle(workdir, p, name, **opts))
        probs = {p: predict_all(c, loaded.clips, settings.batch, settings.progress) for p, c in clfs.items()}
        one = loaded.clips[:1]
        lat = time_interleaved({p: (lambda c=c: c.predict(one)) for p, c in clfs.items()}, settings.runs,
                               warmup=settings.warmup, desc="latency, batch 1", progress=settings.progress)
        big = np.resize(loaded.clips, (settings.batch, *contract.input_shape)).astype(np.float32)
        # throughput deciding the verdict needs as many samples as latency does
        tput_runs = settings.runs if settings.metric == "throughput" else max(5, settings.runs // 5)
        tput = time_interleaved({p: (lambda c=c: c.predict(big)) for p, c in clfs.items()}, tput_runs,
                                warmup=1, desc=f"throughput, batch {settings.batch}", progress=settings.progress)
        # each call decodes a clip first, which outlasts the other session's spinning threads
        e2e = time_interleaved(end_to_end_fns(clfs, good, contract), settings.e2e_clips,
                               warmup=1, rewarm=0, desc="end to end", progress=settings.progress)
        variants = []
        for p, clf in clfs.items():
            entry = B.variant(data, p)
            variants.append({
                "precision": p,
                "backend": clf.backend,
                "file": Path(clf.source).name,
                "size_bytes": Path(clf.source).stat().st_size,
                "build_time_s": entry.get("build_time_s"),
                "accuracy": accuracy_metrics(probs[p], loaded.labels, contract.labels,
                                             None if p == BASELINE else probs[BASELINE]),
                "latency_ms": dict(latency_stats(lat[p]), batch=1, samples=[round(s, 4) for s in lat[p]]),
                "end_to_end_ms": dict(latency_stats(e2e[p]), clips=len(good), decode_preprocess_mean=decode_ms),
                "providers": list(getattr(clf, "providers", None) or [clf.backend]),
                "throughput": {"batch": settings.batch, "runs": tput_runs,
                               "clips_per_s": rate(settings.batch, float(np.median(tput[p]))),
                               "samples_ms": [round(s, 4) for s in tput[p]]},
            })

    from lvt_edge.bundle import untrained_note

    overlap = calibration_overlap(data, clipset)
    warnings = [w for w in [overlap_warning(overlap, len(clipset))] if w]
    warnings += class_count_warnings(loaded.labels, contract.labels)
    report = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lvt_edge_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bundle": {"workdir": str(workdir), "source": data.get("source", {}),
                   "model": (data.get("model_config") or {}).get("name"), "contract": data["contract"]},
        "eval": {"clipset": str(eval_path), "content_hash": clipset.content_hash, "clips": int(len(loaded)),
                 "skipped": [{"path": str(p), "reason": r} for p, r in loaded.skipped],
                 "labels": list(contract.labels), "calibration_overlap": overlap},
        "untrained": untrained_note(data),
        "warnings": warnings,
        "settings": dict(asdict(settings), precisions=precisions, baseline_added=added,
                         options={k: v for k, v in settings.options.items() if v is not None}),
        "machine": machine_info(settings.options.get("threads")),
        "baseline": BASELINE,
        "variants": variants,
    }
    report["settings"].pop("progress")
    judge(report, settings.max_drop, settings.metric)
    return report


def rate(clips: int, ms: float) -> float | None:
    """Clips per second from milliseconds per call; None where the clock saw no time at all."""
    return finite_or_none(clips * 1e3 / ms) if ms > 0 else None


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Where the numbers were taken; `threads` None means the backend's default."""
    import onnxruntime

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model(), "cpu_count": os.cpu_count(), "threads": threads,
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "available_providers": list(onnxruntime.get_available_providers())}


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (Linux); None where it is not there."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for key in ("model name", "Hardware", "Model", "cpu model"):  # x86, then ARM (Jetson) spellings
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return None
