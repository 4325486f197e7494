"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from pg_support import postgres_server  # noqa: F401  (a real PostgreSQL server, started on first use)
from repo import SHARED_DATASETS
from s3_support import bucket, locked_endpoint, moto_endpoint  # noqa: F401  (fixtures for every test)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The shared real-data folder; tests using it skip when a checkout does not have it."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not present at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Torch on one thread for every test: the models are tiny, and on a shared 2-core machine two
    spinning OpenMP threads per process made training steps 10-40x slower (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def _hermetic_env(tmp_path_factory):
    """Tiny models cache into a per-session folder; nothing reaches for the hub."""
    import os

    cache = tmp_path_factory.mktemp("text2sql-cache")
    keys = ("TEXT2SQL_CACHE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TEXT2SQL_THREADS")
    old = {k: os.environ.get(k) for k in keys}
    # One torch thread wherever text2sql picks the count itself (see _one_torch_thread).
    os.environ.update(
        {"TEXT2SQL_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TEXT2SQL_THREADS": "1"}
    )
    yield cache
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def tiny_llama_path() -> Path:
    from text2sql.models.tiny import tiny_model_path

    return tiny_model_path("tiny:llama")


@pytest.fixture(scope="session")
def tiny_t5_path() -> Path:
    from text2sql.models.tiny import tiny_model_path

    return tiny_model_path("tiny:t5")
