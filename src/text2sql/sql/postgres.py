"""PostgreSQL: untrusted SQL on a server that it cannot change, and what a schema of it holds.

Layers, each meant to hold should another fail:

- the role: model SQL runs only on a role that can read and nothing else (`roles.role_problems`:
  no superuser, no writes, no CREATE, no owned objects, no pg_read_server_files and the like),
  checked once per URL and process; `text2sql db role` creates such a role. `allow_unsafe_role`
  (`--unsafe-role`, `data.unsafe_role`) or `PostgresDatabase(unsafe_role=True)` lifts the refusal;
- `guard.check_query` refuses what is no single read-only query before the server sees it, and
  with permissions (`restrict`) a query that reads a table or column they hide: the role may hold
  more grants than the user's permissions, which narrow it;
- each query runs in a READ ONLY transaction that is always rolled back, with `statement_timeout`
  set in it, wrapped as a subquery (`wrap`: only a query can stand there, and the extended protocol
  takes one statement) that has the server measure each row and refuse one over MAX_ROW_BYTES
  before sending it: a 300 MB value never leaves the server. Rows come one at a time and are
  counted against the result budget, and reading stops (the query is cancelled) at the row cap;
- after each query the session is reset (`DISCARD ALL`: advisory locks, settings, prepared
  statements, temporary tables, LISTEN, cursors), so that nothing one query leaves behind on a
  pooled connection reaches the next.

Connections come from a small pool per URL (`psycopg_pool`, when installed), so a server answering
many requests opens few. Credentials come from libpq's usual places (PGPASSWORD, ~/.pgpass, ...),
never from a saved config. Needs `pip install 'text2sql[postgres]'`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from text2sql.errors import MissingExtraError, first_line
from text2sql.sql.catalog import Column, ForeignKey, Schema, Table
from text2sql.sql.functions import POSTGRES_DEFINED, defined_here, reviewed_extensions
from text2sql.sql.guard import check_query
from text2sql.sql.permissions import Access, DatabasePermissions
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
    Attempt,
    ExecutionResult,
    fetch_limited,
    limited_result,
    timed_out,
    too_large,
)
from text2sql.sql.roles import describe, role_problems
from text2sql.sql.targets import name_of, postgres_parts, redact

log = logging.getLogger("text2sql.sql")

CONNECT_TIMEOUT = 5  # seconds: a server that does not answer is an error, never a hung request
POOL_SIZE = 4  # connections per server URL at most
_POOL_WAIT = 1.0  # seconds to wait for a pooled connection before connecting directly
# Largest row the server sends, as text, in bytes: a bigger one is refused on the server before it
# is sent. Rows come one at a time and are counted, so a query's memory here stays within the result
# budget plus about twice this (the row as received, and as Python values).
MAX_ROW_BYTES = 16 * 2**20
_GRACE = 0.5  # seconds past the timeout before the query is cancelled from here (statement_timeout comes first)
# Run after every query, outside its transaction: ends everything a session can keep (advisory locks,
# session settings, prepared statements, temporary tables, LISTEN, WITH HOLD cursors, plans).
RESET = "DISCARD ALL"
# Marks the error the wrapped query raises for a row over MAX_ROW_BYTES.
_ROW_TOO_LARGE = "text2sql row size"

_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()
_unsafe_role_allowed = False
_role_verdicts: dict[str, str | None] = {}  # URL -> what its role holds beyond reading (None: a reader)
_role_lock = threading.Lock()
_defined: dict[str, frozenset[str]] = {}  # URL and schema -> function names the schema defines (`_defined`)


def allow_unsafe_role(allow: bool = True) -> bool:
    """Process-wide: whether model SQL may run on a role that can do more than read (a superuser, a
    role that can write...). Off unless `--unsafe-role` or `data.unsafe_role` turns it on; a
    `PostgresDatabase(unsafe_role=...)` decides for itself. Returns the previous setting."""
    global _unsafe_role_allowed
    previous, _unsafe_role_allowed = _unsafe_role_allowed, bool(allow)
    return previous


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
    text = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
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
                kwargs={"connect_timeout": CONNECT_TIMEOUT, "autocommit": True},
                check=ConnectionPool.check_connection,  # a restarted server leaves dead connections behind
                open=True,
            )
            _pools[url] = pool
        return pool


def wrap(sql: str, max_row_bytes: int) -> str:
    """`sql` as a subquery whose rows the server measures before it sends them: one column more, NULL
    while a row (as text) holds at most `max_row_bytes`, an error past them. Only a query can stand in
    FROM (...), and the extended protocol takes one statement, so nothing but one query runs. The
    newline keeps a trailing `--` comment from hiding the closing parenthesis."""
    size = "octet_length(text2sql_query::text)"
    # The error is a failed cast of a text that holds the size: not a constant, so the planner cannot
    # raise it before any row is read.
    return (
        f"SELECT text2sql_query.*, CASE WHEN {size} > {int(max_row_bytes)} "
        f"THEN ('{_ROW_TOO_LARGE} ' || {size})::int END FROM (\n{sql}\n) AS text2sql_query"
    )


class PostgresDatabase:
    """One connection (from the URL's pool) to one schema of a PostgreSQL server. `unsafe_role`:
    run model SQL even on a role that can do more than read (None: as `allow_unsafe_role` says)."""

    dialect = "postgres"

    def __init__(self, target: str, *, unsafe_role: bool | None = None):
        self._psycopg = require_psycopg()
        self.target = target
        self.url, self.schema = postgres_parts(target)
        self.unsafe_role = unsafe_role
        self._pool = _pool(self.url, create=False)
        self._conn: Any = self._connection()
        self._closed = False
        self.access: Access | None = None

    def restrict(self, permissions: DatabasePermissions) -> Access:
        """From now on, queries read only what `permissions` allow (the guard checks each one). Raises
        a one-line ConfigError naming a table or column the schema does not have."""
        self.access = permissions.bind(self.catalog(), schema_name=self.schema)
        return self.access

    def _connection(self) -> Any:
        conn = None
        if self._pool is not None:
            try:
                conn = self._pool.getconn(timeout=_POOL_WAIT)
            except Exception:  # psycopg_pool.PoolTimeout: all busy, or the server is away; connect to learn which
                self._pool = None
        if conn is None:
            conn = self._connect()
            self._pool = None  # this one is closed, not returned
            _pool(self.url, create=True)  # it answers: later connections come from the pool
        # Autocommit outside `transaction()` blocks, so that the reset runs outside any transaction;
        # every block is BEGIN READ ONLY.
        conn.autocommit = True
        conn.read_only = True
        return conn

    def _live(self) -> Any:
        """The connection, replaced first when the last reset failed. Raises ConnectionError."""
        if self._conn is None:
            if self._closed:
                raise ConnectionError(f"the connection to {redact(self.target)} is closed")
            self._conn = self._connection()
        return self._conn

    def _connect(self) -> Any:
        try:
            return self._psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT, autocommit=True)
        except self._psycopg.Error as exc:
            raise ConnectionError(connection_error(self.target, exc)) from None

    # ------------------------------------------------------------------ the role

    def _role_refusal(self) -> str | None:
        """Why model SQL may not run on this connection's role, or None (see `allow_unsafe_role`).
        The role is checked once per URL and process; a check that fails refuses, and is tried again
        next time."""
        allowed = _unsafe_role_allowed if self.unsafe_role is None else self.unsafe_role
        if allowed:
            return None
        with _role_lock:
            if self.url not in _role_verdicts:
                try:
                    conn = self._live()
                    with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                        problems = role_problems(cursor)
                        user = cursor.execute("SELECT current_user").fetchone()[0]
                except self._psycopg.Error as exc:
                    return (
                        f"cannot check what the role connecting to {redact(self.target)} may do ({first_line(exc)}); "
                        "model SQL runs only on a role that can read and nothing else"
                    )
                _role_verdicts[self.url] = f"the role {user} {describe(problems)}" if problems else None
            verdict = _role_verdicts[self.url]
        if verdict is None:
            return None
        return (
            f"{verdict} on {redact(self.target)}, so model SQL does not run there; connect as a role that can "
            "only read (`text2sql db role URL NAME` creates one) or pass --unsafe-role (data.unsafe_role: true) "
            "to run it anyway"
        )

    # ------------------------------------------------------------------ queries

    def _begin(self, cursor: Any, timeout: float) -> None:
        # SET LOCAL, both in one round trip: they end with the transaction.
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true), set_config('search_path', %s, true)",
            (str(max(1, int(timeout * 1000))), self._psycopg.sql.Identifier(self.schema).as_string(cursor.connection)),
        )

    def execute(
        self,
        sql: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> ExecutionResult:
        """Run one query and return its first `max_rows` rows; never raises for bad SQL. Refused
        (`forbidden`) on a role that can do more than read, unless allowed (see `allow_unsafe_role`)."""
        attempt = Attempt(sql)
        failure, text = attempt.failure, attempt.text
        if (empty := attempt.empty()) is not None:
            return empty
        try:
            conn = self._live()
        except ConnectionError as exc:
            return failure(str(exc), NO_DATABASE)
        refusal = self._role_refusal()
        if refusal is not None:
            return failure(refusal, FORBIDDEN)
        try:
            defined = self._defined()
        except self._psycopg.Error as exc:
            return failure(f"cannot read the functions {redact(self.target)} defines ({first_line(exc)})", NO_DATABASE)
        refused = check_query(text, self.dialect, defined=defined, permissions=self.access)
        if refused is not None:
            return failure(*refused)
        deadline = attempt.start + timeout
        row_cap = min(max_bytes, MAX_ROW_BYTES)
        # statement_timeout stops the query on the server; the watchdog cancels it from here when the
        # server itself does not answer.
        watchdog = threading.Timer(timeout + _GRACE, conn.cancel_safe)
        watchdog.daemon = True
        watchdog.start()
        try:
            with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                self._begin(cursor, timeout)
                # One row at a time (libpq's single-row mode); leaving early cancels the rest.
                query = wrap(text, row_cap)
                stream = _Stream(cursor, query, deadline)
                try:
                    rows, over = fetch_limited(stream, max_rows, max_bytes)
                finally:
                    stream.close()
                if not rows and not over and not stream.late:  # a stream describes its columns with its first row only
                    cursor.execute(f"SELECT * FROM ({query}\n) AS text2sql_described LIMIT 0")
                    stream.columns = stream.names()
        except self._psycopg.Error as exc:
            if _ROW_TOO_LARGE in str(exc):
                return failure(_row_too_large(row_cap), RUNTIME)
            category = categorize(exc)
            if category == TIMEOUT or time.monotonic() >= deadline:
                return failure(timed_out(timeout), TIMEOUT)
            return failure(first_line(exc), category)
        finally:
            watchdog.cancel()
            self._reset(conn)
        if stream.late:
            return failure(timed_out(timeout), TIMEOUT)
        if over:
            return failure(too_large(max_bytes), RUNTIME)
        return limited_result(stream.columns, rows, max_rows, attempt.elapsed)

    def _defined(self) -> frozenset[str]:
        """Allowed function names that the schema model SQL sees defines itself (its own functions, an
        unreviewed extension's): refused there, since a call could reach them. Read once per URL."""
        key = f"{self.url}\0{self.schema}"
        with _role_lock:
            if key not in _defined:
                conn = self._live()
                with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                    cursor.execute(POSTGRES_DEFINED, (self.schema, reviewed_extensions("postgres")))
                    _defined[key] = defined_here([r[0] for r in cursor.fetchall()], "postgres")
            return _defined[key]

    def _reset(self, conn: Any) -> None:
        """End what the query left in the session; a connection that cannot be reset is closed (and
        replaced before the next query), never reused."""
        try:
            if conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
                raise self._psycopg.OperationalError("the connection is not idle")
            conn.execute(RESET)
        except self._psycopg.Error as exc:
            log.debug("closing a connection that could not be reset: %s", exc)
            self._conn = None
            conn.close()
            if self._pool is not None:
                self._pool.putconn(conn)  # the pool drops a closed connection and may open another

    # ------------------------------------------------------------------ what the schema holds

    def _rows(self, query: str, params: tuple = ()) -> list[tuple]:
        conn = self._live()
        with conn.transaction(force_rollback=True), conn.cursor() as cursor:
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
            conn = self._live()
            with conn.transaction(force_rollback=True), conn.cursor() as cursor:
                cursor.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(table))
                order = sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(cursor.description or [])))
                query = sql.SQL("SELECT * FROM {} ORDER BY {} LIMIT {}").format(table, order, sql.Literal(limit))
                try:
                    with conn.transaction():
                        cursor.execute(query)
                except self._psycopg.errors.UndefinedFunction:  # no ordering for some column type
                    cursor.execute(sql.SQL("SELECT * FROM {} LIMIT {}").format(table, sql.Literal(limit)))
                out[name] = [tuple(r) for r in cursor.fetchall()]
        return out

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._closed = True
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


class _Stream:
    """The rows of a wrapped query without their measuring column, until the deadline passes (then
    `late`); `columns` once the first row came."""

    def __init__(self, cursor: Any, query: str, deadline: float):
        self._cursor = cursor
        self._rows: Iterator[tuple] = cursor.stream(query)
        self.deadline = deadline
        self.late = False
        self.columns: list[str] = []

    def __iter__(self) -> Iterator[tuple]:
        for row in self._rows:
            if not self.columns:
                self.columns = self.names()
            if time.monotonic() >= self.deadline:
                self.late = True
                return
            yield row[:-1]

    def names(self) -> list[str]:
        """The column names of the cursor's current result, less the measuring column."""
        return [d.name for d in self._cursor.description or []][:-1]

    def close(self) -> None:
        """Stop reading: a query still sending rows is cancelled, and the rest discarded."""
        close = getattr(self._rows, "close", None)
        if close is not None:
            close()


def _row_too_large(row_cap: int) -> str:
    return f"a row of the result holds more than {row_cap / 2**20:g} MB; only queries with smaller rows are run"
