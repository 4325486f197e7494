"""Values from PostgreSQL and DuckDB compare equal to the same values as SQLite stores them
(numbers, ISO text, 0/1), so that execution accuracy means the same on every engine."""

from __future__ import annotations

import sqlite3

import pytest

from text2sql.sql.equivalence import results_match
from text2sql.sql.execution import execute_sql

# What SQLite returns for the row below: numbers, text in ISO form, booleans as 0/1.
AS_SQLITE = [(1.5, 2, "2024-03-01", "2024-03-01 12:30:00", "12:30:00", "0b1a5c5e-2f1d-4c9b-9a5e-6f0b8f3e1a2b", 1)]
SELECT = "SELECT amount, whole, day, stamp, clock, ident, flag FROM typed"


@pytest.fixture
def sqlite_typed(tmp_path):
    path = tmp_path / "typed.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE typed (amount REAL, whole INT, day TEXT, stamp TEXT, clock TEXT, ident TEXT, flag INT)"
        )
        conn.execute("INSERT INTO typed VALUES (?, ?, ?, ?, ?, ?, ?)", AS_SQLITE[0])
    conn.close()
    return path


def test_postgres_types_compare_as_sqlite_values(postgres_server, sqlite_typed):
    with postgres_server.admin() as conn:
        conn.execute("DROP SCHEMA IF EXISTS typed CASCADE")
        conn.execute("CREATE SCHEMA typed")
        conn.execute(
            "CREATE TABLE typed.typed (amount numeric(10, 2), whole numeric, day date, stamp timestamp, clock time, "
            "ident uuid, flag boolean, span interval, tags int[], doc jsonb)"
        )
        conn.execute(
            "INSERT INTO typed.typed VALUES (1.50, 2.000, '2024-03-01', '2024-03-01 12:30', '12:30', "
            "'0b1a5c5e-2f1d-4c9b-9a5e-6f0b8f3e1a2b', true, '90 seconds', '{1,2}', '{\"b\": 1, \"a\": [1, 2]}')"
        )
    url = postgres_server.grant_reader("postgres", "typed")
    pg = execute_sql(url, SELECT)
    assert pg.ok, pg.error
    assert results_match(execute_sql(sqlite_typed, SELECT), pg, order_matters=True)
    assert not results_match([(1.5, 3, *AS_SQLITE[0][2:])], pg, order_matters=True)
    extra = execute_sql(url, "SELECT span, tags, doc FROM typed")
    assert results_match([(90, (1, 2), (("a", (1, 2)), ("b", 1)))], extra, order_matters=True)


def test_duckdb_types_compare_as_sqlite_values(tmp_path, sqlite_typed):
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "typed.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE typed (amount DECIMAL(10, 2), whole HUGEINT, day DATE, stamp TIMESTAMP, clock TIME, "
            "ident UUID, flag BOOLEAN, tags INTEGER[], point STRUCT(x INTEGER, y DOUBLE))"
        )
        conn.execute(
            "INSERT INTO typed VALUES (1.50, 2, '2024-03-01', '2024-03-01 12:30', '12:30', "
            "'0b1a5c5e-2f1d-4c9b-9a5e-6f0b8f3e1a2b', true, [1, 2], {'x': 1, 'y': 2.5})"
        )
    result = execute_sql(path, SELECT)
    assert result.ok, result.error
    assert results_match(execute_sql(sqlite_typed, SELECT), result, order_matters=True)
    nested = execute_sql(path, "SELECT tags, point FROM typed")
    assert results_match([((1, 2), (("x", 1), ("y", 2.5)))], nested, order_matters=True)
