"""Per-frame cost of a streaming step against a window recompute, ONNX Runtime CPU, side by side.

    python benchmarks/streaming.py                         # lvt-tiny-causal, 2 threads
    python benchmarks/streaming.py --model lvt-small --threads 1 --rounds 100
    python benchmarks/streaming.py --streams 8             # 8 streams stepped as one batch

For one config (made causal if it is not) with seeded random weights (cost does not depend on
the weights), exports three graphs and times them interleaved at batch 1 (--streams N: N streams
stepped in one call, against a window recompute of N clips):
  step            the step model: one frame + the carried state -> logits + state
  causal window   the causal clip model on a window of T frames (what a window recompute of the
                  causal model costs)
  window          the window (non-causal) model of the same size on T frames: what the live app
                  runs today for every classification
A window recompute classifies once per T new frames' worth of work; the step classifies every
frame. The issue's target: step <= 1.5 / T of a window recompute. Prints a markdown table.

    python benchmarks/streaming.py --accuracy CAUSAL_BUNDLE WINDOW_BUNDLE [--loops 3]

Stream against window on long synthetic videos whose class changes (every class in turn, 4 s
each, `--loops` passes with new scenes): the causal bundle's step model fed one frame per model
frame interval, and the window bundle on the last T model frames at each of them (from the
T-th frame on). Reports top-1 on settled frames (at least one window span after a change),
and the reaction time: model frames (and seconds of video) from a change until the label is
the new class and stays so for 3 frames.

    python apps/live_camera.py --bundle CAUSAL_BUNDLE --mode stream --source synth: --loop \
        --duration 88 --headless --jsonl live.jsonl
    python benchmarks/streaming.py --score-live live.jsonl --schedule synth:

Scores the live app's classifications (raw and smoothed labels) against the synthetic
schedule's truth on settled frames (one window span after a change).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def session(data: bytes, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


def graphs(name: str, seed: int) -> tuple[dict[str, bytes], object]:
    import torch

    from lvt_edge.export import onnx_from_model, simplified_onnx
    from lvt_edge.export.step import step_onnx_from_model
    from lvt_edge.model import LVT, get_config

    base = get_config(name)
    causal_cfg = base if base.causal else base.replace(name=f"{base.name}-causal", causal=True)
    window_cfg = causal_cfg.replace(name=causal_cfg.name.removesuffix("-causal"), causal=False, horizon=None)
    torch.manual_seed(seed)
    causal, window = LVT(causal_cfg).eval(), LVT(window_cfg).eval()
    out = {
        "step": simplified_onnx(step_onnx_from_model(causal)).SerializeToString(),
        "causal window": simplified_onnx(onnx_from_model(causal)).SerializeToString(),
        "window": simplified_onnx(onnx_from_model(window)).SerializeToString(),
    }
    return out, causal_cfg


def side_by_side(models: dict[str, bytes], cfg, *, rounds: int, threads: int,
                 streams: int = 1) -> dict[str, dict[str, float]]:
    """Median and p90 ms per call: a step of `streams` streams, a window recompute of as many clips."""
    from lvt_edge.export.step import FRAME_INPUT, LOGITS_OUTPUT, step_state_entries

    rng = np.random.default_rng(0)
    s = cfg.img_size
    clip = rng.uniform(-1, 1, (streams, 3, cfg.frames, s, s)).astype(np.float32)
    frames = rng.uniform(-1, 1, (64, streams, 3, s, s)).astype(np.float32)
    entries = step_state_entries(cfg)
    sessions = {k: session(v, threads) for k, v in models.items()}
    state = {e["input"]: np.zeros((streams, *e["shape"]), np.float32) for e in entries}
    step_outputs = [LOGITS_OUTPUT, *(e["output"] for e in entries)]
    count = [0]

    def run_step():
        res = sessions["step"].run(step_outputs, {FRAME_INPUT: frames[count[0] % len(frames)], **state})
        state.update(zip((e["input"] for e in entries), res[1:]))  # the state a live stream carries
        count[0] += 1

    runs = {"step": run_step}
    for k in ("causal window", "window"):
        runs[k] = (lambda sess: lambda: sess.run(None, {sess.get_inputs()[0].name: clip}))(sessions[k])
    for fn in runs.values():
        for _ in range(2 * cfg.frames):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for k, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: {"median_ms": float(np.median(v) * 1e3), "p90_ms": float(np.percentile(v, 90) * 1e3)}
            for k, v in times.items()}


def long_video_predictions(step_clf, window_clf, *, loops: int, seed: int):
    """(times, truth labels, stream labels, window labels or None, segment starts) per model frame."""
    from lvt_edge.stream.sources import SourceOptions, open_source

    contract = step_clf.contract
    fps = 15.0  # the synthetic clips' own rate: every scene frame is captured
    every = max(1, round(contract.frame_interval * fps))
    src = open_source("synth:", SourceOptions(pace=0, fps=fps, width=contract.size, loop=True, seed=seed))
    src.open()
    end = loops * src.period
    times, truth, stream, window, ring = [], [], [], [], []
    step_clf.reset()
    k = 0
    while True:
        f = src.read()
        if f is None or f.t >= end:
            break
        k += 1
        if (k - 1) % every:
            continue
        x = step_clf.prepare(f.image, order="BGR")
        stream.append(contract.labels[int(step_clf.step(x).argmax())])
        ring = (ring + [x])[-contract.frames:]
        full = len(ring) == contract.frames
        window.append(contract.labels[int(window_clf.predict(np.stack(ring, 1)).argmax())] if full else None)
        times.append(f.t)
        truth.append(src.truth(f.t))
    starts = [i * src.period / len(src.schedule) for i in range(loops * len(src.schedule))]
    src.close()
    return np.array(times), truth, stream, window, starts


def accuracy_report(times, truth, preds, starts, settle: float, interval: float) -> dict:
    times = np.asarray(times)
    seg_start = np.array([max(s for s in starts if s <= t + 1e-9) for t in times])
    settled = times - seg_start >= settle
    ok = np.array([p == g for p, g in zip(preds, truth)])
    reactions = []
    for s in starts[1:]:
        idx = np.flatnonzero((times >= s - 1e-9) & (seg_start == s))
        for j, i in enumerate(idx):
            if ok[idx[j: j + 3]].all() and len(idx[j: j + 3]) == 3:
                reactions.append(j)
                break
        else:
            reactions.append(None)
    got = [r for r in reactions if r is not None]
    return {"settled_frames": int(settled.sum()), "settled_top1": float(ok[settled].mean()),
            "all_frames_top1": float(ok.mean()), "changes": len(reactions), "never_reacted": reactions.count(None),
            "reaction_frames_median": float(np.median(got)) if got else None,
            "reaction_s_median": float(np.median(got)) * interval if got else None,
            "reaction_frames_p90": float(np.percentile(got, 90)) if got else None}


def accuracy_main(causal: str, window: str, loops: int, seed: int, threads: int) -> None:
    from lvt_edge.runtime import load_bundle, load_step

    with load_step(causal, threads=threads) as step_clf, load_bundle(window, backend="onnxruntime",
                                                                     threads=threads) as window_clf:
        interval, t = step_clf.contract.frame_interval, step_clf.contract.frames
        times, truth, stream, win, starts = long_video_predictions(step_clf, window_clf, loops=loops, seed=seed)
    settle = t * interval
    rows = {"stream (step)": accuracy_report(times, truth, stream, starts, settle, interval),
            "window": accuracy_report(times, truth, win, starts, settle, interval)}
    print(f"long synthetic video: {loops} pass(es) of every class for 4 s ({len(times)} model frames, "
          f"{interval:.3f} s apart, {rows['window']['changes']} changes); settled = at least {settle:.2f} s "
          "(one window span) after a change\n")
    print("| model | settled top-1 | all frames top-1 | reaction median (frames / s) | reaction p90 (frames) | "
          "never reacted |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        med = "-" if r["reaction_frames_median"] is None else \
            f"{r['reaction_frames_median']:.0f} / {r['reaction_s_median']:.2f}"
        p90 = "-" if r["reaction_frames_p90"] is None else f"{r['reaction_frames_p90']:.0f}"
        print(f"| {name} | {r['settled_top1']:.3f} ({r['settled_frames']}) | {r['all_frames_top1']:.3f} | {med} | "
              f"{p90} | {r['never_reacted']} |")


def score_live(jsonl: str, schedule: str, settle: float | None) -> None:
    import json

    from lvt_edge.stream.sources import SourceOptions, open_source

    src = open_source(schedule, SourceOptions(loop=True))
    rows = [json.loads(line) for line in open(jsonl)]
    results = [r for r in rows if r.get("type") == "classification"]
    bounds = np.cumsum([0.0] + [sec for _, sec in src.schedule])
    settle = settle if settle is not None else 8 * 2 / 15
    settled = [r for r in results if (r["time"] % src.period) - bounds[np.searchsorted(bounds, r["time"] % src.period,
                                                                                        side="right") - 1] >= settle]
    raw = np.mean([r["raw_label"] == src.truth(r["time"]) for r in settled])
    smooth = np.mean([r["label"] == src.truth(r["time"]) for r in settled])
    final = rows[-1]
    print(f"{jsonl}: {len(results)} classifications of {final.get('frames')} frames, {len(settled)} settled "
          f"(>= {settle:.2f} s after a change): raw top-1 {raw:.3f}, smoothed top-1 {smooth:.3f}")


def main() -> None:
    from lvt_edge.model.causal import kv_sum_bytes, state_bytes

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lvt-tiny-causal")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--streams", type=int, default=1,
                    help="streams stepped side by side, against a window recompute of as many clips (default 1)")
    ap.add_argument("--accuracy", nargs=2, metavar=("CAUSAL_BUNDLE", "WINDOW_BUNDLE"), default=None,
                    help="stream vs window accuracy and reaction time on long synthetic videos instead")
    ap.add_argument("--loops", type=int, default=3, help="--accuracy: passes through every class (default 3)")
    ap.add_argument("--score-live", metavar="JSONL", default=None, help="score a live run's JSON lines instead")
    ap.add_argument("--schedule", default="synth:", help="--score-live: the synth source spec the run used")
    ap.add_argument("--settle", type=float, default=None, help="--score-live: seconds after a change (default 8 x 2/15)")
    args = ap.parse_args()
    if args.score_live:
        score_live(args.score_live, args.schedule, args.settle)
        return
    if args.accuracy:
        accuracy_main(*args.accuracy, loops=args.loops, seed=args.seed, threads=args.threads)
        return
    import onnxruntime as ort

    models, cfg = graphs(args.model, args.seed)
    res = side_by_side(models, cfg, rounds=args.rounds, threads=args.threads, streams=args.streams)
    t = cfg.frames
    print(f"{cfg.name}: T={t}, horizon {cfg.time_horizon}, {cfg.img_size} px, batch {args.streams}, ONNX Runtime "
          f"{ort.__version__} CPU, {args.threads} thread(s), {args.rounds} interleaved rounds")
    print(f"state {state_bytes(cfg) / 1e6:.2f} MB fp32 (a running key-value sum would be "
          f"{kv_sum_bytes(cfg) / 1e6:.2f} MB)\n")
    print("| graph | median ms | p90 ms | per frame / window recompute | size MB |")
    print("|---|---|---|---|---|")
    win = res["window"]["median_ms"]
    for k, v in res.items():
        print(f"| {k} | {v['median_ms']:.3f} | {v['p90_ms']:.3f} | {v['median_ms'] / win:.3f} | "
              f"{len(models[k]) / 1e6:.2f} |")
    step, cwin = res["step"]["median_ms"], res["causal window"]["median_ms"]
    print(f"\nstep / window recompute: {step / win:.3f} (window model), {step / cwin:.3f} (causal clip model); "
          f"target <= 1.5/T = {1.5 / t:.3f}")


if __name__ == "__main__":
    main()
