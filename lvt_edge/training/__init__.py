"""Training and fine-tuning LVT models on clip sets (torch side)."""

from lvt_edge.training.trainer import TrainOptions, TrainResult, evaluate, lr_at, train

__all__ = ["TrainOptions", "TrainResult", "evaluate", "lr_at", "train"]
