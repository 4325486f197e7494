"""Large CPU tensors on page-aligned blocks backed by transparent huge pages.

A training step on CPU allocates and frees tensors of tens of megabytes in every layer, and glibc's
allocator serves them from a heap that it keeps: with activation checkpointing each layer keeps one
small tensor after its large temporaries are freed, the next layer's temporaries do not fit the holes
left behind, and the heap grows by about a layer's temporaries per layer. SmolLM2-135M, LoRA, batch 8
of ~435 tokens: 4.2-4.6 GB resident at the step's peak for ~1.8 GB of live tensors. Returning every block
to the system at once (`MALLOC_MMAP_THRESHOLD_`) ends the growth but costs 50-75% more time per step
in page faults on fresh 4 KB pages.

PyTorch has a switch for this: with `THP_MEM_ALLOC_ENABLE=1` its CPU allocator places every
allocation of 2 MB or more on a page boundary and advises the kernel to back it with transparent huge
pages (`madvise(MADV_HUGEPAGE)`). Measured on that step, the heap then grows by ~25 MB a layer instead
of ~120 MB, and the step peaks at 2.7 GB at the same speed (BENCHMARKS.md, "Training memory on CPU").
torch reads the variable once, at its first allocation, so it has to be set before torch is imported:
the `text2sql` command does that (`use_huge_pages`); a program that imports torch itself sets the
variable first.
`THP_MEM_ALLOC_ENABLE=0` in the environment keeps it off.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "THP_MEM_ALLOC_ENABLE"
_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_LARGE = 2 << 20  # torch's threshold: the x86-64 huge page
_PAGE = 4096


def kernel_mode(path: Path = _MODE) -> str | None:
    """The kernel's transparent-huge-page mode ("always", "madvise" or "never"), None where unknown."""
    try:
        text = path.read_text()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else None


def use_huge_pages() -> bool:
    """Set `THP_MEM_ALLOC_ENABLE=1` for torch unless the environment says otherwise, torch is loaded
    already, or the kernel gives no huge pages; returns whether the variable is now 1."""
    if sys.platform != "linux" or "torch" in sys.modules or kernel_mode() in (None, "never"):
        return os.environ.get(ENV) == "1"
    os.environ.setdefault(ENV, "1")
    return os.environ[ENV] == "1"


def torch_uses_huge_pages() -> bool:
    """Whether torch's CPU allocator, as this process loaded it, treats large tensors so: seen in where
    it places two of them (page-aligned only then; otherwise 64 bytes past a page, or anywhere)."""
    import torch

    probes = [torch.empty(_LARGE + extra, dtype=torch.uint8) for extra in (0, 3 * _PAGE + 8)]
    return all(p.data_ptr() % _PAGE == 0 for p in probes)
