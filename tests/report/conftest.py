"""The runtime tests' tiny-bundle fixtures (tests/runtime/tiny_bundle.py), shared."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_name = "lvt_edge_tests_tiny_bundle"
if _name not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_name, Path(__file__).parents[1] / "runtime" / "tiny_bundle.py")
    sys.modules[_name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_name])
_tiny = sys.modules[_name]
tiny, exported, bundle = _tiny.tiny, _tiny.exported, _tiny.bundle
