"""What latency a live app sees: each variant of a bundle timed three ways in the same rounds.

    python benchmarks/idle_gap.py BUNDLE [--threads 2] [--rounds 20] [--gap-ms 133]

- after idle: the call follows `--gap-ms` of sleep (the live app classifies once per model
  frame interval, 133 ms for the demo), the way one app running one model calls it;
- right after the others: the call follows the other variants' calls at once (interleaved
  timing with rewarm=0);
- after its own: the call follows an untimed call of the same variant (rewarm=1, the default of
  `lvt-edge bench` and `lvt-edge report`).

With several intra-op threads, a session called right after another session's run competes with
that session's still-spinning ONNX Runtime worker threads; a live app never sees that cost.
Prints median latency per way and variant and each variant's speed-up over fp32 (median and
range of the per-round ratios).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_latency import fmt_ratio, machine_summary, ratio_stats, session  # noqa: E402

WAYS = ("after idle", "right after the others", "after its own")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--gap-ms", type=float, default=133.0)
    args = ap.parse_args()

    from lvt_edge import bundle as B

    data = B.read_bundle(args.bundle)
    contract = B.bundle_contract(data)
    built = [p for p in B.PRECISIONS if p in data.get("variants", {})]
    sessions = {p: session(args.bundle / B.onnx_name(p), args.threads) for p in built}
    x = np.random.default_rng(0).standard_normal((1, *contract.input_shape)).astype(np.float32)
    feeds = {p: {s.get_inputs()[0].name: x} for p, s in sessions.items()}

    def call(p: str) -> float:
        t0 = time.perf_counter()
        sessions[p].run(None, feeds[p])
        return (time.perf_counter() - t0) * 1e3

    for p in sessions:
        for _ in range(3):
            call(p)
    ms = {w: {p: [] for p in sessions} for w in WAYS}
    for i in range(args.rounds):
        order = list(sessions)[i % len(sessions):] + list(sessions)[:i % len(sessions)]
        for p in order:
            time.sleep(args.gap_ms / 1e3)
            ms["after idle"][p].append(call(p))
        for p in order:
            ms["right after the others"][p].append(call(p))
        for p in order:
            call(p)
            ms["after its own"][p].append(call(p))

    print(f"{args.bundle} ({data.get('source', {}).get('model', '?')}), batch 1, {args.threads} threads, {args.rounds} rounds; "
          f"{machine_summary(args.threads)}")
    print()
    print("| timed call | " + " | ".join(f"{p} ms" for p in sessions)
          + "".join(f" | {p} / fp32" for p in sessions if p != "fp32") + " |")
    print("|---" * (1 + len(sessions) + len(sessions) - 1) + "|")
    for w in WAYS:
        row = [f"{np.median(ms[w][p]):.1f}" for p in sessions]
        row += [fmt_ratio(ratio_stats(np.asarray(ms[w]["fp32"]), np.asarray(ms[w][p]))) for p in sessions if p != "fp32"]
        print(f"| {w} | " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
