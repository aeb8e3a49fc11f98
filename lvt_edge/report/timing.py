"""Timed runs of several variants, interleaved so a noisy shared machine slows all alike."""

from __future__ import annotations

import time
from typing import Any, Callable

from lvt_edge.console import bar


def time_interleaved(fns: dict[str, Callable[[], Any]], runs: int, *, warmup: int = 3, rewarm: int = 0,
                     desc: str = "timing", progress: bool = True) -> dict[str, list[float]]:
    """Milliseconds of `runs` calls of each function, taken round-robin: run i of every
    variant happens before run i+1 of any, so a burst of load on the machine hits them all
    (the order rotates each round, so none always runs right after another). Each function
    is called `warmup` times first (untimed), and `rewarm` times (untimed) before each timed call.

    rewarm=1 times the steady state of back-to-back calls with several intra-op threads: an ONNX
    Runtime session whose worker threads have gone to sleep (because another session ran) wakes
    them at every parallel kernel of its next run, which on lvt-small at 2 threads added about
    30 ms to an 80 ms run (benchmarks/results/precision.md). rewarm=0 times that first call."""
    if runs < 1:
        raise ValueError("runs must be >= 1")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in bar(range(runs), desc, "round", enabled=progress):
        r = i % len(names)
        for name in names[r:] + names[:r]:
            for _ in range(rewarm):
                fns[name]()
            t0 = time.perf_counter()
            fns[name]()
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return samples
