"""The one user-facing error type.

Raise `LvtEdgeError` for anything the user can fix (bad input, a missing tool, a mismatched
artifact); its message must say how. The CLI prints it and exits 1 without a traceback.
Bugs are ordinary exceptions and keep their tracebacks.
"""


class LvtEdgeError(Exception):
    """A problem the user can fix; the message says how."""


class LvtEdgeWarning(UserWarning):
    """Base of lvt_edge's own warnings: shown at every verbosity (third-party ones only with -v)."""
