"""One answer, everywhere, to "is this name a hub id?" (model loading, data readers, validate, model cards)."""

from __future__ import annotations

import pytest

from text2sql.paths import is_hub_id


@pytest.mark.parametrize("name", ["HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2", "b-mc2/sql-create-context"])
def test_hub_ids(name):
    assert is_hub_id(name)


@pytest.mark.parametrize(
    "name",
    ["tiny:llama", "gs://bucket/model", "https://host/m", "/abs/path/model", "./model", "../model", "a/../b",
     "owner--name/x", "a/b/c", "", "bundled:followup"],
)  # fmt: skip
def test_not_hub_ids(name):
    assert not is_hub_id(name)


def test_an_existing_folder_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "owner" / "model").mkdir(parents=True)
    assert not is_hub_id("owner/model") and is_hub_id("owner/other")


def test_data_ids_need_an_owner_and_no_file_suffix():
    assert not is_hub_id("bundled", owner=True)
    assert not is_hub_id("data/train.csv", owner=True, file_suffixes=(".csv",))
    assert is_hub_id("b-mc2/sql-create-context", owner=True, file_suffixes=(".csv",))
