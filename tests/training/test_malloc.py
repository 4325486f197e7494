"""glibc's mmap threshold fixed for CPU training: large blocks freed in the middle of the heap go back
to the system (`text2sql.training.malloc`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from text2sql.training.malloc import ENV, keep_large_blocks_on_mmap

CHILD = """
import sys
import torch
from text2sql.training.malloc import keep_large_blocks_on_mmap

def rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024

if sys.argv[1] == "fixed":
    keep_large_blocks_on_mmap()
torch.ones(4 * 2**20 // 4)  # one 4 MiB block freed: glibc's threshold grows past it
before = rss_mb()
large, small = [], []
for _ in range(50):  # 4 MiB activations with small live tensors between them, as a step leaves them
    large.append(torch.ones(4 * 2**20 // 4))
    small.append(torch.ones(256))
del large
print(rss_mb() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_activations_go_back_to_the_system():
    env = {k: v for k, v in os.environ.items() if k != ENV}
    kept = {
        mode: float(subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True,
                                   check=True).stdout)
        for mode in ("glibc", "fixed")
    }  # fmt: skip
    assert kept["glibc"] > 150, kept  # 200 MiB freed, kept by the process
    assert kept["fixed"] < 20, kept


def test_the_environment_setting_wins(monkeypatch):
    monkeypatch.setenv(ENV, "65536")
    assert keep_large_blocks_on_mmap() == f"{ENV} set in the environment"
