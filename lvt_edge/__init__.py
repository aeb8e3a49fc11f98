"""lvt_edge: the Linear Video Transformer with feature fixation, from PyTorch to edge GPUs."""

__version__ = "0.1.0"

from lvt_edge.errors import LvtEdgeError

__all__ = ["LvtEdgeError", "__version__"]
