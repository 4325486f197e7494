"""Run untrusted SQL on any database target (a SQLite or DuckDB file, a PostgreSQL URL; see
`targets`) with the same guarantees: one statement, read-only, a timeout that stops it, row and byte
caps, and every failure returned as data (`ExecutionResult`), never raised.

    with open_database("postgresql://reader@db/shop") as db:
        db.execute("SELECT COUNT(*) FROM orders", timeout=5)
    execute_sql("shop.sqlite", "SELECT ...")     # opens, runs, closes

Each engine (`sqlite`, `duckdb_engine`, `postgres`) also reads what its database holds
(`catalog()`, `sample_rows()`) for schema text.

A user who may read only some tables, or some of their columns, gets `permissions`
(`text2sql.sql.permissions`): every query is then refused that reads anything else, on every engine.

    allowed = Permissions.from_cli(["shop:customers,orders(id,amount)"]).get("shop")
    with open_database("shop.duckdb", permissions=allowed) as db:
        db.execute("SELECT city FROM customers")      # forbidden: names the hidden table or column
    execute_sql("shop.duckdb", sql, permissions=allowed)

`data.schema.schema_text(target, permissions=...)` shows the model the same tables and columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from text2sql.sql.catalog import Schema
from text2sql.sql.guard import check_query
from text2sql.sql.permissions import Access, DatabasePermissions
from text2sql.sql.results import (
    CATEGORIES,
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT,
    FORBIDDEN,
    MAX_RESULT_BYTES,
    MAX_VALUE_BYTES,
    NO_DATABASE,
    RUNTIME,
    SCHEMA,
    SYNTAX,
    TIMEOUT,
    ExecutionResult,
)
from text2sql.sql.sqlite import SQLiteDatabase
from text2sql.sql.targets import dialect_of, local_path

__all__ = [
    "CATEGORIES",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_TIMEOUT",
    "FORBIDDEN",
    "MAX_RESULT_BYTES",
    "MAX_VALUE_BYTES",
    "NO_DATABASE",
    "RUNTIME",
    "SCHEMA",
    "SYNTAX",
    "TIMEOUT",
    "Database",
    "ExecutionResult",
    "compile_sql",
    "execute_many",
    "execute_sql",
    "open_database",
    "try_open",
]


class Database(Protocol):
    """An open database of any engine."""

    dialect: str
    target: str

    @property
    def access(self) -> Access | None:
        """The permissions queries run under (None: every table may be read); `restrict` sets them."""
        ...

    def execute(
        self, sql: str, *, timeout: float = ..., max_rows: int = ..., max_bytes: int = ...
    ) -> ExecutionResult: ...

    def catalog(self) -> Schema: ...

    def sample_rows(self, tables: list[str], limit: int) -> dict[str, list[tuple]]: ...

    def restrict(self, permissions: DatabasePermissions) -> Access: ...

    def close(self) -> None: ...

    def __enter__(self) -> Database: ...

    def __exit__(self, *exc_info: object) -> None: ...


def open_database(
    target: str | Path, *, max_steps: int | None = None, permissions: DatabasePermissions | None = None
) -> Database:
    """An open, read-only `Database` for `target`. Raises FileNotFoundError for a missing file,
    ConnectionError (one line, with the fix) for a server that cannot be reached, and
    MissingExtraError when the engine's package is not installed. `max_steps`: SQLite's per-query
    budget of virtual-machine steps (other engines have none and keep the wall-clock timeout).
    `permissions`: the tables and columns queries may read (None: all); a ConfigError names those
    the database does not have."""
    db = _open(str(target), max_steps)
    if permissions is not None:
        try:
            db.restrict(permissions)
        except BaseException:
            db.close()
            raise
    return db


def _open(text: str, max_steps: int | None) -> Database:
    dialect = dialect_of(text)
    if dialect == "postgres":
        from text2sql.sql.postgres import PostgresDatabase  # psycopg: an optional extra

        return PostgresDatabase(text)
    if dialect == "duckdb":
        from text2sql.sql.duckdb_engine import DuckDBDatabase  # duckdb: an optional extra

        return DuckDBDatabase(local_path(text))
    return SQLiteDatabase(local_path(text), max_steps=max_steps)


def try_open(
    target: str | Path, *, max_steps: int | None = None, permissions: DatabasePermissions | None = None
) -> Database | ExecutionResult:
    """A database, or the `no_database` result to return instead of raising (permissions that name
    what the database lacks still raise their ConfigError: the fix is the owner's, not the query's)."""
    try:
        return open_database(target, max_steps=max_steps, permissions=permissions)
    except (OSError, ConnectionError) as exc:
        return ExecutionResult(error=str(exc), category=NO_DATABASE)
    except Exception as exc:  # sqlite3 / duckdb errors of a file that is no database
        if type(exc).__module__.split(".")[0] in ("sqlite3", "duckdb", "_duckdb", "psycopg"):
            return ExecutionResult(error=str(exc), category=NO_DATABASE)
        raise


def execute_sql(
    target: str | Path,
    sql: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = MAX_RESULT_BYTES,
    permissions: DatabasePermissions | None = None,
) -> ExecutionResult:
    """Run one untrusted SQL statement read-only on the database `target`.

    Never raises for bad SQL or a missing database: the result carries the error and its category.
    Opens its own connection, so it is safe to call from several threads at once. `permissions`:
    the tables and columns it may read (see `open_database`).
    """
    db = try_open(target, permissions=permissions)
    if isinstance(db, ExecutionResult):
        return db
    with db:
        return db.execute(sql, timeout=timeout, max_rows=max_rows, max_bytes=max_bytes)


def execute_many(
    target: str | Path,
    sqls: Iterable[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    permissions: DatabasePermissions | None = None,
) -> list[ExecutionResult]:
    """`execute_sql` for many statements on one database, over one connection."""
    db = try_open(target, permissions=permissions)
    if isinstance(db, ExecutionResult):
        return [ExecutionResult(error=db.error, category=db.category) for _ in sqls]
    with db:
        return [db.execute(sql, timeout=timeout, max_rows=max_rows) for sql in sqls]


def compile_sql(
    target: str | Path,
    sql: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    permissions: DatabasePermissions | None = None,
) -> ExecutionResult:
    """Whether `sql` would run on `target`, without running it: tables and columns resolved and
    the read-only rules applied (SQLite: `EXPLAIN`; the others plan it under `LIMIT 0`), and the
    `permissions` when given. The result has no rows, only the error when there is one."""
    text = (sql or "").strip().rstrip(";").rstrip()
    dialect = dialect_of(str(target))
    if dialect == "sqlite":
        probe = f"EXPLAIN {text}"
    else:
        refused = check_query(text, dialect)
        if refused is not None:
            return ExecutionResult(error=refused[0], category=refused[1])
        probe = f"SELECT * FROM ({text}) AS text2sql_compiled LIMIT 0"
    result = execute_sql(target, probe, timeout=timeout, max_rows=1, permissions=permissions)
    return ExecutionResult(error=result.error, category=result.category, elapsed=result.elapsed)
