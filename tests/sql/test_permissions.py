"""Per-table and per-column permissions on SQLite, DuckDB and PostgreSQL (a real server, as the
read-only `reader` role, which may read every table: the permissions narrow it). Every refused query
also runs without the permissions, so a refusal is the permissions' doing; the schema a prompt shows
holds only what they allow."""

from __future__ import annotations

import sqlite3

import pytest

from engines_support import shop_on
from text2sql.data.schema import cached_schema, read_schema, schema_text
from text2sql.data.values import value_index
from text2sql.errors import ConfigError
from text2sql.sql.catalog import Column, Schema, Table
from text2sql.sql.execution import FORBIDDEN, compile_sql, execute_many, execute_sql, open_database
from text2sql.sql.guard import check_query
from text2sql.sql.permissions import DatabasePermissions, Permissions

ENGINES = ("sqlite", "duckdb", "postgres")
SCHEMA = "permissions_shop"
# What the shop holds besides customers and orders: a hidden table, a view of it, and a view of
# customers that reads a hidden column of theirs.
EXTRA = [
    "CREATE TABLE secrets (id INTEGER PRIMARY KEY, customer_id BIGINT REFERENCES customers(id), note TEXT)",
    "INSERT INTO secrets VALUES (1, 1, 'the vault code is 1234')",
    "CREATE VIEW secret_notes AS SELECT customer_id, note FROM secrets",
    "CREATE VIEW paris AS SELECT id, name FROM customers WHERE city = 'Paris'",
]
ALLOWED = "shop:customers(id,name),orders,paris"


def _add_extra(engine: str, target: str, server) -> None:
    if engine == "sqlite":
        with sqlite3.connect(target) as conn:
            for statement in EXTRA:
                conn.execute(statement)
        conn.close()
    elif engine == "duckdb":
        import duckdb

        with duckdb.connect(target) as conn:
            for statement in EXTRA:
                conn.execute(statement)
    else:
        with server.admin() as conn:
            conn.execute(f"SET search_path TO {SCHEMA}")
            for statement in EXTRA:
                conn.execute(statement)
        server.grant_reader("postgres", SCHEMA)  # the new table and views too: the role reads everything


@pytest.fixture(scope="module", params=ENGINES)
def shop(request, tmp_path_factory) -> tuple[str, str]:
    """(engine, target) of the shop with its secrets."""
    engine = request.param
    server = request.getfixturevalue("postgres_server") if engine == "postgres" else None
    target = shop_on(engine, tmp_path_factory.mktemp(engine), server, schema=SCHEMA)
    _add_extra(engine, target, server)
    return engine, target


@pytest.fixture(scope="module")
def allowed() -> DatabasePermissions:
    permissions = Permissions.from_cli([ALLOWED]).get("shop")
    assert permissions is not None
    return permissions


ALLOWED_QUERIES = [
    ("SELECT name FROM customers WHERE id = 2", [("Bo",)]),
    ("SELECT COUNT(*) FROM customers", [(5,)]),
    ("SELECT COUNT(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.name = 'Ada'", [(8,)]),
    ("WITH big AS (SELECT customer_id FROM orders WHERE amount > 400) SELECT COUNT(*) FROM big", [(2,)]),
    (
        "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id) AND c.id = 1",
        [("Ada",)],
    ),
    ("SELECT name FROM paris ORDER BY id", [("Bo",), ("Chloé",)]),  # a listed view: what it reads is its own
    ("SELECT MAX(amount) FROM orders", [(420.0,)]),
]


@pytest.mark.parametrize("sql, rows", ALLOWED_QUERIES)
def test_allowed_queries_run(shop, allowed, sql, rows):
    _, target = shop
    result = execute_sql(target, sql, permissions=allowed)
    assert result.ok, result.error
    assert [tuple(r) for r in result.rows] == rows


