"""Writing reader inputs for tests: files of every format, small SQLite databases, a Spider folder."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

from text2sql.data.readers import ReadOptions, ReadStats, read_examples


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_db(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


def read(source, stats: ReadStats | None = None, split: str | None = None, **options):
    return list(read_examples(source, ReadOptions(**options), split=split, stats=stats))


SINGER_DDL = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER);"


def spider_folder(root: Path, with_tables: bool = True, with_db: bool = True) -> Path:
    """A Spider-layout folder: dev.json over two databases, only `music` has a SQLite file."""
    root.mkdir(parents=True, exist_ok=True)
    write_json(
        root / "dev.json",
        [
            {
                "db_id": "music",
                "question": "How many singers?",
                "query": "SELECT count(*) FROM singer",
                "sql": {"select": []},
            },
            {"db_id": "shop", "question": "How many orders?", "query": 'SELECT count(*) FROM "order"'},
            {"db_id": "music", "question": "", "query": "SELECT 1"},
        ],
    )
    if with_tables:
        write_json(
            root / "tables.json",
            [
                {
                    "db_id": "shop",
                    "table_names_original": ["order"],
                    "column_names_original": [[-1, "*"], [0, "id"]],
                    "column_types": ["text", "number"],
                    "primary_keys": [1],
                    "foreign_keys": [],
                },
            ],
        )
    if with_db:
        make_db(root / "database" / "music" / "music.sqlite", SINGER_DDL + "INSERT INTO singer VALUES (1, 'a', 30);")
    return root


# sql-create-context records (b-mc2/sql-create-context), as a file or a dataset holds them.
CREATE_CONTEXT_ROWS = [
    {
        "question": "How many heads of the departments are older than 56 ?",
        "context": "CREATE TABLE head (age INTEGER)",
        "answer": "SELECT COUNT(*) FROM head WHERE age > 56",
    },
    {
        "question": "List the names of departments and their heads.",
        "context": "CREATE TABLE department (id VARCHAR, name VARCHAR); CREATE TABLE head (department_id VARCHAR, name VARCHAR)",
        "answer": "SELECT T1.name, T2.name FROM department AS T1 JOIN head AS T2 ON T1.id = T2.department_id",
    },
]
