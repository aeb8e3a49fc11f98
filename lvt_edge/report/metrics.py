"""Accuracy and latency numbers from predictions and timings (pure numpy)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

EPS = 1e-12  # keeps log(0) out of the KL divergence


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percent of clips whose label is among the k most probable classes."""
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return 100.0 * float((top == labels[:, None]).any(axis=1).mean())


def confusion_matrix(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (labels, pred), 1)
    return cm


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) per row, in nats (rounding can make it a hair below 0; it is clamped)."""
    p = np.clip(p.astype(np.float64), EPS, 1.0)
    q = np.clip(q.astype(np.float64), EPS, 1.0)
    return np.maximum((p * (np.log(p) - np.log(q))).sum(axis=1), 0.0)


def accuracy_metrics(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                     reference: np.ndarray | None = None) -> dict[str, Any]:
    """Top-1/top-5, per-class accuracy and confusion matrix; with `reference` (the fp32
    probabilities on the same clips) also top-1 agreement and mean KL(reference || probs)."""
    n_cls = len(class_names)
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(labels, pred, n_cls)
    support = cm.sum(axis=1)
    per_class = [{"label": name, "support": int(s), "accuracy": (100.0 * float(cm[i, i]) / s) if s else None,
                  "ci95": list(wilson_interval(int(cm[i, i]), int(s))) if s else None}
                 for i, (name, s) in enumerate(zip(class_names, support))]
    correct = int((pred == labels).sum())
    out: dict[str, Any] = {
        "top1": topk_accuracy(probs, labels, 1),
        "top1_ci95": list(wilson_interval(correct, len(labels))),
        "top5": topk_accuracy(probs, labels, 5),
        "top5_k": min(5, n_cls),
        "agreement_top1": None,
        "kl_vs_fp32": None,
        "per_class": per_class,
        "confusion": cm.tolist(),
    }
    if reference is not None:
        out["agreement_top1"] = 100.0 * float((reference.argmax(axis=1) == pred).mean())
        out["kl_vs_fp32"] = float(kl_divergence(reference, probs).mean())
    return out


def latency_stats(samples_ms: Sequence[float]) -> dict[str, Any]:
    """mean/std/min and p50/p90/p99 of timed runs, in milliseconds."""
    a = np.asarray(samples_ms, np.float64)
    if a.size == 0:
        raise ValueError("no timed runs")
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"runs": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()),
            "p50": float(p50), "p90": float(p90), "p99": float(p99)}


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names whose (latency, accuracy) no other point beats: lower latency and higher
    accuracy, at least as good on both and better on one. Sorted by latency."""
    front = []
    for name, (lat, acc) in points.items():
        dominated = any(l2 <= lat and a2 >= acc and (l2 < lat or a2 > acc)
                        for other, (l2, a2) in points.items() if other != name)
        if not dominated:
            front.append(name)
    return sorted(front, key=lambda n: points[n][0])


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion, in percent (95 % by default); (0, 100) for n = 0.
    Unlike the normal approximation it stays inside [0, 100] and is sane at 0 % or 100 %."""
    if n <= 0:
        return 0.0, 100.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0 % or 100 % a bound equals p in exact arithmetic; rounding must not leave p outside
    return 100.0 * max(0.0, min(p, centre - half)), 100.0 * min(1.0, max(p, centre + half))


def relative_spread(samples_ms: Sequence[float]) -> float:
    """Interquartile range over the median, in percent: how much repeated runs disagree."""
    a = np.asarray(samples_ms, np.float64)
    q25, q50, q75 = np.percentile(a, [25, 50, 75])
    return 100.0 * float(q75 - q25) / q50 if q50 > 0 else 0.0
