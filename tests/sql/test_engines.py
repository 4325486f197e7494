"""The same untrusted-SQL guarantees on SQLite, DuckDB and PostgreSQL (a real server): results,
catalogs, timeouts, row caps, and a list of hostile statements that must leave every database as it
was and touch no file."""

from __future__ import annotations

import hashlib
import os

import pytest

from engines_support import ORDERS, shop_on
from text2sql.data.schema import read_schema, schema_text
from text2sql.sql.equivalence import results_match
from text2sql.sql.execution import FORBIDDEN, SYNTAX, TIMEOUT, compile_sql, execute_sql, open_database

ENGINES = ("sqlite", "duckdb", "postgres")
FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"


@pytest.fixture(scope="module", params=ENGINES)
def shop(request, tmp_path_factory) -> str:
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    return shop_on(request.param, tmp_path_factory.mktemp(request.param), server, schema="engines_shop")


def _state(target: str) -> tuple:
    """Row counts and a checksum of every row: what no query may change."""
    with open_database(target) as db:
        tables = [t.name for t in db.catalog().tables]
        out = []
        for table in tables:
            result = db.execute(f'SELECT * FROM "{table}" ORDER BY 1', max_rows=10**6)
            assert result.ok, result.error
            out.append((table, len(result.rows), hashlib.sha256(repr(result.rows).encode()).hexdigest()))
    return tuple(out)


def test_results_are_the_same_on_every_engine(shop):
    names = execute_sql(shop, "SELECT name FROM customers WHERE city = 'Paris' ORDER BY id")
    assert names.rows == [("Bo",), ("Chloé",)]
    total = execute_sql(shop, "SELECT customer_id, SUM(amount), COUNT(*) FROM orders GROUP BY customer_id")
    expected = {}
    for _, customer, amount, _ in ORDERS:
        s, n = expected.get(customer, (0.0, 0))
        expected[customer] = (s + amount, n + 1)
    assert results_match([(c, s, n) for c, (s, n) in expected.items()], total, order_matters=False)
    quoted = execute_sql(shop, "SELECT id FROM customers WHERE name = 'D''Arcy' AND city IS NULL")
    assert quoted.rows == [(4,)]


def test_the_catalog_keeps_keys(shop):
    schema = read_schema(shop)
    tables = {t.name.lower(): t for t in schema.tables}
    assert set(tables) == {"customers", "orders"}
    assert [c.lower() for c in tables["customers"].primary_key] == ["id"]
    [fk] = tables["orders"].foreign_keys
    assert ([c.lower() for c in fk.columns], fk.ref_table.lower()) == (["customer_id"], "customers")
    text = schema_text(shop, "sql", sample_rows=2)
    assert "CREATE TABLE" in text and "2 example rows" in text


def test_row_cap_and_timeout(shop):
    capped = execute_sql(shop, "SELECT o.id FROM orders AS o, orders AS p", max_rows=7)
    assert capped.ok and len(capped.rows) == 7 and capped.truncated
    stopped = execute_sql(shop, FOREVER, timeout=0.5)
    assert stopped.category == TIMEOUT, stopped.error
    # The connection's pool (PostgreSQL) or file (the others) serves the next query normally.
    assert execute_sql(shop, "SELECT COUNT(*) FROM orders").rows == [(len(ORDERS),)]


def test_compile_checks_names_without_running(shop):
    assert compile_sql(shop, "SELECT name FROM customers").ok
    assert not compile_sql(shop, "SELECT nope FROM customers").ok
    assert compile_sql(shop, "DELETE FROM customers").category == FORBIDDEN