# (SQL, what the refusal names); every one of them runs without the permissions.
REFUSED = [
    ("SELECT note FROM secrets", "secrets"),
    ("SELECT COUNT(*) FROM secrets", "secrets"),
    ("SELECT c.name FROM customers c JOIN secrets s ON s.customer_id = c.id", "secrets"),
    ("SELECT name FROM customers WHERE id IN (SELECT customer_id FROM secrets)", "secrets"),
    ("WITH s AS (SELECT note FROM secrets) SELECT note FROM s", "secrets"),
    ("WITH t AS (SELECT city FROM customers) SELECT * FROM t", "customers.city"),
    ("SELECT note FROM secret_notes", "secret_notes"),
    ("SELECT * FROM customers", "customers.city"),
    ("SELECT c.* FROM customers c WHERE c.id = 1", "customers.city"),
    ("SELECT name FROM customers WHERE city = 'Paris'", "customers.city"),
    ("SELECT city, COUNT(*) FROM customers GROUP BY city", "customers.city"),
    ("SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY c.city", "customers.city"),
    # Correlated: the unqualified `city` inside the subquery is the outer customers' column.
    (
        "SELECT name FROM customers WHERE EXISTS (SELECT 1 FROM orders WHERE orders.customer_id = customers.id AND city = 'Paris')",
        "customers.city",
    ),
    ("SELECT (SELECT note FROM secrets s WHERE s.customer_id = c.id) FROM customers c", "secrets"),
]


@pytest.mark.parametrize("sql, named", REFUSED)
def test_each_way_around_is_refused(shop, allowed, sql, named):
    _, target = shop
    assert execute_sql(target, sql).ok  # the role itself may read it
    result = execute_sql(target, sql, permissions=allowed)
    assert result.category == FORBIDDEN, (result.error, result.rows)
    assert "\n" not in result.error and named in result.error.lower(), result.error
    assert not result.rows


def test_a_star_under_exists_reads_no_column(shop, allowed):
    """EXISTS asks whether a row is there, so the guard lets its star be. SQLite's authorizer is told
    of every column a star names wherever it stands, and refuses it: fail closed, with the column named."""
    engine, target = shop
    sql = "SELECT c.name FROM customers c WHERE EXISTS (SELECT * FROM customers d WHERE d.id = c.id + 3) ORDER BY c.id"
    result = execute_sql(target, sql, permissions=allowed)
    if engine == "sqlite":
        assert result.category == FORBIDDEN and "customers.city" in result.error.lower(), result.error
    else:
        assert result.rows == [("Ada",), ("Bo",)], result.error


def test_a_star_names_every_hidden_column(shop):
    _, target = shop
    narrow = Permissions.from_cli(["shop:customers(id)"]).get("shop")
    for sql in ("SELECT * FROM customers", "SELECT c.* FROM customers c"):
        result = execute_sql(target, sql, permissions=narrow)
        assert result.category == FORBIDDEN
        assert "customers.name" in result.error.lower() and "customers.city" in result.error.lower(), result.error
    assert execute_sql(target, "SELECT id FROM customers WHERE id = 3", permissions=narrow).rows == [(3,)]


@pytest.mark.parametrize("sql", ["SELECT c FROM customers c", "SELECT c.id FROM customers c WHERE c IS NOT NULL"])
def test_whole_row_references_are_refused(shop, allowed, sql):
    engine, target = shop
    if engine == "sqlite":
        pytest.skip("SQLite has no whole-row references")
    assert execute_sql(target, sql).ok
    result = execute_sql(target, sql, permissions=allowed)
    assert result.category == FORBIDDEN and "whole row" in result.error, result.error


def test_postgres_spellings_of_a_whole_row(shop, allowed):
    engine, target = shop
    if engine != "postgres":
        pytest.skip("PostgreSQL syntax")
    for sql in (
        "SELECT row_to_json(c) FROM customers c",
        "SELECT (c).city FROM customers c",
        "SELECT to_json(c.*) FROM customers c",
    ):
        assert execute_sql(target, sql).ok, sql
        result = execute_sql(target, sql, permissions=allowed)
        assert result.category == FORBIDDEN, (sql, result.error)


