"""Threads follow the machine while a model runs: the governor's decisions from synthetic core
readings, its schedule, the training callback and the evaluation hook that drive it, and a pinned
count that never moves."""

import logging
import subprocess
import sys

import pytest
import torch

from text2sql import threads
from text2sql.threads import CoreMeter, CoreReading, ThreadGovernor, following


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Readings:
    """A reading function that hands out the given readings in turn and counts its calls."""

    def __init__(self, *readings):
        self.readings = list(readings)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return self.readings.pop(0) if self.readings else None


class Torch:
    """A stand-in for torch's thread count, so that decisions are checked without touching torch."""

    def __init__(self, count):
        self.count = count

    def get(self):
        return self.count

    def set(self, count):
        self.count = count


@pytest.fixture
def unpinned(monkeypatch):
    """No --threads and no TEXT2SQL_THREADS (the test session sets it to 1)."""
    monkeypatch.delenv(threads.ENV, raising=False)


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def governor(reading_fn, count, *, setting=0, limit=2, steps=5, seconds=30.0):
    clock, fake = Clock(), Torch(count)
    g = ThreadGovernor(
        setting,
        read=reading_fn,
        every_steps=steps,
        every_seconds=seconds,
        limit=limit,
        clock=clock,
        get_threads=fake.get,
        set_threads=fake.set,
    )
    g.start(0)
    return g, clock, fake


@pytest.mark.parametrize(
    "reading, current, expected",
    [
        (CoreReading(idle=0.9, own=1.0), 1, 2),  # the other core became free: take it
        (CoreReading(idle=0.0, own=1.3), 2, 1),  # another process took ~0.7 of a core: back to one
        (CoreReading(idle=0.0, own=1.0), 1, 1),  # one core busy elsewhere, one ours: stay
        (CoreReading(idle=0.1, own=0.2), 2, 1),  # everything busy elsewhere: never below one
        (CoreReading(idle=30.0, own=1.0), 1, 2),  # never above the cores this process may use
    ],
)
def test_the_governor_sets_the_free_cores(unpinned, reading, current, expected):
    g, clock, fake = governor(Readings(reading), current)
    clock.now = 31.0
    g.tick(5)
    assert fake.count == expected


def test_a_look_needs_both_the_steps_and_the_seconds(unpinned):
    readings = Readings(*[CoreReading(idle=1.0, own=1.0)] * 3)
    g, clock, fake = governor(readings, 1)
    clock.now = 100.0
    g.tick(4)  # long enough, too few steps
    clock.now = 0.0
    g, clock, fake = governor(readings, 1)
    clock.now = 10.0
    g.tick(50)  # many steps, too soon
    assert readings.calls == 0 and fake.count == 1
    clock.now = 30.0
    assert g.tick(50) == 2 and readings.calls == 1
    clock.now = 45.0
    g.tick(60)  # 15 s after the last look: not yet
    assert readings.calls == 1


def test_a_change_is_one_log_line_with_the_idle_cores(unpinned, caplog):
    g, clock, fake = governor(Readings(CoreReading(idle=0.9, own=1.0)), 1)
    clock.now = 31.0
    with caplog.at_level(logging.INFO, logger="text2sql"):
        g.tick(5)
    lines = [r.getMessage() for r in caplog.records if "CPU threads" in r.getMessage()]
    cores = len(threads.allowed_cpus())
    assert lines == [f"CPU threads 1 -> 2: 0.9 of {cores} cores idle, 1.0 busy with this process"]
    caplog.clear()
    g.tick(10)  # no change, no line
    assert not [r for r in caplog.records if "CPU threads" in r.getMessage()]


@pytest.mark.parametrize("how", ["setting", "environment"])
def test_a_pinned_count_never_changes(monkeypatch, how):
    readings = Readings(*[CoreReading(idle=2.0, own=0.0)] * 5)
    if how == "setting":
        monkeypatch.delenv(threads.ENV, raising=False)
        g, clock, fake = governor(readings, 1, setting=1)
    else:
        monkeypatch.setenv(threads.ENV, "1")
        g, clock, fake = governor(readings, 1)
    for step in range(1, 40):
        clock.now += 60
        g.tick(step)
    assert fake.count == 1 and readings.calls == 0 and g.pinned == 1


