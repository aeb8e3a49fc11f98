"""Where ONNX Runtime (CPU) spends a variant's time: kernel time by op type and by fused node.

ONNX Runtime inlines the `lvt_edge::FFLinearAttention` function into plain kernels, so the
fused node never shows up in its profile by name. To attribute those kernels, the profiled
copy of the model gives each fused node its own copy of the function (same body, a name
carrying the node's index): ONNX Runtime names the kernels it inlines from a function
`_inlfunc_<function name>_...`. The `If` nodes of the body are folded later and their kernels
are renamed `_if_then_branch...` / `_if_else_branch...` without that prefix; those are given
to the fused node they connect to in the optimized graph ONNX Runtime saves. Only names
change: the profiled graph runs the same kernels as the variant itself.

Times are each kernel's own duration (`*_kernel_time` events): per kernel, the median over
the timed runs of its time in that run; warm-up runs are left out. Shares are of the summed kernel
time, which leaves out session overhead between kernels (a few percent at batch 1).
"""

from __future__ import annotations

import bisect
import copy
import json
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lvt_edge.export.node import AXIS_CODES, DOMAIN as FUSED_DOMAIN, OP_TYPE as FUSED_OP  # torch-free

AXIS_NAMES = {code: name for name, code in AXIS_CODES.items()}

_COPY_MARK = "__lvtprof"  # per-node function copies are named FFLinearAttention__lvtprof<i>
_INLINED = "_inlfunc_"
_IF_BRANCH = ("_if_then_branch", "_if_else_branch")
OUTSIDE = "outside fused nodes"
_QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


@dataclass(frozen=True)
class FusedNode:
    """One fused node of the profiled graph: its ONNX name and attention axis."""

    index: int
    name: str
    axis: str


@dataclass
class Profile:
    """Median kernel time per run (microseconds) of every kernel, and the fused node each belongs to."""

    source: str
    batch: int
    threads: int | None
    runs: int
    fused: list[FusedNode]
    kernels: list[tuple[str, str, int | None, float]] = field(default_factory=list)  # name, op, fused idx, us

    @property
    def total_us(self) -> float:
        return sum(k[3] for k in self.kernels)

    @property
    def fused_us(self) -> float:
        return sum(k[3] for k in self.kernels if k[2] is not None)

    @property
    def fused_share(self) -> float:
        """Share of kernel time spent in the fused nodes' bodies (0..1)."""
        total = self.total_us
        return self.fused_us / total if total > 0 else 0.0

    def by_op_type(self) -> list[dict[str, Any]]:
        """Rows {op_type, us, share, fused_us}, largest first."""
        us: dict[str, float] = defaultdict(float)
        inside: dict[str, float] = defaultdict(float)
        for _, op, idx, t in self.kernels:
            us[op] += t
            if idx is not None:
                inside[op] += t
        total = self.total_us or 1.0
        return [{"op_type": op, "us": t, "share": t / total, "fused_us": inside[op]}
                for op, t in sorted(us.items(), key=lambda kv: -kv[1])]

    def by_fused_node(self) -> list[dict[str, Any]]:
        """Rows {node, axis, us, share, kernels} per fused node in graph order, then the rest."""
        us: dict[int | None, float] = defaultdict(float)
        count: dict[int | None, int] = defaultdict(int)
        for _, _, idx, t in self.kernels:
            us[idx] += t
            count[idx] += 1
        total = self.total_us or 1.0
        rows = [{"node": f.name, "axis": f.axis, "us": us[f.index], "share": us[f.index] / total,
                 "kernels": count[f.index]} for f in self.fused]
        rows.append({"node": OUTSIDE, "axis": "", "us": us[None], "share": us[None] / total,
                     "kernels": count[None]})
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "batch": self.batch, "threads": self.threads, "runs": self.runs,
                "total_us": self.total_us, "fused_share": self.fused_share,
                "by_op_type": self.by_op_type(), "by_fused_node": self.by_fused_node()}


