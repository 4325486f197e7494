"""`text2sql db copy`: SQLite into PostgreSQL (a real server) and DuckDB, with types from the values,
keys where the rows keep them, and nothing replaced without --force."""

from __future__ import annotations

import sqlite3

import pytest

from cli_support import assert_one_line_error, run_cli
from text2sql.data.schema import read_schema
from text2sql.errors import OutputExistsError
from text2sql.sql.copy import copy_database
from text2sql.sql.execution import execute_sql
from text2sql.sql.targets import dialect_of, postgres_parts


@pytest.fixture
def messy(tmp_path):
    """What real SQLite files hold: numbers in text columns, mixed values, a primary key with
    a NULL, a foreign key to a column that is no key, text that is not UTF-8."""
    path = tmp_path / "messy.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE Parent (id INTEGER PRIMARY KEY, label VARCHAR(10))")
        conn.execute(
            "CREATE TABLE child (cid TEXT PRIMARY KEY, parent_id INT REFERENCES Parent(id), "
            "code TEXT REFERENCES Parent(label), mixed NUMERIC, price DECIMAL(10,2), blob_col BLOB, empty_col INT)"
        )
        conn.executemany("INSERT INTO Parent VALUES (?, ?)", [(1, "a"), (2, "b")])
        conn.executemany(
            "INSERT INTO child VALUES (?, ?, ?, ?, ?, ?, NULL)",
            [("c1", 1, "a", 5, 1.5, b"\x00\x01"), (None, 2, "b", "five", 2, None), ("c3", 9, "c", 7.25, 3, None)],
        )
        conn.execute("INSERT INTO Parent VALUES (3, CAST(X'43616665E9' AS TEXT))")  # 'Café' in Latin-1
    conn.close()
    return path


def _target(engine, tmp_path, request, name):
    if engine == "duckdb":
        return str(tmp_path / f"{name}.duckdb")
    return request.getfixturevalue("postgres_server").url("postgres", schema=name)


def _readable(target, request):
    """`target` as a role that may only read reaches it: DuckDB files as they are, a PostgreSQL schema
    through the `reader` role (the copy writes as a role that may create tables)."""
    if dialect_of(target) == "duckdb":
        return target
    return request.getfixturevalue("postgres_server").grant_reader("postgres", postgres_parts(target)[1])


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_types_keys_and_notes(engine, messy, tmp_path, request):
    target = _target(engine, tmp_path, request, "messy_copy")
    report = copy_database(messy, target, force=True, show_progress=False)
    child = next(t for t in report.tables if t.name.lower() == "child")
    assert child.columns == {
        "cid": "text",
        "parent_id": "integer",
        "code": "text",
        "mixed": "text",  # 5, 'five' and 7.25
        "price": "real",  # 1.5, 2, 3
        "blob_col": "blob",
        "empty_col": "integer",  # no values: its declared type
    }
    assert child.primary_key == []  # a NULL cid: SQLite allows it in a primary key, the others do not
    assert [fk.ref_table.lower() for fk in child.foreign_keys] == (["parent"] if engine == "postgres" else [])
    notes = " | ".join(report.notes)
    assert "mixed: holds integer and real and text values; copied as text" in notes
    assert "rows repeat or leave out its primary key" in notes
    assert "does not point at a primary key" in notes  # code -> Parent(label)
    assert "Parent.label: 1 value(s) not valid UTF-8; copied with U+FFFD" in notes
    if engine == "duckdb":  # parent_id 9 has no parent: DuckDB would refuse the rows
        assert "some rows point at no row" in notes
    assert report.rows == 6
    readable = _readable(target, request)
    rows = execute_sql(readable, "SELECT mixed, price FROM child ORDER BY price").rows
    assert rows == [("5", 1.5), ("five", 2.0), ("7.25", 3.0)]
    cafe = execute_sql(readable, "SELECT label FROM parent WHERE id = 3").rows[0][0]
    assert cafe == "Cafe\ufffd"  # the byte that is not UTF-8, replaced and noted
    schema = read_schema(readable)
    # PostgreSQL lists tables as created (parents first); a DuckDB file lists them by name once reopened.
    assert [t.name for t in schema.tables] == (["parent", "child"] if engine == "postgres" else ["child", "Parent"])


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_existing_tables_are_kept_without_force(engine, messy, tmp_path, request, capsys):
    target = _target(engine, tmp_path, request, "kept_copy")
    copy_database(messy, target, force=True, show_progress=False)
    with sqlite3.connect(messy) as conn:
        conn.execute("DELETE FROM child")
    conn.close()
    with pytest.raises(OutputExistsError, match="already has table"):
        copy_database(messy, target, show_progress=False)
    assert execute_sql(_readable(target, request), "SELECT COUNT(*) FROM child").rows == [(3,)]  # unchanged
    code, _, err = run_cli(capsys, "db", "copy", str(messy), target)
    assert_one_line_error(code, err, "already has table", "--force")
    code, _, err = run_cli(capsys, "db", "copy", str(messy), target, "--force")
    assert code == 0 and "messy" in err
    assert execute_sql(_readable(target, request), "SELECT COUNT(*) FROM child").rows == [(0,)]


def test_a_folder_needs_a_pattern_and_copies_each_database(tmp_path, capsys):
    code, _, err = run_cli(capsys, "db", "copy", "bundled", str(tmp_path / "one.duckdb"))
    assert_one_line_error(code, err, "put {db_id} in DEST")
    code, _, err = run_cli(capsys, "db", "copy", "bundled", str(tmp_path / "{db_id}.duckdb"))
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.glob("*.duckdb")) == [
        "airline.duckdb",
        "clinic.duckdb",
        "retail.duckdb",
        "university.duckdb",
    ]
    assert "copied 4 database(s)" in err
    code, _, err = run_cli(capsys, "db", "copy", str(tmp_path / "nothing.sqlite"), str(tmp_path / "x.duckdb"))
    assert_one_line_error(code, err, "no such file or folder")
    assert not (tmp_path / "x.duckdb").exists()
