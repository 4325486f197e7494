"""The bundled dataset through the reader."""

from __future__ import annotations

import sqlite3
import types
from pathlib import Path

import pytest

from readers_support import SINGER_DDL, make_db, read, write_jsonl
from text2sql.data.readers import ReadOptions, ReadStats, detect_format
from text2sql.data.schema import schema_text
from text2sql.errors import DataError

# ------------------------------------------------------------------------------------------- bundled


@pytest.fixture
def fake_bundled(tmp_path: Path, monkeypatch):
    """A stand-in for text2sql.data.bundled with the same API and layout."""
    from text2sql.data.readers import bundled as reader

    databases = tmp_path / "bundled" / "databases"
    db = make_db(databases / "music" / "music.sqlite", SINGER_DDL)
    splits = {}
    for split in ("train", "validation", "test"):
        splits[split] = write_jsonl(
            tmp_path / "bundled" / f"{split}.jsonl",
            [
                {
                    "id": f"{split}-music-0",
                    "db_id": "music",
                    "question": "How many singers?",
                    "sql": "SELECT count(*) FROM singer",
                    "sql_complexity": "aggregation",
                },
            ],
        )
    module = types.ModuleType("text2sql.data.bundled")
    module.SPLITS = ("train", "validation", "test")
    module.ALL_SPLITS = module.SPLITS
    module.database_dir = lambda: databases
    module.db_ids = lambda: ["music"]
    module.db_path = lambda db_id: databases / db_id / f"{db_id}.sqlite"
    module.split_path = lambda split: splits[split]
    monkeypatch.setattr(reader, "bundled", module)
    return db


def test_bundled_reader(fake_bundled: Path) -> None:
    assert detect_format("bundled", ReadOptions()) == "bundled"
    [example] = read("bundled", split="validation")
    assert (example.id, example.db_path, example.complexity) == ("validation-music-0", str(fake_bundled), "aggregation")
    assert example.schema == schema_text(fake_bundled)
    assert read("bundled")[0].id == "train-music-0"  # no split: train
    with pytest.raises(DataError, match=r"bundled: no split 'eval'; use one of: train, validation, test"):
        read("bundled", split="eval")


def test_real_bundled_dataset() -> None:
    bundled = pytest.importorskip("text2sql.data.bundled")
    if not hasattr(bundled, "split_path"):
        pytest.skip("text2sql.data.bundled is not written yet")
    stats = ReadStats()
    examples = read("bundled", stats, split="train")
    assert examples and stats.without_database == 0 and stats.total_dropped == 0
    for example in examples:
        assert example.db_path and example.schema.startswith("CREATE TABLE")
        sqlite3.connect(f"file:{example.db_path}?mode=ro", uri=True).execute(example.sql).fetchall()
