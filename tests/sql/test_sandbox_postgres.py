"""PostgreSQL's own protections, each shown with the guard turned off (they must hold should it fail):
model SQL runs only on a role that can read and nothing else, `text2sql db role` creates such a
role, nothing one query leaves in a pooled session reaches the next, and a query's memory and time
stay bounded on a real server."""

from __future__ import annotations

import psycopg
import pytest

from cli_support import assert_one_line_error, run_cli
from engines_support import peak_memory, shop_on
from pg_support import ROLE_PASSWORD, _free_port
from text2sql.cli import build_parser
from text2sql.commands.common import load_run_config
from text2sql.data.schema import read_schema
from text2sql.sql import postgres, roles
from text2sql.sql.execution import FORBIDDEN, RUNTIME, TIMEOUT, execute_sql, open_database
from text2sql.sql.postgres import PostgresDatabase
from text2sql.sql.results import MAX_RESULT_BYTES
from text2sql.sql.targets import postgres_parts

MB = 2**20
SCHEMA = "sandbox_shop"
FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"


@pytest.fixture(autouse=True)
def no_guard(monkeypatch):
    """The engine's protections alone; the role policy off and its cache empty, as in a new process."""
    monkeypatch.setattr(postgres, "check_query", lambda *a, **k: None)
    monkeypatch.setattr(postgres, "_unsafe_role_allowed", False)
    monkeypatch.setattr(postgres, "_role_verdicts", {})


@pytest.fixture(scope="module")
def shop(postgres_server, tmp_path_factory) -> str:
    """The `reader` role's URL of a shop schema."""
    return shop_on("postgres", tmp_path_factory.mktemp("pg"), postgres_server, schema=SCHEMA)


def _admin_url(server) -> str:
    return server.url("postgres", schema=SCHEMA)


# ---------------------------------------------------------------------- least privilege


def test_a_superuser_is_refused_in_one_line_that_names_the_fix(postgres_server, shop):
    admin = _admin_url(postgres_server)
    result = execute_sql(admin, "SELECT COUNT(*) FROM customers")
    assert result.category == FORBIDDEN and "\n" not in result.error
    assert "the role postgres is a superuser" in result.error
    assert "text2sql db role URL NAME" in result.error and "--unsafe-role" in result.error
    # Its catalog is our own fixed SQL, still read; a reader runs the query.
    assert sorted(t.name.lower() for t in read_schema(admin).tables) == ["customers", "orders"]
    assert execute_sql(shop, "SELECT COUNT(*) FROM customers").rows == [(5,)]


def test_the_refusal_is_what_keeps_a_superuser_from_the_servers_files(postgres_server, shop):
    admin = _admin_url(postgres_server)
    read = "SELECT pg_read_file('PG_VERSION')"  # a file of the server's data folder
    assert execute_sql(admin, read).category == FORBIDDEN
    with PostgresDatabase(admin, unsafe_role=True) as db:  # without the refusal, the file is read
        assert db.execute(read).rows[0][0].strip().isdigit()


_SETUP = "CREATE SCHEMA IF NOT EXISTS sandbox_extra"
ROLES = {
    "writer": (
        ["GRANT USAGE ON SCHEMA sandbox_shop TO {role}", "GRANT SELECT, INSERT ON sandbox_shop.orders TO {role}"],
        "holds INSERT on sandbox_shop.orders",
    ),
    "column_writer": (
        ["GRANT UPDATE (amount) ON sandbox_shop.orders TO {role}"],
        "holds UPDATE on sandbox_shop.orders",
    ),
    "deleter": (
        ["GRANT DELETE, TRUNCATE ON sandbox_shop.customers TO {role}"],
        "holds DELETE, TRUNCATE on sandbox_shop.customers",
    ),
    "schema_creator": (
        [_SETUP, "GRANT CREATE ON SCHEMA sandbox_extra TO {role}"],
        "holds CREATE on the schema sandbox_extra",
    ),
    "database_creator": (["GRANT CREATE ON DATABASE postgres TO {role}"], "holds CREATE on the database postgres"),
    "table_owner": (
        [
            _SETUP,
            "CREATE TABLE IF NOT EXISTS sandbox_extra.owned (x int)",
            "ALTER TABLE sandbox_extra.owned OWNER TO {role}",
        ],
        "owns sandbox_extra.owned",
    ),
    "file_reader": (["GRANT pg_read_server_files TO {role}"], "is a member of pg_read_server_files"),
    "file_writer": (["GRANT pg_write_server_files TO {role}"], "is a member of pg_write_server_files"),
    "program_runner": (["GRANT pg_execute_server_program TO {role}"], "is a member of pg_execute_server_program"),
    "signaller": (["GRANT pg_signal_backend TO {role}"], "is a member of pg_signal_backend"),
    "through_a_group": (
        [
            "DROP ROLE IF EXISTS sandbox_group",
            "CREATE ROLE sandbox_group NOLOGIN",
            "GRANT pg_read_server_files TO sandbox_group",
            "GRANT sandbox_group TO {role}",
        ],
        "is a member of pg_read_server_files",
    ),
    "role_maker": (["ALTER ROLE {role} CREATEROLE"], "may create roles (CREATEROLE)"),
}