def tagged_model(model):
    """A copy of `model` in which every fused node calls its own copy of the function body.

    Returns (copy, fused nodes in graph order). Models without fused nodes come back unchanged.
    """
    import onnx

    model = copy.deepcopy(model)
    body = next((f for f in model.functions if f.domain == FUSED_DOMAIN and f.name == FUSED_OP), None)
    fused = []
    for node in model.graph.node:
        if node.domain != FUSED_DOMAIN or node.op_type != FUSED_OP:
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        fused.append(FusedNode(len(fused), node.name or f"{FUSED_OP}_{len(fused)}", AXIS_NAMES.get(axis, "?")))
        if body is not None:
            fn = onnx.FunctionProto()
            fn.CopyFrom(body)
            fn.name = f"{FUSED_OP}{_COPY_MARK}{len(fused) - 1}"
            model.functions.append(fn)
            node.op_type = fn.name
    return model, fused


def _fused_index(name: str) -> int | None:
    """The fused-node index a kernel name carries (`_inlfunc_FFLinearAttention__lvtprof3_...`)."""
    at = name.find(_INLINED + FUSED_OP + _COPY_MARK)
    if at < 0:
        return None
    digits = name[at + len(_INLINED + FUSED_OP + _COPY_MARK):]
    n = len(digits) - len(digits.lstrip("0123456789"))
    return int(digits[:n]) if n else None


def attribute_kernels(graph) -> dict[str, int | None]:
    """Fused-node index (or None) of each node of ONNX Runtime's optimized graph, by name.

    Nodes inlined from a per-node function copy carry their index in their name. Nodes that came
    from a folded `If` branch are grouped with the `If`-branch nodes they exchange tensors with;
    a group takes the index of the marked nodes it exchanges tensors with, when that is one index
    (tensors between two marked nodes are not followed: they may join one body to the next).
    """
    owner: dict[str, int | None] = {n.name: _fused_index(n.name) for n in graph.node}
    loose = [n for n in graph.node if owner[n.name] is None and any(m in n.name for m in _IF_BRANCH)]
    if not loose:
        return owner
    parent = {n.name: n.name for n in loose}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    producer = {out: n.name for n in graph.node for out in n.output if out}
    consumers: dict[str, list[str]] = defaultdict(list)
    for n in graph.node:
        for inp in n.input:
            consumers[inp].append(n.name)
    for n in loose:
        for inp in n.input:
            src = producer.get(inp)
            if src in parent:
                parent[find(n.name)] = find(src)
    marks: dict[str, set[int]] = defaultdict(set)
    for n in loose:
        neighbours = [producer.get(inp) for inp in n.input] + [c for out in n.output for c in consumers.get(out, ())]
        marks[find(n.name)].update(owner[m] for m in neighbours if m is not None and owner.get(m) is not None)
    for n in loose:
        found = marks.get(find(n.name), set())
        owner[n.name] = next(iter(found)) if len(found) == 1 else None
    return owner


def profile_onnx(model: str | os.PathLike | Any, feeds: dict[str, np.ndarray], *, runs: int = 20, warmup: int = 3,
                 threads: int | None = None, source: str | None = None) -> Profile:
    """Profile `model` (a path or ModelProto) on ONNX Runtime CPU with ENABLE_ALL optimizations."""
    return profile_models({source or _name_of(model): (model, feeds)}, runs=runs, warmup=warmup, threads=threads)[
        source or _name_of(model)]


