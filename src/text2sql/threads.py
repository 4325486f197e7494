"""How many CPU threads torch uses for a model, at the start and while it runs.

torch starts one intra-op thread per core, whatever else the machine is doing. On 2 cores the
quickstart model trains about twice as fast on two threads as on one when the machine is quiet, but
with two CPU-bound processes beside it two threads are 1.6-3x slower than one (BENCHMARKS.md,
Threads), and worse under heavier contention. So the default (`model.threads: 0`) is the cores that are idle when
the model starts: measured over a quarter of a second from /proc/stat, at least one, at most the
physical cores this process may run on. `--threads N` (`model.threads: N`) or `TEXT2SQL_THREADS=N`
sets it, and pins it.

Other work comes and goes while a model trains for an hour, so an unpinned count follows the machine
(`ThreadGovernor`): every few steps, and at most every 30 s, the cores left to this process (the
idle ones plus the ones it kept busy itself, from /proc/stat and its own CPU time since the previous
look, no sleeping) are counted again and torch's count is raised or lowered to match.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _physical(cpus: list[int]) -> int:
    """How many physical cores `cpus` sit on (hyperthread siblings share one); len(cpus) when unknown."""
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return len(cpus)
        cores.add((package, core))
    return len(cores) or len(cpus)


def _cgroup_quota() -> float | None:
    """The CPU quota of this process's cgroup in cores (v2 cpu.max, v1 cfs_quota_us); None: no limit."""
    candidates = (
        (Path("/sys/fs/cgroup/cpu.max"), None),
        (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")),
    )
    for quota_file, period_file in candidates:
        try:
            fields = quota_file.read_text().split()
            if period_file is not None:
                fields.append(period_file.read_text().strip())
        except OSError:
            continue
        if len(fields) < 2 or fields[0] in ("max", "-1"):
            return None
        try:
            return int(fields[0]) / int(fields[1])
        except (ValueError, ZeroDivisionError):
            return None
    return None


def available_cores() -> int:
    """The physical cores this process may use: its affinity, counted by core, within its cgroup's quota."""
    cores = max(1, _physical(allowed_cpus()))
    quota = _cgroup_quota()
    return cores if quota is None else max(1, min(cores, math.ceil(quota)))


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


def pinned_setting(setting: int) -> int | None:
    """The thread count the user fixed: `setting` when positive, else `TEXT2SQL_THREADS`; None: not fixed."""
    if setting > 0:
        return setting
    from_env = os.environ.get(ENV, "").strip()
    if from_env.isdigit() and int(from_env) > 0:
        return int(from_env)
    return None


def choose_threads(setting: int) -> int:
    """`setting` when positive, else `TEXT2SQL_THREADS`, else the cores idle right now (rounded, at
    least one, at most the available cores; measured at most once a minute)."""
    global _measured
    fixed = pinned_setting(setting)
    if fixed is not None:
        return fixed
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


# ------------------------------------------------------------------------------ following the machine


@dataclass(frozen=True)
class CoreReading:
    """What the cores of this process did since the previous reading, in cores (2.0 = two cores the
    whole time): `idle` sat idle, `own` ran this process (all its threads)."""

    idle: float
    own: float

    @property
    def free(self) -> float:
        """The cores this process could have had: the idle ones and the ones it held."""
        return self.idle + self.own


class CoreMeter:
    """Successive `CoreReading`s from /proc/stat and this process's CPU time, each covering the time
    since the previous one (no sleeping: a reading costs a file read)."""

    def __init__(self) -> None:
        self.cpus = allowed_cpus()
        self._last = self._snapshot()

    def _snapshot(self) -> tuple[tuple[float, float] | None, float, float]:
        return _cpu_times(self.cpus), time.process_time(), time.monotonic()

    def read(self) -> CoreReading | None:
        """The reading since the previous call (None where /proc/stat is missing or no time passed)."""
        (before, own_before, wall_before), now = self._last, self._snapshot()
        self._last = now
        after, own_after, wall_after = now
        if before is None or after is None or after[1] <= before[1] or wall_after <= wall_before:
            return None
        idle = len(self.cpus) * (after[0] - before[0]) / (after[1] - before[1])
        own = (own_after - own_before) / (wall_after - wall_before)
        return CoreReading(idle=max(0.0, idle), own=max(0.0, own))


# How often a running model's thread count is looked at: after this many steps and this many
# seconds, whichever comes later (a look costs one read of /proc/stat).
FOLLOW_STEPS = 5
FOLLOW_SECONDS = 30.0


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _set_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)


