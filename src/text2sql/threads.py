"""How many CPU threads torch uses for a model.

torch starts one intra-op thread per core, whatever else the machine is doing. On 2 cores the
quickstart model trains about twice as fast on two threads as on one when the machine is quiet, but
with two CPU-bound processes beside it two threads are 1.6-3x slower than one (BENCHMARKS.md,
Threads), and worse under heavier contention. So the default (`model.threads: 0`) is the cores that are idle when
the model starts: measured over a quarter of a second from /proc/stat, at least one, at most the
cores this process may run on. `--threads N` (`model.threads: N`) or `TEXT2SQL_THREADS=N` sets it.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("text2sql")

ENV = "TEXT2SQL_THREADS"
_WINDOW = 0.25  # seconds of CPU accounting the idle measurement looks at
_REMEASURE = 60.0  # seconds a measurement is reused: a process loading several models measures once
_measured: tuple[float, int] | None = None  # (when, threads)


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return list(range(os.cpu_count() or 1))


def available_cores() -> int:
    return max(1, len(allowed_cpus()))


def _cpu_times(cpus: list[int]) -> tuple[float, float] | None:
    """(idle, total) jiffies of `cpus` from /proc/stat; None where there is no /proc/stat."""
    try:
        lines = open("/proc/stat", encoding="ascii").read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{c}" for c in cpus}
    idle = total = 0.0
    for line in lines:
        name, *fields = line.split()
        if name in wanted:
            values = [float(v) for v in fields]
            idle += values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
            total += sum(values[:8])  # user nice system idle iowait irq softirq steal
    return (idle, total) if total else None


def idle_cores(window: float = _WINDOW) -> float | None:
    """How many of this process's cores sat idle over the last `window` seconds (None: unknown)."""
    cpus = allowed_cpus()
    before = _cpu_times(cpus)
    if before is None:
        return None
    time.sleep(window)
    after = _cpu_times(cpus)
    if after is None or after[1] <= before[1]:
        return None
    return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])


def choose_threads(setting: int) -> int:
    """`setting` when positive, else `TEXT2SQL_THREADS`, else the cores idle right now (rounded, at
    least one, at most the available cores; measured at most once a minute)."""
    global _measured
    if setting > 0:
        return setting
    from_env = os.environ.get(ENV, "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    now = time.monotonic()
    if _measured is not None and now - _measured[0] < _REMEASURE:
        return _measured[1]
    idle = idle_cores()
    if idle is None:  # no CPU accounting: the load average says how busy the cores are
        try:
            idle = available_cores() - os.getloadavg()[0]
        except OSError:
            idle = float(available_cores())
    count = min(available_cores(), max(1, int(idle + 0.5)))
    _measured = (now, count)
    return count


def use_threads(setting: int) -> int:
    """Set torch's intra-op threads (see `choose_threads`) before a model runs; returns the number."""
    import torch

    count = choose_threads(setting)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
        log.debug("torch uses %d CPU thread(s)", count)
    return count
