"""`lvt-edge plugin`: build the fused op's TensorRT plugin library for this machine, and say which
library a TensorRT build would load."""

from __future__ import annotations

import argparse
import json
import sys

from lvt_edge.commands.common import add_json_arg
from lvt_edge.console import VERBOSE


def register(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="build|locate", required=True)
    b = sub.add_parser(
        "build", help="compile plugins/ for this TensorRT, CUDA and GPU into the cache (reused when unchanged)",
        description="Compile plugins/ with cmake and nvcc against the installed TensorRT's headers, for this GPU, "
                    "into $LVT_EDGE_CACHE (default $XDG_CACHE_HOME/lvt_edge or ~/.cache/lvt_edge)/plugins/<key>/; "
                    "`lvt-edge build --target tensorrt` then finds it without flags. Prints the library's path.")
    b.add_argument("--tensorrt-include", metavar="DIR", default=None,
                   help="TensorRT's include/ folder (default: $TENSORRT_INCLUDE_DIR, JetPack's /usr/include/<arch>, "
                        "a TensorRT tar via $TENSORRT_ROOT or LD_LIBRARY_PATH, /usr/local/tensorrt/include, /usr/include)")
    b.add_argument("--arch", metavar="LIST", default=None,
                   help="GPU compute capabilities to build for, e.g. 87 (Orin) or 86,89; 'all' for the CMake "
                        "project's default list (default: this machine's GPU, else all)")
    b.add_argument("-j", "--jobs", type=int, default=None, metavar="N", help="parallel compile jobs (default: CPU count)")
    b.add_argument("--force", action="store_true", help="rebuild even when the cache holds this build")
    _add_source_arg(b, "the plugins/ folder to build")
    loc = sub.add_parser(
        "locate", aliases=["info"], help="which plugin library `build --target tensorrt` would use here, and why",
        description="Say which plugin library a TensorRT build would load for the installed TensorRT, and why; "
                    "list the cache entries.")
    loc.add_argument("--tensorrt-version", metavar="X.Y.Z", default=None,
                     help="choose for this TensorRT version instead of the installed one")
    loc.add_argument("--path", action="store_true", help="print only the library's path (for scripts, trtexec)")
    add_json_arg(loc, "the choice")
    _add_source_arg(loc, "the plugins/ folder whose sources cache entries are checked against")


def _add_source_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--source", metavar="DIR", default=None,
                   help=f"{what} (default: $LVT_EDGE_PLUGIN_SOURCE, the checkout beside "
                        "lvt_edge, or the copy packaged with it)")


def run(args: argparse.Namespace) -> int:
    if args.action == "build":
        return _build(args)
    return _locate(args)


def _build(args: argparse.Namespace) -> int:
    from lvt_edge.variants.plugin import plugin_from_sources
    from lvt_edge.errors import LvtEdgeError

    if args.jobs is not None and args.jobs < 1:
        raise LvtEdgeError(f"--jobs {args.jobs}: expected a positive number of parallel jobs")
    built = plugin_from_sources(tensorrt_include=args.tensorrt_include, arch=args.arch, jobs=args.jobs,
                                force=args.force, source=args.source, verbose=args.verbosity >= VERBOSE)
    print(built.library)
    from lvt_edge import console

    console.done(f"plugin library {built.library}", "lvt-edge build DIR --target tensorrt   (finds this library without flags)")
    return 0


def _locate(args: argparse.Namespace) -> int:
    from lvt_edge.variants import plugin as P
    from lvt_edge.variants.tensorrt import choose_plugin

    version, source = (args.tensorrt_version, "--tensorrt-version") if args.tensorrt_version else P.installed_tensorrt()
    gpu, gpu_source = P.gpu_archs()
    src_hash = P.current_source_hash(args.source)
    choice = choose_plugin(version, gpu=lambda: gpu, sources=lambda: src_hash)
    if args.path:
        print(choice.path)
        return 0
    info = {
        "library": str(choice.path), "why": choice.why,
        "tensorrt": version, "tensorrt_from": source,
        "gpu_archs": gpu, "gpu_from": gpu_source,
        "plugin_json": choice.record, "passed_over": list(choice.passed_over),
        "cache": str(P.plugin_cache()),
    }
    if args.json == "-":
        print(json.dumps(info, indent=2))
        return 0
    if args.json:
        from lvt_edge.io import write_json_atomic

        write_json_atomic(args.json, info)
    print(f"library:  {choice.path}")
    print(f"why:      {choice.why}")
    print(f"TensorRT: {version or 'unknown'} ({source})")
    print(f"GPU:      {'sm ' + ', '.join(gpu) if gpu else 'unknown'} ({gpu_source})")
    for other in choice.passed_over:
        print(f"also seen: {other}")
    entries = P.cache_entries()
    print(f"cache:    {P.plugin_cache()} ({len(entries)} entr{'y' if len(entries) == 1 else 'ies'})")
    for folder, rec in entries:
        print(f"  {folder.name}: {P.describe(rec) if rec else 'no readable plugin.json'}")
    sys.stdout.flush()
    return 0
