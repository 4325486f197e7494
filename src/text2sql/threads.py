"""How many CPU threads torch uses for a model.

torch starts one intra-op thread per core. For a model of a few million parameters one thread is as
fast as two on a quiet machine, and on a machine that other processes also use two spinning OpenMP
threads per process made training steps 4-35x slower (BENCHMARKS.md, Threads). So the default is
one thread for small models and the cores this process may run on for the others; `model.threads`
(`--threads`) sets it explicitly.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("text2sql")

# Models below this many parameters get one thread by default: their matrix products are too small
# for a second thread to pay for its synchronisation (measured on the 0.8M-parameter quickstart model).
SMALL_MODEL_PARAMETERS = 20_000_000


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def choose_threads(setting: int, parameters: int | None) -> int:
    """`setting` when it is positive; else one thread for small models, the available cores otherwise."""
    if setting > 0:
        return setting
    if parameters is not None and parameters < SMALL_MODEL_PARAMETERS:
        return 1
    return available_cores()


def parameter_count(model: Any) -> int | None:
    """The parameters of a torch module (None when it is none)."""
    try:
        return sum(p.numel() for p in model.parameters())
    except (AttributeError, TypeError):
        return None


def use_threads(setting: int, model: Any = None) -> int:
    """Set torch's intra-op threads for running `model` (see `choose_threads`); returns the number."""
    import torch

    count = choose_threads(setting, parameter_count(model) if model is not None else None)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
        log.debug("torch uses %d CPU thread(s)", count)
    return count
