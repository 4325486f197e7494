"""Flat records: CSV and sql-create-context."""

from __future__ import annotations

from pathlib import Path

import pytest

from readers_support import CREATE_CONTEXT_ROWS, SINGER_DDL, make_db, read, write_csv, write_json, write_jsonl
from text2sql.data.readers import ReadOptions, ReadStats, detect_format, read_examples
from text2sql.data.schema import schema_text

# ---------------------------------------------------------------------------------------------- csv


def test_csv_seed_000_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "train.csv",
        ["input_text", "sql", "sql_complexity"],
        [
            ["Show all employees", "SELECT * FROM employees", "basic SQL"],
            ["", "SELECT 1", "basic SQL"],  # empty question: dropped, counted
            ["Count them", "  ", "aggregation"],  # empty SQL: dropped, counted
            ["Names, with a comma\nand a newline", "SELECT name FROM employees", ""],
        ],
    )
    stats = ReadStats()
    examples = read(path, stats)
    assert [(e.id, e.question, e.sql, e.complexity) for e in examples] == [
        ("train-0", "Show all employees", "SELECT * FROM employees", "basic SQL"),
        ("train-3", "Names, with a comma\nand a newline", "SELECT name FROM employees", None),
    ]
    assert all(e.schema == "" and e.db_path is None for e in examples)
    assert (stats.records, stats.kept, dict(stats.dropped)) == (4, 2, {"empty question": 1, "empty sql": 1})
    assert stats.summary() == (
        f"{path}: 4 rows read, 2 kept (2 without a database to execute on), 2 dropped (1 empty question, 1 empty sql)"
    )


def test_csv_custom_column_names(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ["q", "query", "level", "id"], [["How many?", "SELECT 1", "easy", "x7"]])
    [example] = read(path, question_column="q", sql_column="query", complexity_column="level")
    assert (example.question, example.sql, example.complexity, example.id) == ("How many?", "SELECT 1", "easy", "x7")


def test_csv_with_bom_and_db_id(tmp_path: Path) -> None:
    db = make_db(tmp_path / "dbs" / "music" / "music.sqlite", SINGER_DDL)
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffinput_text,sql,db_id\r\nHow many singers?,SELECT count(*) FROM singer,music\r\n".encode())
    [example] = read(path, db_dir=str(tmp_path / "dbs"))
    assert example.db_path == str(db)
    assert example.schema == schema_text(db)
    # Without data.db_dir the db_id is kept but the row is not executable.
    [example] = read(path)
    assert (example.db_id, example.db_path, example.schema) == ("music", None, "")


def test_csv_reasoning_target(tmp_path: Path) -> None:
    target = "Count every singer.\n```sql\nSELECT count(*) FROM singer\n```"
    path = write_csv(
        tmp_path / "r.csv", ["input_text", "sql"], [["How many?", target], ["Names?", "SELECT name FROM singer"]]
    )
    stats = ReadStats()
    [example] = read(path, stats, require_reasoning=True)
    assert (example.reasoning, example.sql) == ("Count every singer.", "SELECT count(*) FROM singer")
    assert stats.dropped == {"no reasoning": 1}


def test_csv_streams_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", ["input_text", "sql"], [[f"q{i}", f"SELECT {i}"] for i in range(1000)])
    stream = read_examples(path, ReadOptions())
    assert iter(stream) is stream and not isinstance(stream, list)
    assert next(stream).sql == "SELECT 0"
    assert stream.stats.records == 1  # only what has been consumed was read


# ----------------------------------------------------------------------------------- create_context


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_create_context(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sql_create_context{suffix}"
    write_json(path, CREATE_CONTEXT_ROWS) if suffix == ".json" else write_jsonl(path, CREATE_CONTEXT_ROWS)
    assert detect_format(str(path), ReadOptions()) == "create_context"
    first, second = read(path)
    assert (first.schema, first.sql) == ("CREATE TABLE head (age INTEGER);", CREATE_CONTEXT_ROWS[0]["answer"])
    assert second.schema == (
        "CREATE TABLE department (id VARCHAR, name VARCHAR);\nCREATE TABLE head (department_id VARCHAR, name VARCHAR);"
    )
    assert [e.id for e in (first, second)] == ["sql_create_context-0", "sql_create_context-1"]