@pytest.mark.parametrize("name", ROLES)
def test_a_role_that_can_do_more_than_read_is_refused(postgres_server, shop, name):
    grants, held = ROLES[name]
    url = postgres_server.create_role(f"sandbox_{name}", *grants)
    result = execute_sql(url, "SELECT 1")
    assert result.category == FORBIDDEN and held in result.error and "\n" not in result.error, result.error
    with PostgresDatabase(url, unsafe_role=True) as db:  # the refusal, nothing else, stops it
        assert db.execute("SELECT 1").rows == [(1,)]


def test_the_role_is_checked_once_per_url(postgres_server, shop, monkeypatch):
    calls = []

    def counted(cursor, role=None):
        calls.append(role)
        return roles.role_problems(cursor, role)

    monkeypatch.setattr(postgres, "role_problems", counted)
    for _ in range(3):
        assert execute_sql(shop, "SELECT 1").ok
    assert len(calls) == 1
    execute_sql(_admin_url(postgres_server), "SELECT 1")
    assert len(calls) == 2


def test_a_check_that_fails_refuses_and_is_tried_again(shop, monkeypatch):
    def broken(cursor, role=None):
        raise psycopg.errors.InternalError("the catalog could not be read")

    monkeypatch.setattr(postgres, "role_problems", broken)
    result = execute_sql(shop, "SELECT 1")
    assert result.category == FORBIDDEN and "cannot check what the role" in result.error
    monkeypatch.setattr(postgres, "role_problems", roles.role_problems)
    assert execute_sql(shop, "SELECT 1").ok


def test_the_override_policy_and_its_switches(postgres_server, shop):
    admin = _admin_url(postgres_server)
    assert postgres.allow_unsafe_role(True) is False
    assert execute_sql(admin, "SELECT COUNT(*) FROM customers").rows == [(5,)]
    with PostgresDatabase(admin, unsafe_role=False) as db:  # a database's own word wins
        assert db.execute("SELECT 1").category == FORBIDDEN
    assert postgres.allow_unsafe_role(False) is True
    assert execute_sql(admin, "SELECT 1").category == FORBIDDEN
    for argv in (["--unsafe-role", "db", "copy", "a", "b"], ["db", "copy", "a", "b", "--unsafe-role"]):
        postgres.allow_unsafe_role(False)
        build_parser().parse_args(argv)
        assert postgres._unsafe_role_allowed is True
    postgres.allow_unsafe_role(False)
    load_run_config(["data.db=x.sqlite"])
    assert postgres._unsafe_role_allowed is False
    load_run_config(["data.unsafe_role=true"])
    assert postgres._unsafe_role_allowed is True


# ---------------------------------------------------------------------- text2sql db role


def _drop_role(server, name: str) -> None:
    with server.admin() as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            conn.execute(f'DROP OWNED BY "{name}"')
            conn.execute(f'DROP ROLE "{name}"')


