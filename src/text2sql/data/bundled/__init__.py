"""The bundled text-to-SQL dataset: SQLite databases of four domains and question/SQL pairs on them.

Everything here is produced by `python -m text2sql.data.bundled.generate` (see `generate.py`), which
rewrites the files byte-identically from a fixed seed. Layout, as in Spider:

    databases/<db_id>/<db_id>.sqlite
    train.jsonl, validation.jsonl, test.jsonl   one {"id", "db_id", "question", "sql",
                                                "sql_complexity"} object per line
    followup.jsonl                              conversations of follow-up questions: one turn per
                                                line, with "interaction_id", "turn" (from 1) and
                                                "history" ([[question, sql], ...] of the earlier turns)

This module only reads the files; it stays free of heavy imports so that anything may use it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent
SPLITS = ("train", "validation", "test")
# The split of follow-up conversations, for evaluation (`--data bundled:followup`); not one of SPLITS,
# whose text trains the tiny tokenizers.
FOLLOWUP = "followup"
ALL_SPLITS = (*SPLITS, FOLLOWUP)
# The `sql_complexity` labels, from least to most demanding (see `pairs.complexity`).
SQL_COMPLEXITIES = ("basic", "aggregation", "ordering", "join", "nested")


def database_dir() -> Path:
    """The folder of the databases, in Spider's layout: `<db_id>/<db_id>.sqlite`."""
    return BUNDLED_DIR / "databases"


def db_ids() -> list[str]:
    """The ids of the bundled databases, sorted."""
    return sorted(p.name for p in database_dir().iterdir() if (p / f"{p.name}.sqlite").is_file())


def db_path(db_id: str) -> Path:
    """The SQLite file of one database; KeyError for an id that is not bundled."""
    path = database_dir() / db_id / f"{db_id}.sqlite"
    if not path.is_file():
        raise KeyError(f"no bundled database {db_id!r}; bundled: {', '.join(db_ids())}")
    return path


def split_path(split: str) -> Path:
    """The JSONL file of one split; KeyError for a name not in ALL_SPLITS."""
    if split not in ALL_SPLITS:
        raise KeyError(f"no bundled split {split!r}; splits: {', '.join(ALL_SPLITS)}")
    return BUNDLED_DIR / f"{split}.jsonl"


def iter_rows(split: str) -> Iterator[dict]:
    """The parsed rows of one split, in file order."""
    with open(split_path(split), encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def corpus_texts() -> list[str]:
    """Texts to train a tiny tokenizer on: every question and SQL of every split, then each
    database's CREATE TABLE statements exactly as stored in sqlite_master."""
    texts: list[str] = []
    for split in SPLITS:
        for row in iter_rows(split):
            texts.append(row["question"])
            texts.append(row["sql"])
    for db_id in db_ids():
        uri = f"{db_path(db_id).as_uri()}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as conn:
            texts.extend(
                sql
                for (sql,) in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND sql IS NOT NULL"
                    " AND name NOT LIKE 'sqlite_%' ORDER BY rowid"
                )
            )
    return texts


__all__ = [
    "ALL_SPLITS",
    "BUNDLED_DIR",
    "FOLLOWUP",
    "SPLITS",
    "SQL_COMPLEXITIES",
    "corpus_texts",
    "database_dir",
    "db_ids",
    "db_path",
    "iter_rows",
    "split_path",
]
