"""How lvt-edge talks on a terminal: verbosity, progress bars, warnings and each verb's last line.

Three levels, set once by the CLI (`-q`, default, `-v`):
- quiet: no progress bars (here and in worker processes), no notes, no closing line; warnings and
  errors still show;
- normal: progress bars, notes, lvt_edge's own warnings, one closing line per verb;
- verbose: also the warnings and log lines of third-party libraries (the exporter, ONNX Runtime,
  ModelOpt, torchvision's absence), which are noise to most users but evidence in a bug report.

Everything printed while a progress bar may be on screen goes through `tqdm.write`, so a message
never lands glued to the end of a bar.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from typing import Iterator

from lvt_edge.errors import LvtEdgeWarning

QUIET, NORMAL, VERBOSE = 0, 1, 2
_level = NORMAL

# ONNX Runtime's log severities: 0 verbose, 1 info, 2 warning, 3 error, 4 fatal
_ORT_SEVERITY = {QUIET: 3, NORMAL: 3, VERBOSE: 2}


@contextlib.contextmanager
def verbosity(level: int) -> Iterator[None]:
    """Run a verb at `level`, then put back what `configure` changed (tests call the CLI in-process)."""
    saved = (_level, os.environ.get("TQDM_DISABLE"), logging.root.manager.disable)
    with warnings.catch_warnings():  # restores the filters and showwarning
        configure(level)
        try:
            yield
        finally:
            _restore(*saved)


def _restore(old_level: int, tqdm_disable: str | None, logging_disable: int) -> None:
    global _level
    _level = old_level
    if tqdm_disable is None:
        os.environ.pop("TQDM_DISABLE", None)
    else:
        os.environ["TQDM_DISABLE"] = tqdm_disable
    logging.disable(logging_disable)


def configure(level: int) -> None:
    """Set the verbosity for this process and the worker processes it starts."""
    global _level
    _level = level
    if level <= QUIET:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads it for every bar, in children too
    warnings.showwarning = _show_warning
    if level < VERBOSE:
        warnings.filterwarnings("ignore")
        warnings.filterwarnings("default", category=LvtEdgeWarning)
        logging.disable(logging.WARNING)  # third-party loggers (torch.onnx, modelopt, onnxscript)
    else:
        logging.disable(logging.NOTSET)


def level() -> int:
    return _level


def progress() -> bool:
    """Whether progress bars are wanted."""
    return _level > QUIET


def ort_session_options():
    """`onnxruntime.SessionOptions` that log only what this verbosity wants (ONNX Runtime writes its
    warnings from C++, past Python's warning filters)."""
    import onnxruntime as ort

    severity = _ORT_SEVERITY.get(_level, 3)
    ort.set_default_logger_severity(severity)
    opts = ort.SessionOptions()
    opts.log_severity_level = severity
    return opts


def bar(iterable=None, desc: str = "", unit: str = "it", *, enabled: bool = True, leave: bool = False, **kw):
    """A tqdm progress bar on stderr, shown unless the caller or -q turns it off."""
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=unit, disable=not (enabled and progress()), leave=leave,
                file=sys.stderr, dynamic_ncols=True, **kw)


def write(message: str) -> None:
    """A line on stderr that clears any progress bar first."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def note(message: str) -> None:
    """Something worth knowing that is not a problem; hidden by -q."""
    if _level > QUIET:
        write(message)


def done(result: str, *next_steps: str) -> None:
    """A verb's closing line: where its result went, then what to run next; hidden by -q."""
    if _level <= QUIET:
        return
    lines = [f"done: {result}"]
    if next_steps:
        lines.append("next: " + "\n      ".join(next_steps))
    print("\n".join(lines), file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, LvtEdgeWarning):
        write(f"warning: {message}")
    else:  # third-party, shown under -v only: keep where it came from
        write(f"warning ({category.__name__}, {os.path.basename(filename)}:{lineno}): {message}")
