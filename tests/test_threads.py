"""CPU threads: one for small models by default, the cores available otherwise, and --threads wins."""

import pytest
import torch

from text2sql.threads import SMALL_MODEL_PARAMETERS, available_cores, choose_threads, use_threads


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread_for_small_models_and_the_cores_otherwise():
    assert choose_threads(0, 800_000) == 1
    assert choose_threads(0, SMALL_MODEL_PARAMETERS) == available_cores()
    assert choose_threads(0, None) == available_cores()
    assert choose_threads(3, 800_000) == 3  # an explicit setting wins


def test_use_threads_counts_the_model(restore_threads):
    small = torch.nn.Linear(10, 10)
    torch.set_num_threads(2)
    assert use_threads(0, small) == 1 and torch.get_num_threads() == 1
    assert use_threads(2, small) == 2 and torch.get_num_threads() == 2


def test_threads_flag_reaches_the_model(restore_threads, capsys, tiny_llama_path, tmp_path):
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
