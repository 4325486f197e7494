"""CPU threads: the cores idle when a model starts by default, never more than the process may use;
--threads and TEXT2SQL_THREADS win."""

import subprocess
import sys

import pytest
import torch

from text2sql import threads
from text2sql.threads import available_cores, choose_threads, idle_cores, use_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def measured(monkeypatch):
    """choose_threads with no explicit setting and no environment: it measures."""
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.setattr(threads, "_measured", None)


def test_an_explicit_setting_and_the_environment_win(monkeypatch):
    assert choose_threads(3) == 3
    monkeypatch.setenv(threads.ENV, "2")
    assert choose_threads(0) == 2


def test_the_default_is_the_idle_cores_never_fewer_than_one_nor_more_than_allowed(measured, monkeypatch):
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.25: 1.9)
    assert choose_threads(0) == min(2, available_cores())
    monkeypatch.setattr(threads, "_measured", None)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.25: 0.2)  # other work holds every core
    assert choose_threads(0) == 1
    monkeypatch.setattr(threads, "_measured", None)
    monkeypatch.setattr(threads, "idle_cores", lambda window=0.25: 64.0)
    assert choose_threads(0) == available_cores()


def test_idle_cores_sees_a_busy_core(measured):
    if idle_cores(0.05) is None:
        pytest.skip("no /proc/stat here")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(available_cores())]
    try:
        busy = idle_cores(0.5)
    finally:
        for p in spinners:
            p.kill()
    assert busy is not None and busy < available_cores() - 0.5  # spinning processes took the cores


def test_use_threads_sets_torch(restore_threads):
    torch.set_num_threads(1)
    assert use_threads(2) == 2 and torch.get_num_threads() == 2


def test_threads_flag_reaches_the_model(restore_threads, capsys, tiny_llama_path):
    from text2sql.cli import main

    torch.set_num_threads(1)
    code = main(
        [
            "predict",
            "--model",
            str(tiny_llama_path),
            "--db",
            "airline",
            "How many flights?",
            "--max-new-tokens",
            "2",
            "--threads",
            "2",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert torch.get_num_threads() == 2


def test_threads_are_a_config_key_that_does_not_change_what_a_run_is():
    from text2sql.config import load_config
    from text2sql.training.train import train_depends_on

    one, two = load_config(None, ["model.threads=1"]), load_config(None, ["model.threads=2"])
    assert train_depends_on(one, "fp", None) == train_depends_on(two, "fp", None)
