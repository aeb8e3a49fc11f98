"""Timed runs of several variants, interleaved so a noisy shared machine slows all alike."""

from __future__ import annotations

import time
from typing import Any, Callable

from lvt_edge.console import bar


def time_interleaved(fns: dict[str, Callable[[], Any]], runs: int, *, warmup: int = 3, rewarm: int = 1,
                     desc: str = "timing", progress: bool = True) -> dict[str, list[float]]:
    """Milliseconds of `runs` calls of each function, taken round-robin: run i of every
    variant happens before run i+1 of any, so a burst of load on the machine hits them all
    (the order rotates each round, so none always runs right after another). Each function
    is called `warmup` times first (untimed), and `rewarm` times (untimed) before each timed call.

    rewarm=1 (the default) makes each timed call follow a call of the same variant, as in an
    app that runs one model: with several intra-op threads, a call that follows another ONNX
    Runtime session's run competes with that session's still-spinning worker threads. On lvt-small
    at 2 threads that added about 40 ms to a 105 ms fp32 run and to a 60 ms int8 one (int8/fp32
    1.45x instead of 1.74x), while one session called after 133 ms of idle, as the live app calls
    it, ran like back-to-back calls (110 / 61 ms; benchmarks/results/precision.md). rewarm=0 times
    the call right after the other variants'."""
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
