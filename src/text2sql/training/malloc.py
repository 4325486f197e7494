"""Freed activations back to the operating system during CPU training (glibc's malloc).

glibc serves a large allocation with its own mmap, returned to the system when freed, but only above
a threshold that grows, by default, to the size of the largest block freed so far (up to 32 MiB).
A training step frees activation tensors of a few MiB each, so after the first step they come from
the heap instead, where freed blocks stay in the process, split and reused at other sizes: measured on
SmolLM2-135M (batch 8, checkpointed, bf16), the peak RSS was 5.1 GB, of which the tensors alive at
once explain under 2 GB. Fixing the threshold (which also stops its growth) keeps large blocks on
mmap: the same run peaked at 2.6 GB (BENCHMARKS.md, "Training memory on CPU").

`MALLOC_MMAP_THRESHOLD_` in the environment is the user's own setting of the same thing, and wins.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
THRESHOLD = 128 * 1024  # glibc's starting value, kept instead of grown
ENV = "MALLOC_MMAP_THRESHOLD_"


def keep_large_blocks_on_mmap(threshold: int = THRESHOLD) -> str:
    """Fix glibc's mmap threshold at `threshold` bytes for this process; says what was done and why."""
    if ENV in os.environ:
        return f"{ENV} set in the environment"
    if not sys.platform.startswith("linux"):
        return "not Linux: the system allocator is left as it is"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return "no glibc mallopt: the allocator is left as it is"
    if not mallopt(M_MMAP_THRESHOLD, threshold):
        return "mallopt refused the threshold"
    return f"blocks over {threshold // 1024} KiB are mmapped and returned when freed"
