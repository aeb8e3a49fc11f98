"""fp32 / fp16 / int8 side by side on ONNX Runtime CPU: the demo model, lvt-small and lvt-base at
a reduced input, 1 and 2 threads, batch 1 and 8.

    python benchmarks/precision.py                          # build once (cached), then time
    python benchmarks/precision.py --models demo,lvt-small --rounds 20

Each model becomes a bundle under --work, made the way a user makes one: the demo with a bare
`lvt-edge build` (in WORK/demo); lvt-small with `lvt-edge export --model lvt-small --random-init` then
`lvt-edge build` (calibrated on generated synthetic clips); lvt-base the same at 8 frames of
112 px (registered here as the config `lvt-base-8x112`, exported in this process). The random
models' accuracy means nothing; their int8/fp32 top-1 agreement does.

For every model, thread count and batch, the three variants run interleaved; the table gives
median latency and the median and range of the per-round speed-ups over fp32. A second table
gives the share of kernel time inside the fused FFLA bodies (lvt_edge.report.profile).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from int8_latency import fmt_ratio, interleaved_ms, machine_summary, ratio_stats, session  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8")
MODELS = ("demo", "lvt-small", "lvt-base-8x112")
REDUCED_BASE = "lvt-base-8x112"


def lvt_edge(*args: str, cwd: Path | None = None) -> None:
    subprocess.run([sys.executable, "-m", "lvt_edge.cli", *args, "-q"], check=True, cwd=cwd)


def register_reduced_base() -> None:
    from lvt_edge.model import get_config, list_configs, register_config

    if REDUCED_BASE not in list_configs():
        register_config(lambda: get_config("lvt-base").replace(name=REDUCED_BASE, frames=8, img_size=112))


def body_key() -> str:
    """Changes with the FFLinearAttention function body and the lvt_edge version."""
    import hashlib

    from lvt_edge import __version__
    from lvt_edge.export.ffla_function import ffla_function_proto

    return hashlib.sha256(ffla_function_proto().SerializeToString() + __version__.encode()).hexdigest()[:16]


def built(workdir: Path) -> bool:
    """The bundle has every variant and was made with today's function body (else it is remade)."""
    try:
        variants = json.loads((workdir / "bundle.json").read_text())["variants"]
        return set(PRECISIONS) <= set(variants) and (workdir / ".body-key").read_text() == body_key()
    except (OSError, KeyError, ValueError):
        return False


def make_bundle(name: str, work: Path, calib_size: int) -> Path:
    """WORK/NAME with fp32, fp16 and int8 variants, kept between runs and remade when the body changes."""
    workdir = work / name / "lvt-bundle" if name == "demo" else work / name
    if built(workdir):
        return workdir
    shutil.rmtree(work / name, ignore_errors=True)
    if name == "demo":  # the README's first command: a bare build exports the demo model into ./lvt-bundle
        workdir.parent.mkdir(parents=True)
        lvt_edge("build", cwd=workdir.parent)
    else:
        if name == REDUCED_BASE:
            from lvt_edge.export.pipeline import onnx_from_checkpoint, random_init_checkpoint

            register_reduced_base()
            onnx_from_checkpoint(random_init_checkpoint(REDUCED_BASE), workdir)
        else:
            lvt_edge("export", "--model", name, "--random-init", "-o", str(workdir))
        lvt_edge("build", str(workdir), "--calib-size", str(calib_size), "--eval-size", str(calib_size))
    (workdir / ".body-key").write_text(body_key())
    return workdir


def variant_paths(workdir: Path) -> dict[str, Path]:
    data = json.loads((workdir / "bundle.json").read_text())
    return {p: workdir / data["variants"][p]["onnx"] for p in PRECISIONS}


def time_model(workdir: Path, threads: int, batch: int, rounds: int, rewarm: int = 1) -> dict:
    from lvt_edge import bundle as B

    contract = B.bundle_contract(B.read_bundle(workdir))
    sessions = {p: session(path, threads) for p, path in variant_paths(workdir).items()}
    x = np.random.default_rng(0).uniform(-1, 1, (batch, *contract.input_shape)).astype(np.float32)
    feeds = {p: {s.get_inputs()[0].name: x} for p, s in sessions.items()}
    ms = interleaved_ms({p: (lambda s=s, f=feeds[p]: s.run(None, f)) for p, s in sessions.items()}, rounds, warmup=2,
                        rewarm=rewarm)
    return {"threads": threads, "batch": batch, "rounds": rounds, "rewarm": rewarm,
            "ms": {p: float(np.median(t)) for p, t in ms.items()},
            "speedup": {p: ratio_stats(ms["fp32"], ms[p]) for p in ("fp16", "int8")}}


