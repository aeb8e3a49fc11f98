"""The one classifier signature every backend answers (Polygraphy-runner style).

A backend subclass only turns a checked float32 batch into logits (`_logits`) and frees what
it owns (`_close`). Shape and dtype checks, batching up to the backend's limit and the
softmax live here, once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lvt_edge.contract import ClipContract
from lvt_edge.errors import LvtEdgeError


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    z = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Classifier:
    """A loaded bundle variant: `predict(clips) -> probabilities`.

    Use it as a context manager (`with load_bundle(w) as clf:`) so its sessions, engines and
    device buffers are freed when the block ends.
    """

    backend = "base"
    #: largest batch one `_logits` call takes (None: any); bigger inputs are split.
    max_batch: int | None = None

    def __init__(self, contract: ClipContract, *, precision: str, source: str = "") -> None:
        self.contract = contract
        self.precision = precision
        self.source = source  # the file this classifier runs (for reports and messages)
        self._closed = False

    # -- the shared signature ------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        return self.contract.labels

    def predict(self, clips: np.ndarray) -> np.ndarray:
        """Class probabilities: one clip 3xTxHxW -> (classes,), a batch Bx3xTxHxW -> B x classes."""
        return softmax(self.logits(clips))

    def logits(self, clips: np.ndarray) -> np.ndarray:
        """Raw logits with the same shape rules as `predict`."""
        if self._closed:
            raise LvtEdgeError(f"this {self.backend} classifier is closed; load the bundle again")
        batch, single = self._check(clips)
        step = self.max_batch or len(batch)
        out = [self._logits(batch[i : i + step]) for i in range(0, len(batch), step)]
        logits = np.concatenate(out) if len(out) > 1 else out[0]
        if logits.shape != (len(batch), self.contract.num_classes):
            raise RuntimeError(f"{self.backend} returned logits of shape {logits.shape}, "
                               f"expected {(len(batch), self.contract.num_classes)}")
        return logits[0] if single else logits

    def warmup(self, runs: int = 3, batch: int = 1) -> None:
        """Run a few zero clips so lazy allocations and autotuning happen before timing."""
        x = np.zeros((batch, *self.contract.input_shape), np.float32)
        for _ in range(runs):
            self.logits(x)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.precision} {self.source}>"

    # -- what a backend implements -------------------------------------------------------
    def _logits(self, batch: np.ndarray) -> np.ndarray:
        """C-contiguous float32 B x 3 x T x H x W (B <= max_batch) -> float32 B x classes."""
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # -- shared checks -------------------------------------------------------------------
    def _check(self, clips: Any) -> tuple[np.ndarray, bool]:
        x = np.asarray(clips)
        want = self.contract.input_shape
        single = x.ndim == len(want)
        if single:
            x = x[None]
        if x.ndim != len(want) + 1 or x.shape[1:] != want or x.shape[0] == 0:
            raise LvtEdgeError(
                f"clips of shape {tuple(np.shape(clips))} do not fit this model: it takes one clip "
                f"{'x'.join(map(str, want))} or a batch Bx{'x'.join(map(str, want))}; "
                "make clips with the bundle's contract (clf.contract.preprocess(frames, order='BGR'))"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise LvtEdgeError(
                f"clips must be floating point, got {x.dtype}: raw frames need "
                "clf.contract.preprocess(frames, order='BGR') first (it scales and normalises them)"
            )
        return np.ascontiguousarray(x, dtype=np.float32), single
