"""Spider and BIRD: folders, tables.json, databases beside or under db_dir, and the real data."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from readers_support import SINGER_DDL, make_db, read, spider_folder, write_json
from text2sql.data.readers import ReadOptions, ReadStats, detect_format, read_examples
from text2sql.data.schema import schema_text
from text2sql.errors import DataError

# ----------------------------------------------------------------------------------- spider / bird


def test_spider_with_and_without_databases(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider")
    stats = ReadStats()
    music, shop = read(root / "dev.json", stats)
    db = root / "database" / "music" / "music.sqlite"
    assert (music.db_id, music.db_path, music.schema) == ("music", str(db), schema_text(db))
    assert (music.id, music.sql) == ("dev-0", "SELECT count(*) FROM singer")
    assert (shop.db_path, shop.schema) == (None, 'CREATE TABLE "order" (\n  id NUMBER PRIMARY KEY\n);')
    assert (stats.records, stats.kept, stats.without_database, dict(stats.dropped)) == (3, 2, 1, {"empty question": 1})
    # With the database executable, the gold SQL runs.
    assert sqlite3.connect(music.db_path).execute(music.sql).fetchone() == (1,)


def test_spider_folder_as_source_and_schema_options(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider")
    assert detect_format(str(root), ReadOptions()) == "spider"
    music, shop = read(root, schema_format="compact", schema_sample_rows=1)
    assert music.schema == "singer(singer_id PK, name, age)\n  -- (1, 'a', 30)"
    assert shop.schema == '"order"(id PK)'  # no database: no sample rows
    with pytest.raises(DataError, match=r"spider: no train_spider.json / train.json for the train split"):
        read(root, split="train")


def test_spider_databases_under_db_dir(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_db=False)
    make_db(tmp_path / "elsewhere" / "music" / "music.sqlite", SINGER_DDL)
    db = make_db(tmp_path / "elsewhere" / "shop" / "shop.sqlite", 'CREATE TABLE "order" (id INTEGER PRIMARY KEY);')
    music, shop = read(root / "dev.json", db_dir=str(tmp_path / "elsewhere"))
    assert shop.db_path == str(db)
    assert shop.schema == 'CREATE TABLE "order" (\n  id INTEGER PRIMARY KEY\n);'  # from SQLite, not tables.json


def test_spider_without_tables_json(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_tables=False, with_db=False)
    with pytest.raises(DataError) as info:
        read_examples(root / "dev.json", ReadOptions())  # checked before the first row is read
    message = str(info.value)
    assert "db_id 'music', 'shop': no database" in message
    assert f"no tables.json (expected at {root / 'tables.json'})" in message
    assert "\n" not in message


def test_spider_folder_with_only_dev_json(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_tables=False, with_db=False)
    assert detect_format(str(root), ReadOptions()) == "spider"
    with pytest.raises(DataError, match=r"no tables.json \(expected at .*spider/tables.json\)"):
        read_examples(root, ReadOptions())


def test_spider_db_id_in_neither(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_db=False)
    with pytest.raises(
        DataError,
        match=r"db_id 'music': no database \(no <db_id>/<db_id>.sqlite in .*spider/database, "
        r".*\) and no schema \(not in .*tables.json\); set data.db_dir",
    ):
        read(root / "dev.json")


def test_bird_evidence_difficulty_and_ids(tmp_path: Path) -> None:
    root = tmp_path / "bird"
    write_json(
        root.mkdir() or root / "mini_dev_sqlite.json",
        [
            {
                "question_id": 1471,
                "db_id": "cards",
                "question": "Ratio of EUR to CZK payers?",
                "evidence": "ratio = count(EUR) / count(CZK)",
                "SQL": "SELECT 1.0",
                "difficulty": "simple",
            },
            {
                "question_id": 1472,
                "db_id": "cards",
                "question": "How many?",
                "evidence": "",
                "SQL": "SELECT count(*) FROM customers",
                "difficulty": "challenging",
            },
        ],
    )
    write_json(
        root / "dev_tables.json",
        [
            {
                "db_id": "cards",
                "table_names_original": ["customers"],
                "column_names_original": [[-1, "*"], [0, "CustomerID"]],
                "column_types": ["text", "integer"],
                "primary_keys": [1],
                "foreign_keys": [],
            },
        ],
    )
    assert detect_format(str(root / "mini_dev_sqlite.json"), ReadOptions()) == "bird"
    assert detect_format(str(root), ReadOptions()) == "bird"
    first, second = read(root / "mini_dev_sqlite.json")
    assert (first.id, first.evidence, first.complexity, first.sql) == (
        "1471",
        "ratio = count(EUR) / count(CZK)",
        "simple",
        "SELECT 1.0",
    )
    assert (second.id, second.evidence, second.complexity, second.db_path) == ("1472", None, "challenging", None)
    assert first.schema == "CREATE TABLE customers (\n  CustomerID INTEGER PRIMARY KEY\n);"
    # With its database in dev_databases/ the row becomes executable.
    db = make_db(
        root / "dev_databases" / "cards" / "cards.sqlite", "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY);"
    )
    assert read(root)[0].db_path == str(db)


# ------------------------------------------------------------------------------------------ real data


def test_real_spider_dev(shared_datasets: Path) -> None:
    stats = ReadStats()
    examples = read(shared_datasets / "spider_en" / "dev.json", stats)
    assert len(examples) == 1034 and stats.records == 1034 and stats.total_dropped == 0
    assert stats.without_database == 1034  # the dev databases are not shipped
    assert all(e.db_path is None and e.schema.startswith("CREATE TABLE") for e in examples)
    first = examples[0]
    assert (first.id, first.db_id, first.question, first.sql) == (
        "dev-0",
        "concert_singer",
        "How many singers do we have?",
        "SELECT count(*) FROM singer",
    )
    assert "CREATE TABLE singer (\n  Singer_ID NUMBER PRIMARY KEY," in first.schema
    assert len({e.id for e in examples}) == 1034


def test_real_department_store_as_spider_folder(shared_datasets: Path, tmp_path: Path) -> None:
    source = shared_datasets / "spider_en" / "database" / "department_store"
    root = tmp_path / "spider"
    (root / "database" / "department_store").mkdir(parents=True)
    db = root / "database" / "department_store" / "department_store.sqlite"
    shutil.copy(source / "department_store.sqlite", db)
    lines = (source / "train_gold_department_store.sql").read_text().splitlines()
    rows = []
    for i, line in enumerate(text for text in lines if text.strip()):
        sql, db_id = line.rsplit("\t", 1)
        rows.append({"db_id": db_id, "question": f"question {i}", "query": sql})
    write_json(root / "dev.json", rows)
    stats = ReadStats()
    examples = read(root, stats)  # the folder: dev.json, no tables.json needed since the database exists
    assert len(examples) == 88 and stats.without_database == 0
    expected_schema = schema_text(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for example in examples:
        assert example.db_path == str(db) and example.schema == expected_schema
        conn.execute(example.sql).fetchall()  # every gold query runs on the database it points at


def test_real_bird_mini_dev(shared_datasets: Path) -> None:
    stats = ReadStats()
    examples = read(shared_datasets / "bird_minidev" / "mini_dev_sqlite.json", stats)
    assert len(examples) == 500 and stats.without_database == 500
    assert {e.complexity for e in examples} == {"simple", "moderate", "challenging"}
    assert sum(e.evidence is not None for e in examples) > 450
    first = examples[0]
    assert (first.id, first.db_id, first.complexity) == ("1471", "debit_card_specializing", "simple")
    assert first.evidence.startswith("ratio of customers who pay in EUR")
    assert first.schema.startswith("CREATE TABLE customers (")
