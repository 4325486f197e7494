"""The ways model SQL got past the earlier guard, run on the real engines with today's guard: each is
refused, the database's rows are unchanged, no other session is touched, no lock or replication slot
is left, and no file is read. On PostgreSQL as the read-only `reader` and as a superuser with the
role check lifted (the worst case: only the guard and the read-only transaction stand). With the
guard turned off the same statements do escape as a superuser, so it is the guard that holds."""

from __future__ import annotations

import psycopg
import pytest

from engines_support import shop_on
from text2sql.sql import postgres
from text2sql.sql.execution import FORBIDDEN, SYNTAX, execute_sql
from text2sql.sql.postgres import PostgresDatabase

DATABASE = "escapes"


@pytest.fixture(scope="module")
def server(postgres_server):
    """A database with a 20-row table, dblink installed (as real installations have it), and read
    access for `reader`."""
    postgres_server.create_database(DATABASE)
    with postgres_server.admin(DATABASE) as conn:
        conn.execute("CREATE EXTENSION dblink")
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 20)")
        # A function of the database's own under an allowed name: an unqualified call could reach it.
        conn.execute("CREATE FUNCTION upper(integer) RETURNS integer LANGUAGE sql AS 'SELECT pg_backend_pid()'")
    postgres_server.grant_reader(DATABASE)
    return postgres_server


def _escapes(server) -> list[str]:
    # dblink reaches the server over its socket folder, where the tests' server trusts local users.
    local = f"dbname={DATABASE} user=postgres host={server.folder} port={server.port}"
    others = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid()"
    return [
        "SELECT pg_read_file('/etc/passwd'), @ -5",
        "SELECT xmlparse(content '<a/>'), pg_read_file('/etc/passwd')",
        "SELECT json_object('{a,1}'), pg_read_file('/etc/passwd')",
        "SELECT * FROM ts_stat($$SELECT to_tsvector(pg_terminate_backend(pid)::text) FROM pg_stat_activity "
        "WHERE usename = current_user AND pid <> pg_backend_pid()$$)",
        f"SELECT dblink_exec('{local}', 'DELETE FROM t')",
        f"SELECT dblink_connect_u('evil', '{local}'), dblink_send_query('evil', 'DELETE FROM t')",
        f"SELECT * FROM dblink('{local}', '{others.replace(chr(39), chr(39) * 2)}') AS k(done bool)",
        "SELECT pg_advisory_lock_shared(42)",
        "SELECT pg_try_advisory_lock(43)",
        "SELECT pg_current_xact_id()",
        "SELECT pg_create_physical_replication_slot('evil_slot', true)",
        "SELECT pg_stat_reset()",
        "SELECT set_config('work_mem', '1GB', false)",
        "SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')",
        "SELECT pg_catalog.pg_read_file('/etc/passwd')",
        """SELECT "pg_read_file"('/etc/passwd')""",
        "SELECT query FROM pg_stat_activity",
    ]


def _state(server) -> tuple:
    with server.admin(DATABASE) as conn:
        rows = conn.execute("SELECT count(*), md5(string_agg(x::text, ',' ORDER BY x)) FROM t").fetchone()
        locks = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]
        slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()[0]
    return rows, locks, slots


@pytest.fixture
def bystander(server):
    """Another session of the reader's role, as another request on a server's pool would be."""
    conn = psycopg.connect(server.url(DATABASE, user="reader"), autocommit=True)
    yield conn
    conn.close()


@pytest.mark.parametrize("role", ["reader", "superuser"])
def test_every_escape_is_refused_and_changes_nothing(server, bystander, role, monkeypatch):
    if role == "superuser":
        monkeypatch.setattr(postgres, "_unsafe_role_allowed", True)  # only the guard and the transaction stand
    url = server.url(DATABASE, user="reader" if role == "reader" else "postgres")
    before = _state(server)
    for sql in _escapes(server):
        result = execute_sql(url, sql, timeout=2.0)
        assert result.category in (FORBIDDEN, SYNTAX), (sql, result)
        assert not result.rows
    assert _state(server) == before
    assert bystander.execute("SELECT 1").fetchone() == (1,)  # the other session lives


