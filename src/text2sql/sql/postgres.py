"""PostgreSQL: untrusted SQL on a server that it cannot change, and what a schema of it holds.

Each query runs in a READ ONLY transaction that is always rolled back, with `statement_timeout`
set in it, through a server-side cursor (`DECLARE ... CURSOR FOR` accepts one query and nothing
else). `guard.check_query` refuses writes, several statements and functions that reach outside the
database (files, `set_config`, `dblink`, `pg_sleep`, ...) before the server sees them; rows come in
batches sized to stay within the result byte budget. A role that could write, or a superuser, gets
one warning per server: grant the model's connection read access only.

Connections come from a small pool per URL (`psycopg_pool`, when installed), so a server answering
many requests opens few. Credentials come from libpq's usual places (PGPASSWORD, ~/.pgpass, ...),
never from a saved config. Needs `pip install 'text2sql[postgres]'`.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from text2sql.errors import MissingExtraError
from text2sql.sql.catalog import Column, ForeignKey, Schema, Table
from text2sql.sql.guard import check_query
from text2sql.sql.results import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT,
    FORBIDDEN,
    MAX_RESULT_BYTES,
    NO_DATABASE,
    RUNTIME,
    SCHEMA,
    SYNTAX,
    TIMEOUT,
    ExecutionResult,
    limited_result,
    too_large,
)
from text2sql.sql.targets import name_of, postgres_parts, redact

log = logging.getLogger("text2sql.sql")

CONNECT_TIMEOUT = 5  # seconds: a server that does not answer is an error, never a hung request
POOL_SIZE = 4  # connections per server URL at most
_POOL_WAIT = 1.0  # seconds to wait for a pooled connection before connecting directly
_MAX_FETCH = 500  # rows per round trip at most
_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()
_warned: set[str] = set()


def require_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingExtraError("a PostgreSQL database", "psycopg", "postgres") from None
    return psycopg


def categorize(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "QueryCanceled":
        return TIMEOUT
    if name in ("SyntaxError", "InvalidCursorDefinition"):
        return SYNTAX
    if name in ("UndefinedTable", "UndefinedColumn", "UndefinedFunction", "AmbiguousColumn", "InvalidSchemaName"):
        return SCHEMA
    if name in ("ReadOnlySqlTransaction", "InsufficientPrivilege", "FeatureNotSupported"):
        return FORBIDDEN
    if name in ("OperationalError", "ConnectionTimeout", "PoolTimeout"):
        return NO_DATABASE
    return RUNTIME


def connection_error(target: str, exc: Exception) -> str:
    """One line for a server that cannot be used, with the fix."""
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    lowered = text.lower()
    if "password" in lowered or "authentication" in lowered:
        fix = "set PGPASSWORD or ~/.pgpass for this user"
    elif "does not exist" in lowered:
        fix = "check the database and user names in the URL"
    else:
        fix = "check that the server runs and the host and port in the URL"
    return f"cannot connect to {redact(target)} ({text}); {fix}"


def _pool(url: str, create: bool) -> Any:
    """The connection pool of one server URL: None until a first connection succeeded (so that a
    wrong password or a server that is away is reported at once, not after a pool's wait), or
    without psycopg_pool."""
    try:
        from psycopg_pool import ConnectionPool
    except ImportError:
        return None
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None and create:
            pool = ConnectionPool(
                url,
                min_size=0,
                max_size=POOL_SIZE,
                kwargs={"connect_timeout": CONNECT_TIMEOUT, "autocommit": False},
                check=ConnectionPool.check_connection,  # a restarted server leaves dead connections behind
                open=True,
            )
            _pools[url] = pool
        return pool


class PostgresDatabase:
    """One connection (from the URL's pool) to one schema of a PostgreSQL server."""

    dialect = "postgres"

    def __init__(self, target: str):
        self._psycopg = require_psycopg()
        self.target = target
        self.url, self.schema = postgres_parts(target)
        self._pool = _pool(self.url, create=False)
        conn = None
        if self._pool is not None:
            try:
                conn = self._pool.getconn(timeout=_POOL_WAIT)
            except Exception:  # psycopg_pool.PoolTimeout: all busy, or the server is away; connect to learn which
                self._pool = None
        if conn is None:
            conn = self._connect()
            _pool(self.url, create=True)  # it answers: later connections come from the pool
        self._conn: Any = conn
        self._conn.read_only = True  # every transaction on it: BEGIN READ ONLY
        self._warn_if_writable()

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT, autocommit=False)
        except self._psycopg.Error as exc:
            raise ConnectionError(connection_error(self.target, exc)) from None

    # ------------------------------------------------------------------ queries

    def _begin(self, cursor: Any, timeout: float) -> None:
        # SET LOCAL, both in one round trip: they end with the transaction.
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true), set_config('search_path', %s, true)",
            (str(max(1, int(timeout * 1000))), self._psycopg.sql.Identifier(self.schema).as_string(self._conn)),
        )

    def execute(
        self,
        sql: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> ExecutionResult:
        """Run one query and return its first `max_rows` rows; never raises for bad SQL."""
        start = time.monotonic()

        def failure(message: str, category: str) -> ExecutionResult:
            return ExecutionResult(error=message, category=category, elapsed=time.monotonic() - start)

        text = (sql or "").strip().rstrip(";").rstrip()
        if not text:
            return failure("empty SQL", SYNTAX)
        refused = check_query(text, self.dialect)
        if refused is not None:
            return failure(*refused)
        # statement_timeout stops the query on the server; the watchdog cancels it from here when
        # the server itself does not answer.
        watchdog = threading.Timer(timeout + 1.0, self._conn.cancel_safe)
        watchdog.daemon = True
        watchdog.start()
        try:
            with self._conn.transaction(force_rollback=True):
                with self._conn.cursor() as setup:
                    self._begin(setup, timeout)
                with self._conn.cursor(name="text2sql_query") as cursor:
                    cursor.execute(text)
                    columns = [d.name for d in cursor.description or []]
                    rows, over = self._fetch(cursor, max_rows, max_bytes)
        except self._psycopg.Error as exc:
            category = categorize(exc)
            if category == TIMEOUT or time.monotonic() - start >= timeout:
                return failure(f"query ran longer than {timeout:g} s and was stopped", TIMEOUT)
            return failure(_first_line(exc), category)
        finally:
            watchdog.cancel()
        if over:
            return failure(too_large(max_bytes), RUNTIME)
        return limited_result(columns, rows, max_rows, time.monotonic() - start)

    @staticmethod
    def _fetch(cursor: Any, max_rows: int, max_bytes: int) -> tuple[list[tuple], bool]:
        """Rows in batches sized from the bytes seen so far, so that one batch stays well inside the
        budget: a result of huge values comes one row at a time."""
        rows: list[tuple] = []
        size, batch, largest = 0, 1, 1
        while len(rows) <= max_rows:
            chunk = cursor.fetchmany(batch)
            if not chunk:
                break
            for row in chunk:
                row_bytes = sum(len(v) for v in row if isinstance(v, (str, bytes, bytearray, memoryview)))
                size += row_bytes
                largest = max(largest, row_bytes)
                if size > max_bytes:
                    return rows, True
                rows.append(tuple(row))
            batch = max(1, min(_MAX_FETCH, (max_bytes - size) // (4 * largest), max_rows + 1 - len(rows)))
        return rows, False

    def _warn_if_writable(self) -> None:
        if self.url in _warned:
            return
        _warned.add(self.url)
        try:
            with self._conn.transaction(force_rollback=True), self._conn.cursor() as cursor:
                cursor.execute(
                    "SELECT rolsuper OR EXISTS (SELECT 1 FROM information_schema.table_privileges "
                    "WHERE grantee = current_user AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')) "
                    "FROM pg_roles WHERE rolname = current_user"
                )
                row = cursor.fetchone()
        except self._psycopg.Error:
            return
        if row and row[0]:
            log.warning(
                "the role connecting to %s could write (or is a superuser); text2sql runs every query read-only, "
                "but a role with read access only is safer for a model's SQL",
                redact(self.target),
            )

    # ------------------------------------------------------------------ what the schema holds

    def _rows(self, query: str, params: tuple = ()) -> list[tuple]:
        with self._conn.transaction(force_rollback=True), self._conn.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchall()

    def catalog(self) -> Schema:
        """Tables and views of the schema in creation order, their columns (typed as PostgreSQL
        writes them), primary and foreign keys."""
        tables: dict[str, Table] = {}
        for name, column, ctype in self._rows(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY c.oid, a.attnum",
            (self.schema,),
        ):
            tables.setdefault(name, Table(name)).columns.append(Column(column, ctype))
        for kind, table, columns, ref_table, ref_columns in self._rows(
            "SELECT con.contype, c.relname, "
            "ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, i) "
            "      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i), "
            "rc.relname, "
            "ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, i) "
            "      JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i) "
            "FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_class rc ON rc.oid = con.confrelid "
            "WHERE n.nspname = %s AND con.contype IN ('p', 'f') ORDER BY c.oid, con.oid",
            (self.schema,),
        ):
            if table not in tables:
                continue
            if kind == "p":
                tables[table].primary_key = list(columns)
            else:
                tables[table].foreign_keys.append(ForeignKey(tuple(columns), ref_table, tuple(ref_columns or ())))
        return Schema(list(tables.values()), db_id=name_of(self.target), db_path=self.target, dialect=self.dialect)

    def sample_rows(self, tables: list[str], limit: int) -> dict[str, list[tuple]]:
        """The first `limit` rows of each table, ordered by every column: the same rows every time
        (by none where a column's type has no order, such as json)."""
        sql = self._psycopg.sql
        out = {}
        for name in tables:
            table = sql.Identifier(self.schema, name)
            with self._conn.transaction(force_rollback=True), self._conn.cursor() as cursor:
                cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table))
                order = sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(cursor.description or [])))
                query = sql.SQL("SELECT * FROM {} ORDER BY {} LIMIT {}").format(table, order, sql.Literal(limit))
                try:
                    with self._conn.transaction():
                        cursor.execute(query)
                except self._psycopg.errors.UndefinedFunction:  # no ordering for some column type
                    cursor.execute(sql.SQL("SELECT * FROM {} LIMIT {}").format(table, sql.Literal(limit)))
                out[name] = [tuple(r) for r in cursor.fetchall()]
        return out

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._pool is not None:
            self._pool.putconn(conn)
        else:
            conn.close()

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
