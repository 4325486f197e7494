"""Quiet library progress bars around steps too short to need one."""

from __future__ import annotations

import contextlib
import sys


@contextlib.contextmanager
def progress_bars_disabled():
    """Hide the bars of a step that takes a second or less (transformers' 'Loading weights' /
    'Writing model shards', datasets' 'Saving the dataset'); restore the caller's settings."""
    from transformers.utils import logging as hf_logging

    # datasets only when the caller already uses it: importing it costs `predict` a second at start-up.
    datasets = sys.modules.get("datasets")
    enabled = hf_logging.is_progress_bar_enabled()
    datasets_enabled = datasets is not None and not datasets.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    if datasets_enabled:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()
        if datasets_enabled:
            datasets.enable_progress_bars()
