"""Fixtures from tiny_bundle.py: one exported tiny model per session, bundles made from it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def load_tiny_bundle():
    """tests/runtime/tiny_bundle.py as one module, shared by the runtime and report tests."""
    name = "lvt_edge_tests_tiny_bundle"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("tiny_bundle.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


_tiny = load_tiny_bundle()
tiny, exported, bundle = _tiny.tiny, _tiny.exported, _tiny.bundle
