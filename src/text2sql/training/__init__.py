"""Training: trainer setup for decoder (TRL SFTTrainer) and T5 (Seq2SeqTrainer) models, fine-tuning
methods, callbacks and checkpoints. `train(cfg)` is the entry point (`text2sql train`)."""

from __future__ import annotations

from typing import Any

__all__ = ["train", "TrainResult"]


def __getattr__(name: str) -> Any:
    # Lazy: importing text2sql.training must not import torch / trl (seconds of CLI start-up).
    if name in __all__:
        from text2sql.training import train as _train_module

        return getattr(_train_module, name)
    raise AttributeError(name)