def test_db_role_creates_a_reader_and_nothing_more(postgres_server, shop, capsys, monkeypatch):
    _drop_role(postgres_server, "sandbox_model")
    monkeypatch.setenv("SANDBOX_PASSWORD", ROLE_PASSWORD)
    code, out, err = run_cli(
        capsys, "db", "role", postgres_server.url("postgres"), "sandbox_model", "--schema", SCHEMA,
        "--statement-timeout", "3s", "--connection-limit", "3", "--password-env", "SANDBOX_PASSWORD",
    )  # fmt: skip
    assert code == 0, err
    url = out.strip()
    assert url == f"postgresql://sandbox_model@{postgres_server.host}:{postgres_server.port}/postgres?schema={SCHEMA}"
    assert ROLE_PASSWORD not in out + err and "~/.pgpass or PGPASSWORD" in err
    assert "temporary files are capped at 1GB" in err
    assert execute_sql(url, "SELECT COUNT(*) FROM customers").rows == [(5,)]
    with postgres_server.admin() as conn:
        limit, config = conn.execute(
            "SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = 'sandbox_model'"
        ).fetchone()
        assert limit == 3 and set(config) == {
            "statement_timeout=3s",
            "default_transaction_read_only=on",
            "temp_file_limit=1GB",  # the admin is a superuser, who alone may cap temporary files
        }
        assert roles.role_problems(conn.cursor(), "sandbox_model") == []
        # Tables the admin makes later are readable too (default privileges).
        conn.execute(f"CREATE TABLE {SCHEMA}.later AS SELECT 1 AS x")
    try:
        assert execute_sql(url, "SELECT x FROM later").rows == [(1,)]
        # Outside the engine too, its sessions are read-only.
        with psycopg.connect(postgres_parts(url)[0]) as conn:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute(f"CREATE TABLE {SCHEMA}.evil (x int)")
    finally:
        with postgres_server.admin() as conn:
            conn.execute(f"DROP TABLE {SCHEMA}.later")


def test_db_role_refuses_an_existing_role_unless_forced(postgres_server, shop, capsys):
    _drop_role(postgres_server, "sandbox_again")
    admin = postgres_server.url("postgres")
    assert run_cli(capsys, "db", "role", admin, "sandbox_again", "--schema", SCHEMA)[0] == 0
    code, _, err = run_cli(capsys, "db", "role", admin, "sandbox_again", "--schema", SCHEMA)
    assert_one_line_error(code, err, "'sandbox_again' exists already", "--force")
    assert run_cli(capsys, "db", "role", admin, "sandbox_again", "--schema", SCHEMA, "--force")[0] == 0