def body_shares(workdir: Path, threads: int, runs: int) -> dict[str, float]:
    from lvt_edge.report.profile import profile_variants

    profs = profile_variants(workdir, PRECISIONS, batch=1, runs=runs, warmup=1, threads=threads)
    return {p: prof.fused_share for p, prof in profs.items()}


def accuracy(workdir: Path) -> str:
    data = json.loads((workdir / "bundle.json").read_text())
    cells = []
    for p in ("fp16", "int8"):
        v = data["variants"][p].get("verification") or {}
        if "top1" in v:
            agree = v.get("agreement_with_fp32", float("nan"))
            cells.append(f"{p} top-1 {v['top1']:.1f} % vs fp32 {v['top1_fp32']:.1f} %, "
                         f"agreement {agree:.1f} % on {v['clipset']['clips']} clips")
    return "; ".join(cells) or "not verified"


def describe(name: str, workdir: Path) -> str:
    data = json.loads((workdir / "bundle.json").read_text())
    cfg, c = data["model_config"], data["contract"]
    trained = "random weights" if (data.get("source") or {}).get("random_init") else "trained"
    return (f"{name}: C={cfg['embed_dim']}, {cfg['num_heads']} heads, depth {cfg['depth']}, "
            f"{c['frames']} x {c['size']}^2 input, {trained}")


def report(results: dict, threads_list, batches, args) -> str:
    lines = [f"{machine_summary('/'.join(map(str, threads_list)))}; median of interleaved rounds "
             f"(batch 1: {args.rounds}, batch 8: {max(3, args.rounds // 3)}), {args.rewarm} untimed call(s) of "
             "a variant before each timed one; speed-up = fp32 / variant, "
             "median (min-max) of the per-round ratios.", ""]
    head = "| model | threads | batch | fp32 ms | fp16 ms | int8 ms | fp16 speed-up | int8 speed-up |"
    lines += [head, "|---|---|---|---|---|---|---|---|"]
    for name, res in results.items():
        for r in res["timing"]:
            ms, up = r["ms"], r["speedup"]
            lines.append(f"| {name} | {r['threads']} | {r['batch']} | {ms['fp32']:.1f} | {ms['fp16']:.1f} | "
                         f"{ms['int8']:.1f} | {fmt_ratio(up['fp16'])} | {fmt_ratio(up['int8'])} |")
    lines += ["", "Share of kernel time in the fused FFLA bodies (batch 1, profile median of "
              f"{args.profile_runs} runs):", "", "| model | threads | fp32 | fp16 | int8 |", "|---|---|---|---|---|"]
    for name, res in results.items():
        for th, shares in res["shares"].items():
            lines.append(f"| {name} | {th} | " + " | ".join(f"{shares[p] * 100:.0f} %" for p in PRECISIONS) + " |")
    lines += [""] + [f"- {res['describe']}; {res['accuracy']}" for res in results.values()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lvt-edge-bench" / "precision",
                    help="bundles, kept between runs (default %(default)s)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of %(default)s")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds at batch 1 (a third of that, at "
                                                          "least 3, at batch 8) (default %(default)s)")
    ap.add_argument("--threads", default="1,2", help="comma list (default %(default)s)")
    ap.add_argument("--batches", default="1,8", help="comma list (default %(default)s)")
    ap.add_argument("--calib-size", type=int, default=64, help="calibration (and check) clips of the random models")
    ap.add_argument("--profile-runs", type=int, default=3, help="runs per profile (default %(default)s)")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    ap.add_argument("--rewarm", type=int, default=1,
                    help="untimed calls of a variant before each timed one (default %(default)s: the steady "
                         "latency of back-to-back calls; 0: the first call after another session ran, which with "
                         "several threads includes waking ONNX Runtime's sleeping worker threads)")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    if unknown := [m for m in names if m not in MODELS]:
        ap.error(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    threads_list = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]

    t0 = time.perf_counter()
    results = {}
    for name in names:
        workdir = make_bundle(name, args.work, args.calib_size)
        timing = [time_model(workdir, th, b, args.rounds if b == 1 else max(3, args.rounds // 3), args.rewarm)
                  for th in threads_list for b in batches]
        shares = {th: body_shares(workdir, th, args.profile_runs) for th in threads_list}
        results[name] = {"timing": timing, "shares": shares, "accuracy": accuracy(workdir),
                         "describe": describe(name, workdir)}
        print(f"{name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    print(report(results, threads_list, batches, args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
