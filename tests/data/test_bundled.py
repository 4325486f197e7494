"""The bundled databases and text-to-SQL pairs: shape, executability, split hygiene, determinism."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from text2sql.data import bundled
from text2sql.data.bundled.generate import generate

KEYS = {"id", "db_id", "question", "sql", "sql_complexity"}


def connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict]]:
    return {split: list(bundled.iter_rows(split)) for split in bundled.SPLITS}


def test_databases_are_realistic_and_small():
    assert len(bundled.db_ids()) >= 4
    for db_id in bundled.db_ids():
        path = bundled.db_path(db_id)
        assert path == bundled.database_dir() / db_id / f"{db_id}.sqlite"
        assert path.stat().st_size < 200_000
        with closing(connect(path)) as conn:
            tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert len(tables) >= 3, db_id
            foreign_keys = [fk for t in tables for fk in conn.execute(f"PRAGMA foreign_key_list({t})")]
            assert len(foreign_keys) >= 2, db_id
            for table in tables:
                assert any(col[5] for col in conn.execute(f"PRAGMA table_info({table})")), (db_id, table)
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            total = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables)
            assert 200 <= total <= 800, (db_id, total)


def test_pairs_are_many_well_formed_and_spread(rows):
    every = [row for split_rows in rows.values() for row in split_rows]
    assert len(every) >= 3000
    assert all(set(row) == KEYS for row in every)
    assert {row["db_id"] for row in every} == set(bundled.db_ids())
    assert len({row["id"] for row in every}) == len(every)
    labels = Counter(row["sql_complexity"] for row in every)
    assert set(labels) == set(bundled.SQL_COMPLEXITIES)
    assert min(labels.values()) >= 0.1 * len(every), labels
    for row in every:
        sql = row["sql"]
        assert not sql.endswith(";") and "  " not in sql and sql == sql.strip(), sql
        assert 4 <= len(row["question"].split()) <= 22, row["question"]
    assert len(rows["train"]) > 0.75 * len(every)
    assert min(len(rows["validation"]), len(rows["test"])) > 0.08 * len(every)


def test_every_gold_sql_returns_rows(rows):
    connections = {db_id: connect(bundled.db_path(db_id)) for db_id in bundled.db_ids()}
    try:
        for split, split_rows in rows.items():
            for row in split_rows:
                result = connections[row["db_id"]].execute(row["sql"]).fetchall()
                assert result, (split, row["id"], row["sql"])
    finally:
        for conn in connections.values():
            conn.close()


def test_evaluation_pairs_are_unseen_in_training(rows):
    every = [(row["question"], row["sql"]) for split_rows in rows.values() for row in split_rows]
    assert len(set(every)) == len(every)
    train_questions = {row["question"] for row in rows["train"]}
    train_sql = {row["sql"] for row in rows["train"]}
    for split in ("validation", "test"):
        assert not {row["question"] for row in rows[split]} & train_questions
        # Values differ too: an evaluation query is never one that training shows in other words.
        assert not {row["sql"] for row in rows[split]} & train_sql
    assert not {row["question"] for row in rows["validation"]} & {row["question"] for row in rows["test"]}


def test_generator_reproduces_the_shipped_files(tmp_path):
    for run in ("first", "second"):
        generate(tmp_path / run, seed=0)
        for split in bundled.SPLITS:
            shipped = bundled.split_path(split).read_bytes()
            assert (tmp_path / run / f"{split}.jsonl").read_bytes() == shipped, (run, split)
        for db_id in bundled.db_ids():
            regenerated = tmp_path / run / "databases" / db_id / f"{db_id}.sqlite"
            with closing(connect(regenerated)) as new, closing(connect(bundled.db_path(db_id))) as old:
                assert list(new.iterdump()) == list(old.iterdump()), (run, db_id)


def test_api_lookups_and_tokenizer_corpus(rows):
    with pytest.raises(KeyError):
        bundled.db_path("no_such_db")
    with pytest.raises(KeyError):
        bundled.split_path("dev")
    assert bundled.split_path("test") == bundled.BUNDLED_DIR / "test.jsonl"
    texts = bundled.corpus_texts()
    n_pairs = sum(len(split_rows) for split_rows in rows.values())
    schema = [t for t in texts if t.startswith("CREATE TABLE")]
    assert len(texts) == 2 * n_pairs + len(schema)
    assert len(schema) >= 3 * len(bundled.db_ids())
    assert rows["test"][0]["question"] in texts


def test_reading_the_dataset_stays_light():
    code = (
        "import sys, text2sql.data.bundled as b; b.corpus_texts();"
        " print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
