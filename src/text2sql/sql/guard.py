"""A first look at untrusted SQL before a server engine (PostgreSQL, DuckDB) sees it: exactly one
statement, a query (SELECT / WITH / set operations and nothing that writes), and no function that
reaches outside the database (files, other servers, settings, other SQL strings, sleeps).

This is one layer of several, not the one the guarantees rest on: each engine also runs the query in
a read-only transaction or connection, with a timeout and row caps (see `postgres`, `duckdb_engine`).
SQL that sqlglot cannot parse is left to the engine, whose parser is the authority and whose own
rules still apply (one statement per call, read-only).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from text2sql.sql.results import FORBIDDEN, SYNTAX

# Functions that read or write files, reach other servers, change settings, run SQL given as a
# string, or only wait: no question about the data needs them.
_DENIED = {
    "postgres": {
        "pg_read_file",
        "pg_read_binary_file",
        "pg_ls_dir",
        "pg_stat_file",
        "pg_ls_logdir",
        "pg_ls_waldir",
        "pg_ls_tmpdir",
        "pg_ls_archive_statusdir",
        "lo_import",
        "lo_export",
        "lo_get",
        "lo_put",
        "lo_open",
        "lo_from_bytea",
        "lo_unlink",
        "lo_create",
        "lo_truncate",
        "dblink",
        "dblink_exec",
        "dblink_connect",
        "set_config",
        "pg_sleep",
        "pg_sleep_for",
        "pg_sleep_until",
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_promote",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_notify",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "query_to_xmlschema",
        "cursor_to_xml",
        "pg_advisory_lock",
        "pg_advisory_xact_lock",
        "pg_try_advisory_lock",
        "txid_current",
        "nextval",
        "setval",
    },
    "duckdb": {
        "glob",
        "sniff_csv",
        "query",
        "query_table",
        "getenv",
        "duckdb_secrets",
        "install",
        "load",
        "sqlite_attach",
        "postgres_attach",
        "parquet_metadata",
        "parquet_schema",
        "parquet_file_metadata",
        "parquet_kv_metadata",
    },
}
# DuckDB's file readers and scanners of other systems, by name pattern.
_DENIED_PREFIXES = {"duckdb": ("read_",), "postgres": ()}
_DENIED_SUFFIXES = {"duckdb": ("_scan",), "postgres": ()}
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Into)


def _function_name(node: exp.Anonymous | exp.Func) -> str:
    name = node.name if isinstance(node, exp.Anonymous) else (node.sql_name() if isinstance(node, exp.Func) else "")
    return (name or "").lower().rsplit(".", 1)[-1]


def _denied(name: str, dialect: str) -> bool:
    return (
        name in _DENIED.get(dialect, set())
        or any(name.startswith(p) for p in _DENIED_PREFIXES.get(dialect, ()))
        or any(name.endswith(s) for s in _DENIED_SUFFIXES.get(dialect, ()))
    )


def check_query(sql: str, dialect: str) -> tuple[str, str] | None:
    """(error, category) when `sql` must not run on a `dialect` database; None when the engine may
    run it (which still runs it read-only)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (SqlglotError, RecursionError, ValueError):
        return None  # the engine's parser decides; its read-only rules still hold
    if not statements:
        return "empty SQL", SYNTAX
    if len(statements) > 1:
        return f"{len(statements)} statements; only one query is run", FORBIDDEN
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"a {statement.key.upper()} statement; only queries are allowed", FORBIDDEN
    for node in statement.walk():
        if isinstance(node, _WRITES):
            return f"{node.key.upper()} inside a query; only reading is allowed", FORBIDDEN
        if isinstance(node, (exp.Anonymous, exp.Func)):
            name = _function_name(node)
            if name and _denied(name, dialect):
                return f"function {name}() reaches outside the database; it is not allowed", FORBIDDEN
    return None
