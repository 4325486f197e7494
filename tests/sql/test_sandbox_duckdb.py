"""DuckDB's own protections, each shown with the guard turned off: model SQL runs in a worker process
whose memory is capped and which is ended at the timeout, on a connection that reads no files, scans
no Python objects, spills nothing to disk and cannot change its settings; only plain values come
back from it."""

from __future__ import annotations

import datetime
import decimal
import io
import os
import pickle
import uuid
import zoneinfo

import duckdb
import pytest

from engines_support import peak_memory, shop_on
from text2sql.sql import duckdb_engine
from text2sql.sql.duckdb_engine import WORKER_MEMORY, DuckDBDatabase
from text2sql.sql.execution import FORBIDDEN, RUNTIME, SCHEMA, TIMEOUT, execute_sql

MB = 2**20
FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
# A worker's resident memory can pass its data cap by what it maps from files (Python, DuckDB's library).
WORKER_RSS_MB = WORKER_MEMORY / MB + 160


@pytest.fixture(autouse=True)
def no_guard(monkeypatch):
    monkeypatch.setattr(duckdb_engine, "check_query", lambda *a, **k: None)


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> str:
    return shop_on("duckdb", tmp_path_factory.mktemp("duck"))


def test_a_1_gb_value_is_refused_in_the_worker(shop):
    measured = peak_memory(shop, "SELECT repeat('x', 1000000000)")
    assert measured["grew_mb"] < 32, measured  # in this process, the old engine took +1.9 GB
    assert measured["worker_mb"] < WORKER_RSS_MB, measured
    assert measured["category"] == RUNTIME and "memory" in measured["error"]


def test_3000_rows_of_1_mb_stay_bounded(shop):
    measured = peak_memory(shop, "SELECT repeat('x', 1000000) FROM range(3000)")
    assert measured["grew_mb"] < 32, measured  # in this process, the old engine took +2.9 GB
    assert measured["worker_mb"] < WORKER_RSS_MB, measured
    assert measured["category"] == RUNTIME


def test_a_result_over_the_byte_budget_is_refused(shop):
    result = execute_sql(
        shop, "SELECT repeat('x', 100000) || range FROM range(2000)", max_rows=10**6, max_bytes=16 * MB
    )
    assert result.category == RUNTIME and "more than 16 MB" in result.error


def test_a_reply_over_its_cap_is_refused(shop, monkeypatch):
    # Numbers are not text, yet a reply of a million of them is bounded too.
    monkeypatch.setattr(duckdb_engine, "_REPLY_OVERHEAD", 100_000)
    result = execute_sql(shop, "SELECT range FROM range(1000000)", max_rows=10**7, max_bytes=1000)
    assert result.category == RUNTIME and "more than" in result.error


def test_a_long_query_is_stopped_at_its_timeout(shop):
    with DuckDBDatabase(shop) as db:
        result = db.execute(FOREVER, timeout=2)  # never ends by itself: a result at all means it was stopped
        assert result.category == TIMEOUT, result
        assert db.execute("SELECT COUNT(*) FROM orders").rows == [(40,)]


def test_a_worker_that_does_not_answer_in_time_is_ended(shop, monkeypatch):
    # The worker's own interrupt comes after the caller stops waiting: as for a call DuckDB cannot interrupt.
    monkeypatch.setattr(duckdb_engine, "_GRACE", -1.5)
    with DuckDBDatabase(shop) as db:
        assert db.execute("SELECT 1").ok
        worker = db._worker
        result = db.execute(FOREVER, timeout=2)
        assert result.category == TIMEOUT
        assert worker.proc.poll() is not None  # ended, not left running
        assert db.execute("SELECT COUNT(*) FROM customers").rows == [(5,)]  # a new worker
        assert db._worker is not worker


def test_the_connection_is_locked_down(shop):
    settings = execute_sql(
        shop,
        "SELECT current_setting('threads'), current_setting('python_enable_replacements'), "
        "current_setting('enable_external_access'), current_setting('temp_directory'), "
        "current_setting('lock_configuration'), current_setting('memory_limit')",
    )
    assert settings.ok, settings.error
    assert settings.rows[0][:5] == (1, False, False, "", True) and settings.rows[0][5].startswith("488")
    assert not execute_sql(shop, "SELECT * FROM read_text('/etc/hostname')").ok  # no files
    assert execute_sql(shop, "SET threads = 8").category == FORBIDDEN


def test_python_objects_are_not_scanned_by_name(shop):
    import pandas

    secret_frame = pandas.DataFrame({"secret": ["x"]})  # noqa: F841  (what a replacement scan would find)
    result = execute_sql(shop, "SELECT * FROM secret_frame")
    assert result.category == SCHEMA
    with DuckDBDatabase(shop) as db:  # the connection of this process (schema reads) too
        assert db._conn.execute("SELECT current_setting('python_enable_replacements')").fetchone() == (False,)


def test_values_come_back_as_duckdb_returns_them(shop, tmp_path):
    sql = (
        "SELECT TIMESTAMPTZ '2024-01-02 03:04:05+02', 1.5::DECIMAL(4,2), '6f0b8f3e-1a2b-4c9b-9a5e-6f0b8f3e1a2b'::UUID, "
        "[1, 2], {'a': 'b'}, DATE '2024-01-02', TIME '10:00:00', INTERVAL 5 SECOND, 'x'::BLOB, NULL, 2::HUGEINT"
    )
    result = execute_sql(shop, sql)
    assert result.ok, result.error
    with duckdb.connect() as conn:
        assert result.rows == conn.execute(sql).fetchall()  # time zones as fixed offsets: the same instants


def test_only_plain_types_are_unpickled_from_a_worker():
    allowed = [decimal.Decimal("1.5"), datetime.datetime.now(datetime.timezone.utc), uuid.uuid4(), [1, {"a": b"x"}]]
    assert duckdb_engine._PlainUnpickler(io.BytesIO(pickle.dumps(allowed))).load() == allowed
    for hostile in (os.system, print, zoneinfo.ZoneInfo("UTC")):
        with pytest.raises(pickle.UnpicklingError):
            duckdb_engine._PlainUnpickler(io.BytesIO(pickle.dumps(hostile))).load()