def test_without_the_guard_a_superuser_escapes(server, monkeypatch):
    """What the guard stops: with it off, SQL text inside a function deletes rows despite the
    read-only transaction, and a file outside the database is read."""
    monkeypatch.setattr(postgres, "check_query", lambda *a, **k: None)
    local = f"dbname={DATABASE} user=postgres host={server.folder} port={server.port}"
    with PostgresDatabase(server.url(DATABASE), unsafe_role=True) as db:
        read = db.execute("SELECT pg_read_file('PG_VERSION')")
        assert read.ok and read.rows[0][0].strip().isdigit()
        deleted = db.execute(f"SELECT dblink_exec('{local}', 'DELETE FROM t WHERE x > 15')")
        assert deleted.ok, deleted.error
    with server.admin(DATABASE) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (15,)
        conn.execute("INSERT INTO t SELECT generate_series(16, 20)")


def test_a_function_the_database_defines_is_not_called(server):
    refused = execute_sql(server.url(DATABASE, user="reader"), "SELECT upper(1)")
    assert refused.category == FORBIDDEN and "defined by this database" in refused.error
    assert execute_sql(server.url(DATABASE, user="reader"), "SELECT lower('A'), count(*) FROM t").rows == [("a", 20)]


def test_a_duckdb_macro_under_an_allowed_name_is_not_called(tmp_path):
    import duckdb

    path = tmp_path / "macros.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE MACRO upper(x) AS x || '!'")
    refused = execute_sql(str(path), "SELECT upper('a')")
    assert refused.category == FORBIDDEN and "defined by this database" in refused.error
    assert execute_sql(str(path), "SELECT lower('A')").rows == [("a",)]


DUCKDB_ESCAPES = [
    "SELECT * FROM '/etc/hostname'",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM query('SELECT * FROM read_text(''/etc/hostname'')')",
    "SELECT json_execute_serialized_sql('{}')",
    "SELECT current_setting('memory_limit')",
    "SELECT * FROM duckdb_settings()",
    "SELECT sleep_ms(5000)",
    "SELECT 'x'.getenv()",
]
SQLITE_ESCAPES = [
    "SELECT load_extension('/tmp/evil')",
    "SELECT fts3_tokenizer('simple')",
    "SELECT sqlite_compileoption_get(0)",
]


@pytest.mark.parametrize("engine", ["duckdb", "sqlite"])
def test_file_and_function_escapes_on_the_file_engines(engine, tmp_path):
    target = shop_on(engine, tmp_path)
    for sql in DUCKDB_ESCAPES if engine == "duckdb" else SQLITE_ESCAPES:
        result = execute_sql(target, sql, timeout=2.0)
        assert result.category == FORBIDDEN, (sql, result)
        assert "it is not run" in result.error or "a file or string as a table" in result.error, result.error
    assert execute_sql(target, "SELECT COUNT(*) FROM orders").rows == [(40,)]


def test_without_the_guard_the_reader_ends_other_sessions_of_its_role(server, bystander, monkeypatch):
    """A read-only role may signal sessions of its own role, and ts_stat runs SQL text: on a server
    those sessions are the other requests sharing the pool."""
    monkeypatch.setattr(postgres, "check_query", lambda *a, **k: None)
    sql = (
        "SELECT * FROM ts_stat($$SELECT to_tsvector(pg_terminate_backend(pid)::text) FROM pg_stat_activity "
        "WHERE usename = current_user AND pid <> pg_backend_pid()$$)"
    )
    execute_sql(server.url(DATABASE, user="reader"), sql, timeout=2.0)
    with pytest.raises(psycopg.OperationalError):
        bystander.execute("SELECT 1")