class ThreadGovernor:
    """Keeps torch's thread count at the cores left to this process while a model runs.

    `tick(step)` is called between units of work (training steps, forward passes); it looks at the
    cores when at least `every_steps` steps and `every_seconds` seconds passed since its last look
    (whichever comes later), and sets the count to the free cores (idle + this process's own use),
    rounded, at least one, at most `available_cores()`. A count the user fixed (`pinned_setting`)
    is never changed. `read` gives the readings (`CoreMeter.read` by default; tests inject theirs).
    """

    def __init__(
        self,
        setting: int,
        *,
        read: Callable[[], CoreReading | None] | None = None,
        every_steps: int | None = None,
        every_seconds: float | None = None,
        limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        get_threads: Callable[[], int] = _torch_threads,
        set_threads: Callable[[int], None] = _set_torch_threads,
        logger: logging.Logger | None = None,
    ):
        self.pinned = pinned_setting(setting)
        self.every_steps = FOLLOW_STEPS if every_steps is None else every_steps
        self.every_seconds = FOLLOW_SECONDS if every_seconds is None else every_seconds
        self.limit = limit or available_cores()
        self.clock, self.get_threads, self.set_threads = clock, get_threads, set_threads
        self.log = logger or log
        self._read = read
        self._last_step = 0
        self._last_time = clock()
        self.changes: list[tuple[int, int, CoreReading]] = []  # (from, to, reading) for each change made

    def start(self, step: int = 0) -> None:
        """Begin a schedule at `step`: the first look comes `every_steps` / `every_seconds` later."""
        if self.pinned is None and self._read is None:
            self._read = CoreMeter().read  # its first reading covers the time since now
        self._last_step, self._last_time = step, self.clock()

    def decide(self, reading: CoreReading, current: int) -> int:
        """The thread count for `reading`: the free cores rounded, within [1, limit]; `current` when pinned."""
        if self.pinned is not None:
            return current
        return min(self.limit, max(1, int(reading.free + 0.5)))

    def due(self, step: int) -> bool:
        return step - self._last_step >= self.every_steps and self.clock() - self._last_time >= self.every_seconds

    def tick(self, step: int) -> int | None:
        """Look at the cores when due and change torch's count if they call for it; the new count, else None."""
        global _measured
        if self.pinned is not None or not self.due(step):
            return None
        if self._read is None:
            self.start(step)
            return None
        self._last_step, self._last_time = step, self.clock()
        reading = self._read()
        if reading is None:
            return None
        current = self.get_threads()
        target = self.decide(reading, current)
        if target == current:
            return None
        self.set_threads(target)
        _measured = (time.monotonic(), target)  # a model loaded next in this process starts from it
        self.changes.append((current, target, reading))
        self.log.info(
            "CPU threads %d -> %d: %.1f of %d cores idle, %.1f busy with this process",
            current,
            target,
            reading.idle,
            len(allowed_cpus()),
            reading.own,
        )
        return target


# Forward passes between looks at the cores while a model generates or scores (a generation step
# is one forward pass), on top of the 30 s.
FORWARD_PASSES = 8


@contextlib.contextmanager
def following(model: Any, setting: int, governor: ThreadGovernor | None = None) -> Iterator[ThreadGovernor]:
    """While the block runs, `model`'s forward passes tick a `ThreadGovernor` for `setting`, so that
    evaluation follows the machine between generation steps and batches as training does between
    steps. Nothing is hooked for a pinned setting or a model that is not a torch module."""
    governor = governor or ThreadGovernor(setting, every_steps=FORWARD_PASSES)
    hook = getattr(model, "register_forward_pre_hook", None)
    if governor.pinned is not None or hook is None:
        yield governor
        return
    governor.start()
    passes = itertools.count(1)

    def look(module: Any, args: Any) -> None:
        governor.tick(next(passes))

    handle = hook(look)
    try:
        yield governor
    finally:
        handle.remove()