def profile_models(models: dict[str, tuple[Any, dict[str, np.ndarray]]], *, runs: int = 20, warmup: int = 3,
                   threads: int | None = None) -> dict[str, Profile]:
    """Profile several models {label: (path or ModelProto, feeds)} in interleaved runs (run i of
    every model before run i+1 of any), so that load on a shared machine hits them alike."""
    import onnx
    import onnxruntime as ort

    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    with tempfile.TemporaryDirectory(prefix="lvt-profile-") as tmp:
        sessions, fused = {}, {}
        for i, (label, (model, _)) in enumerate(models.items()):
            src = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
            tagged, fused[label] = tagged_model(src)
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            if threads is not None:
                opts.intra_op_num_threads = int(threads)
                opts.inter_op_num_threads = 1
            opts.optimized_model_filepath = str(Path(tmp) / f"optimized{i}.onnx")
            opts.enable_profiling = True
            opts.profile_file_prefix = str(Path(tmp) / f"trace{i}")
            sessions[label] = ort.InferenceSession(tagged.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        labels = list(models)
        for r in range(warmup + runs):
            k = r % len(labels)
            for label in labels[k:] + labels[:k]:
                sessions[label].run(None, models[label][1])
        out = {}
        for i, label in enumerate(labels):
            trace = json.loads(Path(sessions[label].end_profiling()).read_text())
            optimized = onnx.load(str(Path(tmp) / f"optimized{i}.onnx"), load_external_data=False)
            owner = attribute_kernels(optimized.graph)
            op_of = {n.name: n.op_type for n in optimized.graph.node}
            feeds = models[label][1]
            batch = int(next(iter(feeds.values())).shape[0]) if feeds else 0
            prof = Profile(label, batch, threads, runs, fused[label])
            for name, op, us in _kernel_times(trace, warmup):
                op = op_of.get(name, op)
                # the body is float: quantize/dequantize kernels ONNX Runtime named after its tensors
                # belong to the int8 products around it
                idx = None if op in _QUANT_OPS else owner.get(name, _fused_index(name))
                prof.kernels.append((name, op, idx, us))
            out[label] = prof
    return out


def _name_of(model: Any) -> str:
    return "model" if not isinstance(model, (str, os.PathLike)) else str(model)


def _kernel_times(trace: list[dict[str, Any]], warmup: int) -> Iterable[tuple[str, str, float]]:
    """(node name, op type, median microseconds per run) over the runs after the first `warmup`.

    The median, not the mean: on a shared machine one preempted run can add milliseconds to a
    single kernel, which a mean over a few dozen runs would spread over the whole table.
    """
    runs = sorted((ev["ts"], ev["ts"] + ev["dur"]) for ev in trace
                  if ev.get("cat") == "Session" and ev.get("name") == "model_run")[warmup:]
    if not runs:
        return
    starts = [r[0] for r in runs]
    per_run: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * len(runs))
    suffix = "_kernel_time"
    for ev in trace:
        if ev.get("cat") != "Node" or not ev.get("name", "").endswith(suffix):
            continue
        i = bisect.bisect_right(starts, ev["ts"]) - 1
        if i < 0 or ev["ts"] > runs[i][1]:
            continue
        per_run[(ev["name"][: -len(suffix)], ev.get("args", {}).get("op_name", "?"))][i] += ev["dur"]
    for (name, op), times in per_run.items():
        yield name, op, float(np.median(times))


def bundle_inputs(workdir: str | os.PathLike, precision: str, batch: int = 1, seed: int = 0):
    """(ONNX path, feeds) of one variant of a bundle: a random clip batch of the bundle's input shape."""
    import onnx

    from lvt_edge import bundle as B
    from lvt_edge.runtime.files import checked_file

    data = B.read_bundle(workdir)
    entry = B.variant(data, precision, workdir)
    path = checked_file(workdir, entry.get("onnx") or B.onnx_name(precision), entry.get("sha256"),
                        what=f"{precision} ONNX file", rebuild=B.rebuild_command(workdir, precision))
    contract = B.bundle_contract(data)
    clip = np.random.default_rng(seed).uniform(-1, 1, (batch, *contract.input_shape)).astype(np.float32)
    model = onnx.load(str(path))
    return model, {model.graph.input[0].name: clip}, path


def profile_variants(workdir: str | os.PathLike, precisions: Iterable[str], *, batch: int = 1, runs: int = 20,
                     warmup: int = 3, threads: int | None = None) -> dict[str, Profile]:
    """Profile variants of a bundle, interleaved, on one random clip batch of its input shape."""
    models = {}
    for p in precisions:
        model, feeds, path = bundle_inputs(workdir, p, batch)
        models[f"{p} ({path.name})"] = (model, feeds)
    profs = profile_models(models, runs=runs, warmup=warmup, threads=threads)
    return dict(zip(precisions, profs.values()))


