"""The guard fails closed: SQL runs on PostgreSQL or DuckDB only when it parses into exactly one
read-only query whose every function is on the allow-list. What the guard cannot parse or place is
refused with its reason, and real gold SQL (the bundled data, Spider, BIRD) still passes."""

from __future__ import annotations

import pytest

from repo import SHARED_DATASETS
from text2sql.sql.guard import check_query
from text2sql.sql.results import FORBIDDEN, SYNTAX
from text2sql.sql.transpile import TranspileError, transpile

REFUSED = [
    # Unparsable: the server's parser would have taken them (and read a file).
    ("postgres", "SELECT pg_read_file('/etc/passwd'), @ -5", SYNTAX, "cannot parse"),
    ("postgres", "SELECT xmlparse(content '<a/>'), pg_read_file('/etc/passwd')", SYNTAX, "cannot parse"),
    ("postgres", "SELECT json_object('{a,1}'), pg_ls_dir('.')", SYNTAX, "cannot parse"),
    # SQL inside strings.
    ("postgres", "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM t')", FORBIDDEN, "runs SQL given as text"),
    ("postgres", "SELECT dblink_exec('dbname=postgres', 'DELETE FROM t')", FORBIDDEN, "reaches other servers"),
    ("postgres", "SELECT dblink_connect_u('c', 'dbname=postgres')", FORBIDDEN, "reaches other servers"),
    ("postgres", "SELECT dblink_send_query('c', 'SELECT pg_terminate_backend(1)')", FORBIDDEN, "other servers"),
    ("postgres", "SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')", FORBIDDEN, "SQL given as text"),
    # What a deny-list missed.
    ("postgres", "SELECT pg_advisory_lock_shared(42)", FORBIDDEN, "takes or holds locks"),
    ("postgres", "SELECT pg_current_xact_id()", FORBIDDEN, "server state"),
    ("postgres", "SELECT pg_create_physical_replication_slot('s', true)", FORBIDDEN, "server state"),
    ("postgres", "SELECT pg_stat_reset()", FORBIDDEN, "server state"),
    ("postgres", "SELECT brand_new_extension_function(1)", FORBIDDEN, "not on the list"),
    # Spelled so that a name check by the parser's idea of the function would miss it.
    ("postgres", "SELECT \"pg_read_file\"('/etc/passwd')", FORBIDDEN, "reads or writes files"),
    ("postgres", "SELECT pg_catalog.pg_read_file('/etc/passwd')", FORBIDDEN, "reads or writes files"),
    ("postgres", "SELECT PG_SLEEP(10)", FORBIDDEN, "server state"),
    ("postgres", "SELECT public.lower(name) FROM t", FORBIDDEN, "schema-qualified"),
    ("postgres", "SELECT 1 FROM t WHERE EXISTS (SELECT set_config('work_mem', '1GB', false))", FORBIDDEN, "state"),
    # Not a query, or a query that writes or locks.
    ("postgres", "SELECT 1; SELECT 2", FORBIDDEN, "2 statements"),
    ("postgres", "DELETE FROM t", FORBIDDEN, "DELETE statement"),
    ("postgres", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", FORBIDDEN, "DELETE inside a query"),
    ("postgres", "SELECT * INTO copy_of_t FROM t", FORBIDDEN, "INTO inside a query"),
    ("postgres", "SELECT * FROM t FOR UPDATE", FORBIDDEN, "row locks"),
    ("postgres", "SET statement_timeout = 0", FORBIDDEN, "only queries"),
    # The server's catalogs.
    ("postgres", "SELECT query FROM pg_stat_activity", FORBIDDEN, "system catalog"),
    ("postgres", "SELECT * FROM information_schema.role_table_grants", FORBIDDEN, "system catalog"),
    ("postgres", "SELECT * FROM pg_catalog.pg_authid", FORBIDDEN, "system catalog"),
    # DuckDB: files, SQL text, settings.
    ("duckdb", "SELECT * FROM read_csv('/etc/passwd')", FORBIDDEN, "reads or writes files"),
    ("duckdb", "SELECT * FROM '/etc/passwd'", FORBIDDEN, "a file or string as a table"),
    ("duckdb", "SELECT * FROM t, 'data.parquet'", FORBIDDEN, "a file or string as a table"),
    ("duckdb", "SELECT * FROM query('DELETE FROM t')", FORBIDDEN, "runs SQL given as text"),
    ("duckdb", "SELECT getenv('HOME')", FORBIDDEN, "server state"),
    ("duckdb", "SELECT * FROM duckdb_settings()", FORBIDDEN, "server state"),
    ("duckdb", "SELECT * FROM duckdb_tables", FORBIDDEN, "system catalog"),
    ("duckdb", "SELECT sleep_ms(10000)", FORBIDDEN, "waits"),
    ("duckdb", "SELECT 'x'.brand_new_function()", FORBIDDEN, "not on the list"),
    ("duckdb", "PRAGMA enable_profiling", FORBIDDEN, "only queries"),
    ("duckdb", "SELECT 1; SELECT 2", FORBIDDEN, "2 statements"),
]


@pytest.mark.parametrize(("dialect", "sql", "category", "reason"), REFUSED)
def test_refused_with_its_reason(dialect, sql, category, reason):
    refused = check_query(sql, dialect)
    assert refused is not None, sql
    assert refused[1] == category and reason in refused[0], refused
    assert "\n" not in refused[0]


ALLOWED = [
    (
        "postgres",
        "SELECT c.name, COUNT(*) AS n, round(avg(o.amount)::numeric, 2) FROM customers c JOIN orders o "
        "ON o.customer_id = c.id WHERE o.placed >= '2024-01-01' GROUP BY c.name HAVING COUNT(*) > 1 ORDER BY 2 DESC",
    ),
    (
        "postgres",
        "WITH t(a) AS (SELECT 1) SELECT a::int, CAST(a AS text), extract(year FROM now()), "
        "substring('abc' FROM 1 FOR 2), trim(both ' ' FROM ' x '), position('a' IN 'cat'), ceil(1.2), "
        "coalesce(NULL, 1), greatest(1, 2), date_trunc('month', now()) FROM t",
    ),
    ("postgres", "SELECT * FROM generate_series(1, 3) AS g(x) WHERE x = ANY(ARRAY[1, 2])"),
    ("postgres", "SELECT pg_catalog.lower('X'), \"lower\"('Y')"),
    ("postgres", "SELECT name, rank() OVER (PARTITION BY city ORDER BY id) FROM customers"),
    ("postgres", "SELECT string_agg(name, ', ' ORDER BY name) FROM customers WHERE name ILIKE 'a%'"),
    ("duckdb", "SELECT strftime(placed::DATE, '%Y'), date_diff('day', DATE '2024-01-01', placed::DATE) FROM orders"),
    ("duckdb", "FROM orders SELECT median(amount), list(id)[1], 'abc'.upper()"),
    ("duckdb", "SELECT * FROM range(3) r(x) QUALIFY row_number() OVER (ORDER BY x) = 1"),
]


@pytest.mark.parametrize(("dialect", "sql"), ALLOWED)
def test_ordinary_queries_pass(dialect, sql):
    assert check_query(sql, dialect) is None


def test_a_function_the_database_defines_is_refused_even_under_an_allowed_name():
    assert check_query("SELECT lower(name) FROM t", "postgres") is None
    refused = check_query("SELECT lower(name) FROM t", "postgres", defined=frozenset({"lower"}))
    assert refused is not None and "defined by this database" in refused[0]


def _bundled_gold() -> list[str]:
    from text2sql.data import bundled

    return [row["sql"] for split in ("train", "validation", "test") for row in bundled.iter_rows(split)]


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_every_bundled_gold_query_passes_once_transpiled(dialect):
    sqls = _bundled_gold()
    assert len(sqls) > 3000
    refused = [(s, check_query(transpile(s, dialect), dialect)) for s in sqls]
    assert [r for r in refused if r[1]] == []


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_spider_and_bird_gold_pass(dialect):
    spider = SHARED_DATASETS / "spider_en" / "dev_gold.sql"
    bird = SHARED_DATASETS / "bird_minidev" / "mini_dev_postgresql_gold.sql"
    if not spider.is_file() or not bird.is_file():
        pytest.skip(f"real datasets not present at {SHARED_DATASETS}")
    checked = 0
    for line in spider.read_text().splitlines():
        try:
            sql = transpile(line.split("\t")[0], dialect)
        except TranspileError:
            continue
        assert check_query(sql, dialect) is None, sql
        checked += 1
    assert checked > 1000
    if dialect == "postgres":  # BIRD ships its gold in PostgreSQL's dialect too
        golds = [line.split("\t")[0] for line in bird.read_text().splitlines() if line.strip()]
        assert [s for s in golds if check_query(s, "postgres")] == []
