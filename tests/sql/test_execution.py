"""Untrusted SQL runs read-only, stops on time, and reports every failure as data."""

from __future__ import annotations

import hashlib
import sqlite3
import threading

import pytest

from text2sql.sql.execution import (
    FORBIDDEN,
    NO_DATABASE,
    RUNTIME,
    SCHEMA,
    SYNTAX,
    TIMEOUT,
    ExecutionResult,
    execute_many,
    execute_sql,
)
from text2sql.sql.sqlite import SQLiteDatabase

INFINITE_CTE = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT, salary REAL, dept_id INTEGER);
        CREATE TABLE departments (id INTEGER PRIMARY KEY, name TEXT);
        INSERT INTO departments VALUES (1, 'Sales'), (2, 'R&D');
        INSERT INTO employees VALUES
            (1, 'Ann', 60000, 1), (2, 'Bob', 45000, 1), (3, 'Cy', 70000, 2), (4, 'Di', NULL, 2);
        """
    )
    conn.commit()
    conn.close()
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_select_returns_columns_and_rows(db):
    result = execute_sql(db, "SELECT name, salary FROM employees WHERE salary > 50000 ORDER BY id;")
    assert result.ok and result.error is None and result.category is None
    assert result.columns == ["name", "salary"]
    assert result.rows == [("Ann", 60000.0), ("Cy", 70000.0)]
    assert not result.truncated
    assert result.elapsed >= 0


def test_trailing_semicolons_and_comment_are_one_statement(db):
    assert execute_sql(db, "SELECT COUNT(*) FROM employees;;").rows == [(4,)]
    assert execute_sql(db, "SELECT COUNT(*) FROM employees; -- done").rows == [(4,)]


def test_semicolon_inside_literal_is_not_a_second_statement(db):
    assert execute_sql(db, "SELECT 'a;b'").rows == [("a;b",)]


@pytest.mark.parametrize(
    "sql",
    [
        "DROP TABLE employees",
        "DELETE FROM employees",
        "INSERT INTO employees VALUES (9, 'Eve', 1, 1)",
        "UPDATE employees SET salary = 0",
        "CREATE TABLE evil (x)",
        "CREATE TEMP TABLE evil (x)",
        "CREATE VIEW evil AS SELECT 1",
        "ALTER TABLE employees ADD COLUMN x",
        "ATTACH DATABASE '{tmp}/attached.sqlite' AS other",
        "PRAGMA writable_schema=1",
        "PRAGMA query_only=OFF",
        "SELECT load_extension('x')",
        "VACUUM INTO '{tmp}/copy.sqlite'",
        "VACUUM",
        "BEGIN IMMEDIATE",
        "REINDEX",
        "SELECT 1; DROP TABLE employees",
        "SELECT 1; SELECT 2",
        "WITH x AS (SELECT 1) DELETE FROM employees",
    ],
)
def test_untrusted_sql_cannot_change_anything(db, tmp_path, sql):
    before = _digest(db)
    files_before = sorted(p.name for p in tmp_path.iterdir())

    result = execute_sql(db, sql.format(tmp=tmp_path))

    assert not result.ok
    assert result.category == FORBIDDEN, result.error
    assert result.rows == []
    assert _digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == files_before
    # The database still answers normally afterwards.
    assert execute_sql(db, "SELECT COUNT(*) FROM employees").rows == [(4,)]


@pytest.mark.parametrize(
    "sql",
    [
        # Rows keep coming; with no practical row cap only the deadline stops the fetch.
        INFINITE_CTE,
        # COUNT(*) over an infinite CTE never yields a row, so only the deadline can stop it.
        INFINITE_CTE.replace("SELECT x FROM c", "SELECT COUNT(*) FROM c"),
    ],
)
def test_runaway_recursive_query_is_stopped_near_the_timeout(db, sql):
    result = execute_sql(db, sql, timeout=1.0, max_rows=10**9)
    assert result.category == TIMEOUT
    assert result.rows == []
    assert result.elapsed >= 0.9  # it ran until the deadline; how soon after it stopped is a benchmark's question


def test_infinite_result_is_truncated_at_max_rows(db):
    result = execute_sql(db, INFINITE_CTE, timeout=1.0, max_rows=500)
    assert result.ok
    assert result.truncated
    assert len(result.rows) == 500
    assert result.rows[-1] == (500,)


def test_result_at_exactly_max_rows_is_not_truncated(db):
    result = execute_sql(db, "SELECT id FROM employees", max_rows=4)
    assert len(result.rows) == 4 and not result.truncated


@pytest.mark.parametrize(
    ("sql", "category"),
    [
        ("SELEC name FROM employees", SYNTAX),
        ("SELECT name FROM employees WHERE", SYNTAX),
        ("SELECT 'unterminated", SYNTAX),
        ("", SYNTAX),
        ("  ;  ", SYNTAX),
        ("-- only a comment", SYNTAX),
        ("SELECT * FROM nowhere", SCHEMA),
        ("SELECT bonus FROM employees", SCHEMA),
        ("SELECT name FROM employees JOIN departments ON dept_id = departments.id", SCHEMA),
        ("SELECT no_such_function(1)", RUNTIME),
        ("SELECT abs(-9223372036854775808)", RUNTIME),
        ("SELECT zeroblob(2000000000)", RUNTIME),
        ("SELECT 1 \x00", RUNTIME),
    ],
)
def test_errors_are_categorised_not_raised(db, sql, category):
    result = execute_sql(db, sql)
    assert isinstance(result, ExecutionResult)
    assert not result.ok
    assert result.category == category, result.error
    assert result.error


def test_missing_database_is_a_result(tmp_path):
    result = execute_sql(tmp_path / "absent.sqlite", "SELECT 1")
    assert result.category == NO_DATABASE
    assert not (tmp_path / "absent.sqlite").exists()


def test_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("just text, not a database " * 100)
    assert execute_sql(path, "SELECT 1 FROM sqlite_master").category == NO_DATABASE


def test_path_with_uri_special_characters(tmp_path):
    path = tmp_path / "odd ?name#%.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.execute("INSERT INTO t VALUES (7)")
    conn.commit()
    conn.close()
    assert execute_sql(path, "SELECT x FROM t").rows == [(7,)]


def test_invalid_utf8_text_is_decoded_not_an_error(tmp_path):
    path = tmp_path / "latin.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("INSERT INTO t VALUES (CAST(X'43616665E9' AS TEXT))")  # 'Café' in Latin-1
    conn.commit()
    conn.close()
    result = execute_sql(path, "SELECT x FROM t")
    assert result.ok
    assert result.rows[0][0].startswith("Caf")


def test_read_only_database_reuses_one_connection(db):
    with SQLiteDatabase(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM departments").rows == [(2,)]
        assert conn.execute("DROP TABLE departments").category == FORBIDDEN
        assert conn.execute(INFINITE_CTE, timeout=0.2, max_rows=10**9).category == TIMEOUT
        # A timed-out query leaves the connection usable.
        assert conn.execute("SELECT name FROM departments ORDER BY id").rows == [("Sales",), ("R&D",)]


def test_read_only_database_rejects_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        SQLiteDatabase(tmp_path / "absent.sqlite")


def test_execute_many(db, tmp_path):
    results = execute_many(db, ["SELECT 1", "SELECT * FROM nowhere", "DELETE FROM employees"])
    assert [r.category for r in results] == [None, SCHEMA, FORBIDDEN]
    missing = execute_many(tmp_path / "absent.sqlite", ["SELECT 1", "SELECT 2"])
    assert [r.category for r in missing] == [NO_DATABASE, NO_DATABASE]


def test_concurrent_calls_from_threads(db):
    results: list[ExecutionResult] = []

    def work():
        for _ in range(50):
            results.append(execute_sql(db, "SELECT COUNT(*) FROM employees"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 200
    assert all(r.rows == [(4,)] for r in results)
