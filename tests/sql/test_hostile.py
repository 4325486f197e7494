"""Hostile SQL cannot take unbounded memory or time: values are capped inside SQLite before they reach
Python, a result's bytes are counted row by row, and a watchdog stops a long single function call."""

import hashlib
import sqlite3
import tracemalloc

import pytest

from text2sql.sql import sqlite as sqlite_engine
from text2sql.sql.execution import MAX_VALUE_BYTES, RUNTIME, TIMEOUT, execute_sql

MB = 2**20


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "t.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _peak_mb(sql: str, db, **kwargs):
    """(result, peak Python memory in MB while running `sql`)."""
    tracemalloc.start()
    try:
        result = execute_sql(db, sql, **kwargs)
        return result, tracemalloc.get_traced_memory()[1] / MB
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT zeroblob(20000000) FROM t",
        "SELECT randomblob(20000000) FROM t",
        "SELECT printf('%.*c', 20000000, 'x') FROM t",
        "SELECT sum(length(randomblob(50000000))) FROM (SELECT 1 FROM t LIMIT 120)",
        "SELECT group_concat(printf('%.*c', 500000, 'x')) FROM t",
    ],
)
def test_a_huge_value_is_refused_inside_sqlite(db, sql):
    before = _digest(db)
    result, peak = _peak_mb(sql, db)
    # Refused ("string or blob too big"), or for printf a NULL: either way nothing big was built.
    assert (result.category == RUNTIME and "too big" in result.error) or all(row == (None,) for row in result.rows)
    assert peak < 2 * MAX_VALUE_BYTES / MB + 8  # never more than a value or two reached Python
    assert _digest(db) == before


def test_a_result_over_the_byte_budget_is_refused_before_it_is_held(db):
    # 900 KB per row is under the value cap; 1,000 of them are 900 MB, which must never be held.
    result, peak = _peak_mb("SELECT zeroblob(900000) FROM t", db, max_rows=10**6, max_bytes=16 * MB)
    assert result.category == RUNTIME and "more than 16 MB" in result.error
    assert peak < 16 + 8  # the budget, plus one row and bookkeeping


def test_a_long_function_call_is_stopped_by_the_watchdog(db, monkeypatch):
    # With the step-count check out of the way, only the watchdog can stop this query.
    monkeypatch.setattr(sqlite_engine, "_PROGRESS_EVERY", 2**31 - 1)
    result = execute_sql(
        db, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c", timeout=0.5
    )
    assert result.category == TIMEOUT and "was stopped" in result.error


def test_the_watchdog_does_not_touch_the_next_query(db):
    for _ in range(20):  # quick queries with a short timeout: a late interrupt would fail one of them
        assert execute_sql(db, "SELECT COUNT(*) FROM t", timeout=0.05).rows == [(1000,)]
