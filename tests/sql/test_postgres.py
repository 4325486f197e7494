"""PostgreSQL targets fail in one line that names the fix: a server that is not there, a wrong
password, a database or extra that is missing, a scheme text2sql does not know. A role that may only
read runs model SQL; a superuser is refused unless allowed (more in test_sandbox_postgres)."""

from __future__ import annotations

import builtins

import pytest

from cli_support import assert_one_line_error, run_cli
from engines_support import shop_on
from pg_support import _free_port
from text2sql.data.schema import read_schema
from text2sql.errors import ConfigError, DataError, MissingExtraError
from text2sql.sql import postgres
from text2sql.sql.execution import FORBIDDEN, NO_DATABASE, execute_sql, open_database
from text2sql.sql.targets import dialect_of


def test_a_server_that_is_not_there(postgres_server):
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres"
    result = execute_sql(url, "SELECT 1")
    assert result.category == NO_DATABASE
    assert "check that the server runs" in result.error and "\n" not in result.error
    with pytest.raises(DataError, match="cannot connect to postgresql://postgres@127.0.0.1"):
        read_schema(url)


def test_a_wrong_password(postgres_server, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "wrong")  # before ~/.pgpass (PGPASSFILE), as libpq reads them
    with pytest.raises(ConnectionError) as err:
        # A URL of its own: a pool of the plain reader URL would hand out a connection made earlier.
        open_database(postgres_server.url(user="reader") + "?application_name=text2sql_fresh")
    assert "password authentication failed" in str(err.value) and "set PGPASSWORD or ~/.pgpass" in str(err.value)
    assert "wrong" not in str(err.value)


def test_a_missing_database(postgres_server):
    result = execute_sql(postgres_server.url("no_such_db"), "SELECT 1")
    assert result.category == NO_DATABASE
    assert (
        'database "no_such_db" does not exist' in result.error and "check the database and user names" in result.error
    )


def test_a_password_in_a_url_is_never_printed(postgres_server):
    url = f"postgresql://postgres:hunter2@127.0.0.1:{_free_port()}/postgres"
    result = execute_sql(url, "SELECT 1")
    assert "hunter2" not in result.error and "***" in result.error


def test_the_missing_extra_is_named(monkeypatch):
    real_import = builtins.__import__

    def no_psycopg(name, *args, **kwargs):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psycopg)
    with pytest.raises(MissingExtraError, match=r"pip install 'text2sql\[postgres\]'"):
        postgres.require_psycopg()


def test_unknown_and_unsupported_schemes():
    with pytest.raises(ConfigError, match="MySQL is not supported yet"):
        dialect_of("mysql://me@host/shop")
    with pytest.raises(ConfigError, match="unknown database URL scheme 'oracle://'"):
        dialect_of("oracle://me@host/shop")


def test_cli_lines_for_a_server_that_is_away(postgres_server, capsys, tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/postgres"
    code, _, err = run_cli(capsys, "db", "copy", "bundled", url + "?schema={db_id}")
    assert_one_line_error(code, err, "cannot connect to", "check that the server runs")
    code, _, err = run_cli(capsys, "db", "copy", "bundled", "mysql://me@host/x?schema={db_id}")
    assert_one_line_error(code, err, "MySQL is not supported yet")


def test_a_reader_role_reads_and_a_superuser_is_refused_unless_allowed(postgres_server, tmp_path, monkeypatch):
    monkeypatch.setattr(postgres, "_unsafe_role_allowed", False)
    reader_url = shop_on("postgres", tmp_path, postgres_server, schema="roles_shop")
    admin_url = postgres_server.url("postgres", schema="roles_shop")
    assert execute_sql(reader_url, "SELECT COUNT(*) FROM customers").rows == [(5,)]
    refused = execute_sql(admin_url, "SELECT 1")
    assert refused.category == FORBIDDEN and "is a superuser" in refused.error and "--unsafe-role" in refused.error
    with postgres.PostgresDatabase(admin_url, unsafe_role=True) as db:  # the superuser, on purpose
        assert db.execute("SELECT COUNT(*) FROM customers").rows == [(5,)]