def test_the_meter_counts_this_process_busy():
    meter = CoreMeter()
    if meter.read() is None and threads._cpu_times(meter.cpus) is None:
        pytest.skip("no /proc/stat here")
    end = threads.time.monotonic() + 0.3
    while threads.time.monotonic() < end:  # one thread spinning: about one core of this process
        pass
    reading = meter.read()
    assert reading is not None and reading.own > 0.2


def test_the_meter_sees_other_processes_take_the_cores():
    meter = CoreMeter()
    if threads._cpu_times(meter.cpus) is None:
        pytest.skip("no /proc/stat here")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in meter.cpus]
    try:
        meter.read()
        threads.time.sleep(0.5)
        reading = meter.read()
    finally:
        for p in spinners:
            p.kill()
    assert reading is not None and reading.free < len(meter.cpus) - 0.5


def test_available_cores_stay_within_the_affinity():
    assert 1 <= threads.available_cores() <= len(threads.allowed_cpus())


class FakeMeter:
    """Stands in for CoreMeter: every reading says the whole machine is free."""

    def __init__(self):
        self.calls = 0

    def read(self):
        self.calls += 1
        return CoreReading(idle=float(threads.available_cores()), own=0.0)


@pytest.fixture
def machine_frees_up(monkeypatch, unpinned, restore_threads):
    """Looks due at every step, and a machine whose cores all come free."""
    if threads.available_cores() < 2:
        pytest.skip("one core: there is nothing to follow")
    meters = []

    def make():
        meters.append(FakeMeter())
        return meters[-1]

    monkeypatch.setattr(threads, "CoreMeter", make)
    monkeypatch.setattr(threads, "FOLLOW_STEPS", 1)
    monkeypatch.setattr(threads, "FORWARD_PASSES", 1)
    monkeypatch.setattr(threads, "FOLLOW_SECONDS", 0.0)
    monkeypatch.setattr(threads, "_measured", (threads.time.monotonic(), 1))  # the count chosen at start: one
    torch.set_num_threads(1)
    return meters


def test_training_follows_the_machine(machine_frees_up, tmp_path, caplog):
    from text2sql.config import load_config
    from text2sql.training.train import train

    cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            "data.max_samples.train=64",
            "data.max_samples.validation=8",
            "data.max_samples.test=8",
            "data.schema_format=tables",
            "training.max_steps=3",
            "training.per_device_train_batch_size=4",
            "training.save_strategy=no",
        ],
    )
    with caplog.at_level(logging.INFO, logger="text2sql"):
        train(cfg)
    assert machine_frees_up and sum(m.calls for m in machine_frees_up) >= 2  # a look after every step
    assert torch.get_num_threads() == threads.available_cores()
    assert any("CPU threads 1 -> " in r.getMessage() for r in caplog.records)


def test_training_with_pinned_threads_keeps_them(monkeypatch, tmp_path, restore_threads):
    from text2sql.config import load_config
    from text2sql.training.train import train

    monkeypatch.setattr(threads, "FOLLOW_STEPS", 1)
    monkeypatch.setattr(threads, "FOLLOW_SECONDS", 0.0)
    monkeypatch.setattr(threads, "CoreMeter", FakeMeter)
    cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            "model.threads=1",
            "data.max_samples.train=32",
            "data.max_samples.validation=8",
            "data.max_samples.test=8",
            "data.schema_format=tables",
            "training.max_steps=3",
            "training.per_device_train_batch_size=4",
            "training.save_strategy=no",
        ],
    )
    train(cfg)
    assert torch.get_num_threads() == 1


def test_generation_follows_the_machine_between_forward_passes(machine_frees_up, tiny_llama_path):
    from text2sql.inference.loading import load_for_inference

    im = load_for_inference(str(tiny_llama_path), threads=1)
    prompt = im.tokenizer("How many flights?")["input_ids"]
    with following(im.model, 0) as g:
        im.generator("hf").generate([prompt], 4)
    assert g.changes and torch.get_num_threads() == threads.available_cores()
    assert not im.model._forward_pre_hooks  # the hook is gone once the block ends


def test_evaluation_follows_the_machine(machine_frees_up, tiny_llama_path, tmp_path, caplog):
    from text2sql.evaluation.evaluate import evaluate

    with caplog.at_level(logging.INFO, logger="text2sql"):
        evaluate("bundled", tmp_path / "eval", model=str(tiny_llama_path), max_samples=4, max_new_tokens=4)
    assert torch.get_num_threads() == threads.available_cores()
    assert any("CPU threads 1 -> " in r.getMessage() for r in caplog.records)
