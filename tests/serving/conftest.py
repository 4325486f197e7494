"""Fixtures of the serving tests."""

import shutil

import pytest

from text2sql.config import load_config, save_config


@pytest.fixture(scope="module")
def merged_model(tmp_path_factory, tiny_llama_path):
    """A tiny model folder with a run config beside it: what `text2sql merge` leaves behind."""
    folder = tmp_path_factory.mktemp("run") / "merged"
    shutil.copytree(tiny_llama_path, folder)
    save_config(load_config(None, ["serving.max_tokens=8", "serving.batch_wait_ms=50"]), folder)
    return folder