def test_duckdb_positional_columns_are_refused(shop, allowed):
    engine, target = shop
    if engine != "duckdb":
        pytest.skip("DuckDB syntax")
    assert execute_sql(target, "SELECT #3 FROM customers").ok
    result = execute_sql(target, "SELECT #3 FROM customers", permissions=allowed)
    assert result.category == FORBIDDEN and "position" in result.error


def test_other_schemas_are_refused(shop, allowed):
    engine, target = shop
    qualified = {"sqlite": None, "duckdb": "main.customers", "postgres": f"{SCHEMA}.customers"}[engine]
    if qualified is not None:  # the database's own schema may be named
        assert execute_sql(target, f"SELECT name FROM {qualified} WHERE id = 1", permissions=allowed).rows == [("Ada",)]
    if engine == "postgres":
        result = execute_sql(target, "SELECT 1 FROM public.customers", permissions=allowed)
        assert result.category == FORBIDDEN and "another schema" in result.error


def test_a_cte_named_like_a_listed_view_reads_nothing_hidden(shop, allowed):
    """SQLite's authorizer names a CTE as it names a view: a CTE called `paris` must not pass as the view."""
    _, target = shop
    sql = "WITH paris AS (SELECT city AS name FROM customers) SELECT name FROM paris"
    assert execute_sql(target, sql).ok
    result = execute_sql(target, sql, permissions=allowed)
    assert result.category == FORBIDDEN and "customers.city" in result.error.lower(), result.error


def test_sqlite_master_is_hidden(shop, allowed):
    """It holds the CREATE statements of every table, hidden ones included."""
    engine, target = shop
    if engine != "sqlite":
        pytest.skip("SQLite's own table")
    assert execute_sql(target, "SELECT sql FROM sqlite_master").ok
    result = execute_sql(target, "SELECT sql FROM sqlite_master", permissions=allowed)
    assert result.category == FORBIDDEN and "sqlite_master" in result.error


def test_one_open_database_keeps_its_permissions(shop, allowed):
    _, target = shop
    with open_database(target, permissions=allowed) as db:
        assert db.access is not None
        assert db.execute("SELECT note FROM secrets").category == FORBIDDEN
        assert db.execute("SELECT name FROM customers WHERE id = 1").rows == [("Ada",)]
        assert db.execute("SELECT city FROM customers").category == FORBIDDEN
    results = execute_many(
        target, ["SELECT id FROM orders WHERE id = 1", "SELECT note FROM secrets"], permissions=allowed
    )
    assert [r.category for r in results] == [None, FORBIDDEN]
    assert compile_sql(target, "SELECT name FROM customers", permissions=allowed).ok
    assert compile_sql(target, "SELECT city FROM customers", permissions=allowed).category == FORBIDDEN


def test_the_schema_shows_only_what_is_allowed(shop, allowed):
    engine, target = shop
    for fmt in ("sql", "compact", "tables"):
        full = schema_text(target, fmt, sample_rows=2)
        shown = schema_text(target, fmt, sample_rows=2, permissions=allowed)
        assert "secrets" in full and ("city" in full.lower() or fmt == "tables")  # tables: names only
        assert "secrets" not in shown and "secret_notes" not in shown
        assert "city" not in shown.lower() and "London" not in shown
        assert "customers" in shown.lower() and "orders" in shown
    sql = schema_text(target, "sql", sample_rows=2, permissions=allowed)
    assert "'Ada'" in sql and "REFERENCES" in sql  # orders -> customers(id) stays: both ends are shown
    schema = read_schema(target, allowed)
    names = {t.name.lower(): [c.name for c in t.columns] for t in schema.tables}
    assert [c.lower() for c in names["customers"]] == ["id", "name"]
    assert "secrets" not in names
    assert (engine == "sqlite") == ("paris" not in names)  # the SQLite catalog lists tables only


def test_value_hints_come_only_from_allowed_columns(shop, allowed):
    _, target = shop
    question = "customers living in London"
    full = value_index(target, cached_schema(target)).match(question)
    assert any("London" in values for values in full.values())
    shown = cached_schema(target, allowed)
    assert not value_index(target, shown).match(question)


