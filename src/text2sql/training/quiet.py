"""Library warnings that say nothing actionable about a text2sql training run, hidden in one place
for every trainer (SFT, T5, GRPO)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_library_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        # PEFT looks for the base model's config.json under the adapter's base name (`tiny:llama`, a hub
        # id) to see whether embeddings were resized; text2sql never resizes them.
        warnings.filterwarnings("ignore", message="Could not find a config file in")
        warnings.filterwarnings("ignore", message="Unable to fetch remote file")  # the same lookup, offline
        # transformers renamed the attribute; the trainers still read the old name.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*deprecated")
        yield