def test_db_role_refuses_when_public_grants_more_and_changes_nothing(postgres_server, shop, capsys):
    _drop_role(postgres_server, "sandbox_public")
    with postgres_server.admin() as conn:
        conn.execute(f"GRANT CREATE ON SCHEMA {SCHEMA} TO PUBLIC")
    try:
        code, _, err = run_cli(
            capsys, "db", "role", postgres_server.url("postgres"), "sandbox_public", "--schema", SCHEMA
        )
        assert_one_line_error(
            code, err, f"holds CREATE on the schema {SCHEMA}", f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC"
        )
    finally:
        with postgres_server.admin() as conn:
            conn.execute(f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC")
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'sandbox_public'").fetchone() is None


def test_db_role_bad_input_is_one_line(postgres_server, shop, capsys, monkeypatch):
    admin = postgres_server.url("postgres")
    monkeypatch.delenv("NO_SUCH_PASSWORD_VAR", raising=False)
    for args, needles in [
        ((admin, "x_role", "--password-env", "NO_SUCH_PASSWORD_VAR"), ("NO_SUCH_PASSWORD_VAR", "not set")),
        ((admin, "x_role", "--statement-timeout", "soon"), ("--statement-timeout", "5s")),
        ((admin, "x_role", "--schema", "no_such_schema"), ("no schema 'no_such_schema'", "--schema")),
        ((admin, "x_role", "--connection-limit", "0"), ("--connection-limit",)),
        ((f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres", "x_role"), ("cannot connect", "server runs")),
        (("shop.sqlite", "x_role"), ("postgresql://",)),
    ]:
        code, _, err = run_cli(capsys, "db", "role", *args)
        assert_one_line_error(code, err, *needles)


# ---------------------------------------------------------------------- nothing survives a query

PROBE = (
    "SELECT pg_backend_pid(), "
    "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), "
    "current_setting('application_name'), "
    "(SELECT count(*) FROM pg_prepared_statements WHERE name = 'left_behind'), "
    "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()), "
    "(SELECT count(*) FROM pg_listening_channels()), "
    "(SELECT count(*) FROM pg_cursors WHERE name = 'left_behind')"
)


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "without_reset"])
def test_a_query_leaves_nothing_on_its_pooled_connection(shop, monkeypatch, reset):
    if not reset:  # the same steps with the reset taken out: the test sees what is left, so it can fail
        monkeypatch.setattr(postgres, "RESET", "SELECT 1")
    with open_database(shop) as db:
        # Model SQL can take session-level advisory locks: they outlive its rolled-back transaction.
        first = db.execute("SELECT pg_backend_pid(), pg_advisory_lock(42), pg_advisory_lock_shared(43)")
        assert first.ok, first.error
        # What a read-only query cannot make, put on the session directly, then one query run with it.
        db._conn.execute("SET application_name = 'left-behind'")
        db._conn.execute("PREPARE left_behind AS SELECT 1")
        db._conn.execute("CREATE TEMP TABLE left_behind (x int)")
        db._conn.execute("LISTEN left_behind")
        with db._conn.transaction():
            db._conn.execute("DECLARE left_behind CURSOR WITH HOLD FOR SELECT 1")
        assert db.execute("SELECT 1").ok
        second = db.execute(PROBE)
        db._conn.execute("DISCARD ALL")  # the pool gets it back clean, reset or not
    assert second.ok, second.error
    pid, *left = second.rows[0]
    assert pid == first.rows[0][0]  # the same session
    if reset:
        assert left == [0, "", 0, 0, 0, 0]
    else:
        assert left == [2, "left-behind", 1, 1, 1, 1]


def test_a_connection_that_cannot_be_reset_is_replaced(shop, monkeypatch):
    with open_database(shop) as db:
        monkeypatch.setattr(postgres, "RESET", "DISCARD NOTHING")  # fails on the server
        first = db.execute("SELECT pg_backend_pid(), pg_advisory_lock(42)")
        assert first.ok and db._conn is None
        monkeypatch.setattr(postgres, "RESET", "DISCARD ALL")
        second = db.execute(PROBE)
    assert second.ok, second.error
    assert second.rows[0][0] != first.rows[0][0] and second.rows[0][1] == 0


# ---------------------------------------------------------------------- memory and time


def test_a_300_mb_value_never_reaches_the_client(shop):
    measured = peak_memory(shop, "SELECT repeat('x', 300000000)")
    assert measured["grew_mb"] < 32, measured  # the value would be 300 MB in libpq and again in Python
    assert measured["category"] == RUNTIME and "a row of the result holds more than 16 MB" in measured["error"]


def test_many_large_rows_stop_at_the_result_budget(shop):
    measured = peak_memory(shop, "SELECT repeat('x', 1000000) FROM generate_series(1, 300)")
    assert measured["category"] == RUNTIME and "more than 64 MB" in measured["error"]
    # The budget, plus a row as received and as Python values, plus bookkeeping.
    assert measured["grew_mb"] < MAX_RESULT_BYTES / MB + 2 * postgres.MAX_ROW_BYTES / MB + 16, measured


def test_a_long_query_is_stopped_at_its_timeout(shop):
    with open_database(shop) as db:
        result = db.execute(FOREVER, timeout=2)  # never ends by itself: a result at all means it was stopped
        assert result.category == TIMEOUT, result
        assert db.execute("SELECT COUNT(*) FROM orders").ok  # the connection serves the next query


def test_rows_keep_their_order_names_and_types_through_the_measuring_wrapper(shop):
    result = execute_sql(
        shop,
        "SELECT customers.id, name AS id, amount FROM customers JOIN orders ON customer_id = customers.id "
        "ORDER BY amount DESC LIMIT 3 -- a trailing comment",
    )
    assert result.ok, result.error
    assert result.columns == ["id", "id", "amount"] and [r[2] for r in result.rows] == [420.0, 409.5, 399.0]
    empty = execute_sql(shop, "SELECT name, city FROM customers WHERE false")
    assert empty.ok and empty.columns == ["name", "city"] and empty.rows == []


def test_only_one_query_runs_even_as_a_superuser(postgres_server, shop):
    admin = _admin_url(postgres_server)
    with PostgresDatabase(admin, unsafe_role=True) as db:  # the worst case: the role allows anything
        before = db.execute("SELECT COUNT(*) FROM orders").rows
        for sql in [
            "DELETE FROM orders",
            "SELECT 1; DELETE FROM orders",
            "SELECT 1) AS x; DELETE FROM orders; SELECT * FROM (SELECT 1",
            "SELECT 1) AS x; SET statement_timeout = 0; SELECT * FROM (SELECT 1",
            "WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d",
            "SELECT set_config('default_transaction_read_only', 'off', false)",
        ]:
            db.execute(sql)
        assert db.execute("DELETE FROM orders").ok is False
        assert db.execute("SELECT COUNT(*) FROM orders").rows == before
        assert db.execute("SHOW statement_timeout").category is not None  # not a query: refused
        settings = db.execute(
            "SELECT current_setting('statement_timeout'), current_setting('default_transaction_read_only')"
        )
        assert settings.rows == [("5s", "off")]  # the query's own timeout (5 s), and no setting above stayed