def test_foreign_keys_to_hidden_tables_are_dropped(shop):
    _, target = shop
    only_secrets = Permissions.from_cli(["shop:secrets"]).get("shop")
    with_parent = Permissions.from_cli(["shop:secrets,customers"]).get("shop")
    assert "REFERENCES" not in schema_text(target, "sql", permissions=only_secrets)
    assert "REFERENCES" in schema_text(target, "sql", permissions=with_parent)


def test_unknown_names_are_one_config_error(shop):
    _, target = shop
    wrong = Permissions.from_cli(["shop:customers(id,nope),ghosts"]).get("shop")
    with pytest.raises(ConfigError) as info:
        open_database(target, permissions=wrong)
    message = str(info.value)
    assert "\n" not in message and "customers.nope" in message and "ghosts" in message
    with pytest.raises(ConfigError):
        schema_text(target, "sql", permissions=wrong)


# ---------------------------------------------------------------------------------------- parsing


def test_the_cli_and_config_forms_give_the_same_permissions():
    cli = Permissions.from_cli(["shop:customers(id, name),orders", "zoo:animals"])
    config = Permissions.from_config({"shop": ["customers.id", "customers.name", "orders"], "zoo": ["animals"]})
    assert cli.get("shop") == config.get("shop") and cli.get("zoo") == config.get("zoo")
    assert str(cli.get("shop")) == "customers(id,name),orders"
    assert cli.get("other") is None
    quoted = Permissions.from_cli(['shop:"odd, name"("a.b")']).get("shop")
    assert quoted is not None and quoted.tables == (("odd, name", ("a.b",)),)
    assert Permissions.from_config({"shop": ["orders"]}).replaced_by(cli).get("shop") == cli.get("shop")


@pytest.mark.parametrize(
    "values, needle",
    [
        (["customers"], "no database id"),
        (["shop:"], "names no table"),
        (["shop:customers(id"], "expected"),
        (["shop:customers,,orders"], "expected a table"),
        (["shop:customers,customers(id)"], "both whole and by its columns"),
    ],
)
def test_bad_permission_text_is_one_config_error(values, needle):
    with pytest.raises(ConfigError) as info:
        Permissions.from_cli(values)
    assert "\n" not in str(info.value) and needle in str(info.value), str(info.value)


def test_databases_that_are_not_served_are_named():
    with pytest.raises(ConfigError, match="not served: ghost"):
        Permissions.from_cli(["ghost:t"]).check_databases(["shop"])
    Permissions.from_cli(["shop:t"]).check_databases(["shop"])


def test_the_guard_without_permissions_is_unchanged():
    assert check_query("SELECT * FROM secrets", "postgres") is None


@pytest.mark.parametrize("dialect", ["postgres", "duckdb"])
def test_the_guard_tells_tables_from_what_shadows_them(dialect):
    """A CTE shadows a table of its name; a subquery aliased like a table does not, nor does a CTE
    whose name is only the alias of a table."""
    catalog = Schema(
        [Table("customers", [Column("id"), Column("name"), Column("city")]), Table("secrets", [Column("x")])],
        db_id="shop",
        dialect=dialect,
    )
    allowed = DatabasePermissions.parse(["customers(id, name)"], "test").bind(catalog, schema_name="main")
    assert check_query("WITH secrets AS (SELECT 1 AS x) SELECT x FROM secrets", dialect, permissions=allowed) is None
    for sql in (
        "SELECT 1 FROM (SELECT 1 AS y) AS secrets, secrets",
        "WITH t AS (SELECT 1 AS x) SELECT 1 FROM secrets AS t",
        "SELECT (WITH secrets AS (SELECT 1 AS x) SELECT x FROM secrets), (SELECT x FROM secrets) FROM customers",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r, secrets WHERE n < 3) SELECT n FROM r",
    ):
        refused = check_query(sql, dialect, permissions=allowed)
        assert refused is not None and "secrets" in refused[0], (sql, refused)