def profile_variant(workdir: str | os.PathLike, precision: str, *, batch: int = 1, runs: int = 20, warmup: int = 3,
                    threads: int | None = None) -> Profile:
    """Profile one variant of a bundle on a random clip batch of the bundle's input shape."""
    return profile_variants(workdir, [precision], batch=batch, runs=runs, warmup=warmup, threads=threads)[precision]


def format_profile(prof: Profile, top: int = 12) -> str:
    """Two plain-text tables: kernel time by op type (with the part inside fused bodies) and by fused node."""
    per_run_ms = prof.total_us / 1e3
    threads = "default threads" if prof.threads is None else f"{prof.threads} thread{'s' * (prof.threads > 1)}"
    lines = [f"{prof.source}: batch {prof.batch}, {threads}, {prof.runs} profiled runs; "
             f"kernel time {per_run_ms:.2f} ms per run, fused FFLA bodies {prof.fused_share * 100:.1f} %",
             "", f"{'op type':26s} {'ms/run':>8s} {'share':>7s} {'in FFLA':>8s}"]
    rows = prof.by_op_type()
    for r in rows[:top]:
        lines.append(f"{r['op_type']:26s} {r['us'] / 1e3:8.3f} {r['share'] * 100:6.1f}% "
                     f"{r['fused_us'] / (prof.total_us or 1) * 100:7.1f}%")
    if len(rows) > top:
        rest = rows[top:]
        lines.append(f"{f'({len(rest)} more)':26s} {sum(r['us'] for r in rest) / 1e3:8.3f} "
                     f"{sum(r['share'] for r in rest) * 100:6.1f}% "
                     f"{sum(r['fused_us'] for r in rest) / (prof.total_us or 1) * 100:7.1f}%")
    if prof.fused:
        lines += ["", f"{'fused node':34s} {'ms/run':>8s} {'share':>7s} {'kernels':>8s}"]
        for r in prof.by_fused_node():
            label = f"{r['node']} ({r['axis']})" if r["axis"] else r["node"]
            lines.append(f"{label:34s} {r['us'] / 1e3:8.3f} {r['share'] * 100:6.1f}% {r['kernels']:8d}")
    return "\n".join(lines)


def profile_report(workdir: str | os.PathLike, precisions: Iterable[str] | None = None, batches: Iterable[int] = (1,),
                   *, runs: int = 20, warmup: int = 3, threads: int | None = None, backend: str = "auto",
                   device: str | None = None) -> str:
    """`lvt-edge bench --profile`: the profile tables of each variant and batch, as text.

    Profiling is an ONNX Runtime CPU feature: other backends and devices are refused.
    """
    from lvt_edge import bundle as B
    from lvt_edge.errors import LvtEdgeError

    if backend not in ("auto", "onnxruntime") or device not in (None, "auto", "cpu"):
        raise LvtEdgeError("--profile shows where ONNX Runtime spends its time on the CPU; "
                           "drop --backend/--device (or use --backend onnxruntime --device cpu)")
    if runs < 1 or warmup < 0 or (threads is not None and threads < 1):
        raise LvtEdgeError("--profile needs --runs >= 1, --warmup >= 0 and --threads >= 1")
    data = B.read_bundle(workdir)
    precisions = tuple(precisions or (p for p in B.PRECISIONS if p in data.get("variants", {})))
    parts = []
    for batch in batches:
        for prof in profile_variants(workdir, precisions, batch=batch, runs=runs, warmup=warmup,
                                     threads=threads).values():
            parts.append(format_profile(prof))
    parts.append(f"ONNX Runtime CPU, graph optimizations on (ENABLE_ALL), variants profiled in interleaved runs; "
                 f"per kernel the median of {runs} runs after {warmup} warm-up runs; shares are of the summed "
                 "kernel time; \"in FFLA\": the part of each op type that runs inside the fused "
                 "FFLinearAttention nodes' bodies.")
    return "\n\n".join(parts)
