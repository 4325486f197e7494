"""Progress: our own (a bar on a terminal, whole lines in a log), and library bars quieted around steps
too short to need one."""

from __future__ import annotations

import contextlib
import datetime
import sys
import time
from typing import Any


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


class LineProgress:
    """Progress as whole lines, for output that is not a terminal (a log file, a pipe): a line once the
    work has run `first` seconds, then every `every` seconds, each with the rate and an ETA, and a
    last line when it ends. Work that ends sooner prints nothing."""

    def __init__(
        self, total: int, desc: str, unit: str, *, stream: Any = None, first: float = 5.0, every: float = 30.0
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.stream = stream or sys.stderr
        self.first, self.every = first, every
        self.n = 0
        self._start = time.monotonic()
        self._last: float | None = None

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        due = self.first if self._last is None else self.every
        if now - (self._last or self._start) >= due:
            self._line(now)

    def _line(self, now: float, final: bool = False) -> None:
        elapsed = now - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if not self.total:  # a stream of unknown length: the count and the rate
            text = f"{self.desc}: {self.n} {self.unit} {'in' if final else 'so far,'} {elapsed:.0f} s"
            text += "" if final else f" | {rate:.1f} {self.unit}/s"
        elif final:
            text = f"{self.desc}: {self.n}/{self.total} {self.unit} in {elapsed:.0f} s"
        else:
            eta = f" | ETA {datetime.timedelta(seconds=int((self.total - self.n) / rate))}" if rate > 0 else ""
            text = f"{self.desc}: {self.n}/{self.total} {self.unit} | {rate:.1f} {self.unit}/s{eta}"
        print(text, file=self.stream, flush=True)
        self._last = now

    def close(self) -> None:
        if self._last is not None:
            self._line(time.monotonic(), final=True)


def progress(total: int, desc: str, unit: str = "ex", *, enabled: bool = True) -> Any:
    """Progress for `total` units of work (0: not known in advance) as a tqdm bar on a terminal,
    whole lines otherwise (`LineProgress`), nothing when not `enabled`. Has `update(n)` and `close()`."""
    from tqdm.auto import tqdm

    if enabled and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return LineProgress(total, desc, unit)
    return tqdm(total=total or None, desc=desc, unit=unit, disable=not enabled, leave=False)