COMMON = [
    "DROP TABLE orders",
    "DELETE FROM orders",
    "INSERT INTO customers VALUES (99, 'x', 'y')",
    "UPDATE customers SET name = 'x'",
    "CREATE TABLE evil (x INT)",
    "TRUNCATE orders",
    "ALTER TABLE customers ADD COLUMN evil INT",
    "SELECT 1; DROP TABLE orders",
    "SELECT 1; DELETE FROM orders",
    "ATTACH '{tmp}/evil.db' AS evil",
    "BEGIN; DELETE FROM orders; COMMIT",
]
HOSTILE = {
    "sqlite": COMMON + ["PRAGMA writable_schema = 1", "VACUUM INTO '{tmp}/evil.sqlite'", "SELECT load_extension('x')"],
    "duckdb": COMMON
    + [
        "SELECT * FROM read_csv('/etc/hostname')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/etc/*')",
        "SELECT getenv('HOME')",
        "COPY customers TO '{tmp}/evil.csv'",
        "COPY (SELECT 1) TO '{tmp}/evil.csv'",
        "EXPORT DATABASE '{tmp}/evil'",
        "INSTALL httpfs",
        "SET threads = 8; DELETE FROM orders",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SELECT * FROM query('DELETE FROM orders')",
        "CREATE MACRO evil(x) AS x",
        "CHECKPOINT",
    ],
    "postgres": COMMON
    + [
        "SELECT pg_read_file('/etc/hostname')",
        "SELECT pg_ls_dir('.')",
        "SELECT lo_import('/etc/hostname')",
        "SELECT lo_export(1, '{tmp}/evil')",
        "COPY customers TO '{tmp}/evil.csv'",
        "COPY (SELECT 1) TO PROGRAM 'touch {tmp}/evil'",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "SET default_transaction_read_only = off",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
        "SELECT query_to_xml('DELETE FROM orders', true, true, '')",
        "SELECT * FROM dblink('dbname=postgres', 'DELETE FROM orders') AS t(x int)",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT pg_sleep(60)",
        "SET statement_timeout = 0; DELETE FROM orders",
        "SELECT 1; SET default_transaction_read_only = off; DELETE FROM orders",
        "CREATE TEMP TABLE evil AS SELECT 1",
        "DO $$ BEGIN DELETE FROM orders; END $$",
        "PREPARE evil AS DELETE FROM orders",
        "LOCK TABLE orders",
        "NOTIFY evil",
    ],
}


def _engine(target: str) -> str:
    return "postgres" if target.startswith("postgresql://") else "duckdb" if target.endswith(".duckdb") else "sqlite"


def test_hostile_sql_changes_nothing(shop, tmp_path):
    engine = _engine(shop)
    before = _state(shop)
    for statement in HOSTILE[engine]:
        sql = statement.format(tmp=tmp_path)
        result = execute_sql(shop, sql, timeout=1.0)
        assert not result.ok, f"{engine} ran: {sql}"
        assert result.category in (FORBIDDEN, SYNTAX, TIMEOUT, "runtime", "schema"), (sql, result)
        assert result.category != "no_database", (sql, result)
    assert _state(shop) == before
    assert os.listdir(tmp_path) == []  # no file was written
    assert [t.name.lower() for t in read_schema(shop).tables] == ["customers", "orders"]


def test_evaluate_scores_predictions_on_each_engine(shop, tmp_path, capsys):
    import csv
    import json

    from cli_support import run_cli

    data = tmp_path / "shop.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input_text", "sql"])
        writer.writerow(["Who lives in Paris?", "SELECT name FROM customers WHERE city = 'Paris'"])
        writer.writerow(["How many orders?", "SELECT COUNT(*) FROM orders"])
    predictions = tmp_path / "predictions.txt"
    # The first written another way (same rows), the second wrong.
    predictions.write_text("SELECT c.name FROM customers AS c WHERE c.city = 'Paris' ORDER BY c.id\nSELECT 1\n")
    out = tmp_path / "out"
    code, _, err = run_cli(
        capsys, "evaluate", "--data", data, "--db", shop, "--predictions", predictions, "--output", out
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["execution_accuracy"] == 0.5 and metrics["num_examples"] == 2
