"""The peak resident memory of this process over a stretch of work, sampled from /proc/self/statm.

Sampling (every 50 ms, on a daemon thread) rather than the kernel's high-water mark: that one can
only be reset for the whole process, and the trainer reports its own peak from it.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_INTERVAL = 0.05  # seconds between samples


def rss_mb() -> float | None:
    """This process's resident memory now, in MiB (None where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return psutil.Process().memory_info().rss / 2**20
        except Exception:  # no psutil, no /proc: memory is not reported
            return None


class PeakRss:
    """`with PeakRss() as peak: ...` then `peak.mb`: the most resident memory seen while the block ran
    (MiB, None when unknown), and `peak.start_mb` what it held when the block began."""

    def __init__(self, interval: float = _INTERVAL):
        self.interval = interval
        self.start_mb: float | None = None
        self.mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        now = rss_mb()
        if now is not None:
            self.mb = now if self.mb is None else max(self.mb, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRss:
        self.start_mb = rss_mb()
        self.mb = self.start_mb
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
