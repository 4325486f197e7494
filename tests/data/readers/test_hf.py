"""Hugging Face datasets: save_to_disk folders, parquet and arrow files, hub ids."""

from __future__ import annotations

from pathlib import Path

import pytest

from readers_support import CREATE_CONTEXT_ROWS, SINGER_DDL, make_db, read
from text2sql.data.readers import ReadOptions, detect_format, read_examples
from text2sql.data.schema import schema_text
from text2sql.errors import DataError

# ------------------------------------------------------------------------------------------------ hf


def test_save_to_disk_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {
        "question": [r["question"] for r in CREATE_CONTEXT_ROWS],
        "context": [r["context"] for r in CREATE_CONTEXT_ROWS],
        "answer": [r["answer"] for r in CREATE_CONTEXT_ROWS],
    }
    folder = tmp_path / "saved"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows),
            "validation": datasets.Dataset.from_dict({k: v[:1] for k, v in rows.items()}),
        }
    ).save_to_disk(str(folder))
    assert detect_format(str(folder), ReadOptions()) == "hf"
    train = read(folder, split="train")
    assert [e.id for e in train] == ["saved-train-0", "saved-train-1"]
    assert train[1].schema.count("CREATE TABLE") == 2
    assert len(read(folder, split="dev")) == 1  # 'dev' finds the 'validation' split
    assert len(read(folder, split="train", hf_split="validation")) == 1  # data.hf_split wins
    with pytest.raises(DataError, match=r"saved: holds splits train, validation; set data.hf_split"):
        read(folder)
    with pytest.raises(DataError, match=r"saved: no split 'test' \(splits: train, validation\)"):
        read(folder, split="test")


def test_save_to_disk_dataset_chat_rows(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    messages = [
        [
            {"role": "user", "content": "How many singers?"},
            {"role": "assistant", "content": "SELECT count(*) FROM singer"},
        ]
    ]
    datasets.Dataset.from_dict({"messages": messages}).save_to_disk(str(tmp_path / "chat_ds"))
    [example] = read(tmp_path / "chat_ds")
    assert (example.question, example.sql, example.id) == (
        "How many singers?",
        "SELECT count(*) FROM singer",
        "chat_ds-0",
    )


def test_parquet_and_arrow(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict(
        {"input_text": ["How many?", "Names?"], "sql": ["SELECT 1", "SELECT name FROM t"]}
    )
    dataset.to_parquet(str(tmp_path / "rows.parquet"))
    assert detect_format(str(tmp_path / "rows.parquet"), ReadOptions()) == "hf"
    examples = read(tmp_path / "rows.parquet")
    assert [(e.id, e.question, e.sql) for e in examples] == [
        ("rows-0", "How many?", "SELECT 1"),
        ("rows-1", "Names?", "SELECT name FROM t"),
    ]
    dataset.save_to_disk(str(tmp_path / "arrow_ds"))
    arrow_file = next((tmp_path / "arrow_ds").glob("*.arrow"))
    assert [e.sql for e in read(arrow_file)] == ["SELECT 1", "SELECT name FROM t"]


def test_hf_spider_rows_use_db_dir(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    db = make_db(tmp_path / "dbs" / "music" / "music.sqlite", SINGER_DDL)
    table = pa.table({"db_id": ["music"], "question": ["How many singers?"], "query": ["SELECT count(*) FROM singer"]})
    pq.write_table(table, tmp_path / "spider_rows.parquet")
    [example] = read(tmp_path / "spider_rows.parquet", db_dir=str(tmp_path / "dbs"))
    assert (example.db_path, example.schema) == (str(db), schema_text(db))
    with pytest.raises(DataError, match=r"db_id 'music': no database \(data.db_dir is unset\)"):
        read(tmp_path / "spider_rows.parquet")


def test_hub_id_errors_are_one_line(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'owner/name' on the Hub\n(long traceback text)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    assert detect_format("owner/name", ReadOptions()) == "hf"
    with pytest.raises(
        DataError,
        match=r"^owner/name: cannot load from the Hugging Face hub \(ConnectionError: "
        r"Couldn't reach 'owner/name' on the Hub\); check the id",
    ) as info:
        read_examples("owner/name", ReadOptions(), split="train")
    assert "\n" not in str(info.value)


def test_hub_id_maps_rows_like_files(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_list(CREATE_CONTEXT_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    examples = read("b-mc2/sql-create-context", split="train", hf_config="default")
    assert calls == [("b-mc2/sql-create-context", "default", "train")]
    assert [e.id for e in examples] == ["sql-create-context-train-0", "sql-create-context-train-1"]
    assert examples[0].schema == "CREATE TABLE head (age INTEGER);"
