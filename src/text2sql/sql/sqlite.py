"""SQLite: run untrusted, model-generated SQL on a database file without letting it change anything,
and read what the database holds (`catalog`, `sample_rows`).

A prediction is data, not a command: whatever it says, running it can only read. Three layers make
sure of that, each enough on its own for the usual cases:

1. the file is opened through a read-only URI (`mode=ro`), so SQLite's VFS never opens it for writing;
2. `PRAGMA query_only=ON` makes SQLite refuse any write to the open databases;
3. an authorizer, installed after our own pragmas, allows only the actions a query needs (read a
   column, call a function on the allow-list of `text2sql.sql.functions`, run a recursive CTE) and
   denies the rest at compile time, before anything runs: PRAGMA, ATTACH (which would create a
   file), VACUUM (whose `INTO` form writes a new file), DDL, DML, transactions, and any function not
   known to have no side effects (`load_extension`, application-defined ones, ones a newer SQLite
   adds). SQLite's own parser decides what the SQL is, so nothing it parses escapes the check.

A runaway query (an infinite recursive CTE, a huge cross join) is stopped by a progress handler that
checks a deadline, and the rows fetched are capped so that a query without LIMIT cannot fill memory.

With permissions (`restrict`, `text2sql.sql.permissions`) the same authorizer also refuses every read
of a table or column they hide: SQLite reports each column a statement reads, those of `*`, views,
subqueries and CTEs included. A read with no column (the table's rows counted, `COUNT(*)`) needs the
table to be allowed. What a listed view reads itself is allowed, since SQLite names the view that
reads; a CTE is named the same way, so that holds only in SQL without `WITH`. A statement is compiled
once first (`EXPLAIN`, which runs nothing) so that the refusal names every hidden column it reads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError

from text2sql.sql.catalog import Column, ForeignKey, Schema, Table, resolve_implicit_references
from text2sql.sql.functions import Verdict, classify, refusal
from text2sql.sql.permissions import Access, DatabasePermissions, hidden_message
from text2sql.sql.results import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT,
    FORBIDDEN,
    MAX_RESULT_BYTES,
    MAX_SQL_BYTES,
    MAX_VALUE_BYTES,
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

# The progress handler runs every this many SQLite VM instructions. A Python call costs about as
# much as ~100 VM steps, so 10,000 keeps the overhead under 1% while checking the deadline every
# few hundred microseconds.
_PROGRESS_EVERY = 10_000

# Actions a read-only query needs. Everything else is denied (see module docstring).
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})

_SYNTAX_MARKERS = ("syntax error", "incomplete input", "unrecognized token", "empty sql")
_SCHEMA_MARKERS = ("no such table", "no such column", "ambiguous column")
_FORBIDDEN_MARKERS = (
    "not authorized",
    "authorization denied",
    "readonly",
    "read-only",
    "one statement at a time",
    "only queries",
    "too many attached",
)
_NO_DATABASE_MARKERS = ("unable to open database", "file is not a database")


def categorize(message: str) -> str:
    """Map a SQLite error message to one of the error categories (never `timeout`: that is decided
    by whether our deadline passed, not by the message)."""
    text = message.lower()
    for markers, category in (
        (_NO_DATABASE_MARKERS, NO_DATABASE),
        (_SYNTAX_MARKERS, SYNTAX),
        (_SCHEMA_MARKERS, SCHEMA),
        (_FORBIDDEN_MARKERS, FORBIDDEN),
    ):
        if any(marker in text for marker in markers):
            return category
    return RUNTIME


class _Authorizer:
    """SQLite's compile-time check of every action and function call; remembers the last function it
    refused so that the error can name it, and with `access` the tables and columns that were hidden."""

    def __init__(self) -> None:
        self.refused: tuple[str, Verdict] | None = None
        self.access: Access | None = None
        # Whether the name SQLite gives as the reader of a read is a view's (no CTE can take the name).
        self.views_named = False
        # Collecting (an EXPLAIN compile): hidden reads are recorded and answered with NULL, not refused.
        self.collect = False
        self.hidden_tables: list[str] = []
        self.hidden_columns: list[str] = []

    def start(self, sql: str, *, collect: bool) -> None:
        self.refused = None
        self.collect = collect
        self.hidden_tables, self.hidden_columns = [], []
        self.views_named = "with" not in sql.lower()

    def __call__(self, action: int, arg1, arg2, db_name, trigger) -> int:
        if action == sqlite3.SQLITE_READ and self.access is not None:
            return self._read(self.access, arg1 or "", arg2 or "", trigger)
        if action in _ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            name = (arg2 or "").lower()  # SQLite function names are case-insensitive
            verdict = classify(name, "sqlite")
            if verdict.allowed:
                return sqlite3.SQLITE_OK
            self.refused = (name, verdict)
        return sqlite3.SQLITE_DENY

    def _read(self, access: Access, table: str, column: str, reader: str | None) -> int:
        if reader is not None and self.views_named and access.is_view(reader):
            return sqlite3.SQLITE_OK  # inside a listed view: the owner chose what it shows
        if not access.table_allowed(table):
            self.hidden_tables.append(access.relation(table) or table)
        elif column and not access.column_allowed(table, column):
            self.hidden_columns.append(f"{access.relation(table)}.{access.relation_column(table, column)}")
        else:
            return sqlite3.SQLITE_OK  # an empty column: rows of an allowed table read or counted
        return sqlite3.SQLITE_IGNORE if self.collect else sqlite3.SQLITE_DENY

    def hidden(self) -> str | None:
        """The refusal of what was read against the permissions, or None."""
        if not self.hidden_tables and not self.hidden_columns:
            return None
        return hidden_message(self.hidden_tables, self.hidden_columns)


def _decode_text(raw: bytes) -> str:
    # Some benchmark databases (Spider's among them) hold text that is not valid UTF-8; the default
    # decoder would turn every query touching it into an error. Gold and prediction are decoded the
    # same way, so replacing bad bytes keeps comparisons fair.
    return raw.decode("utf-8", errors="replace")


def _has_statement(sql: str) -> bool:
    """True when `sql` holds anything besides whitespace, comments and semicolons."""
    try:
        tokens = Dialect.get_or_raise("sqlite").tokenize(sql)
    except TokenError:
        return True  # something is there, even if it does not tokenize
    return any(token.text != ";" for token in tokens)


class SQLiteDatabase:
    """One read-only connection to one SQLite file, for many queries from one thread.

    Opening is cheap (~50 µs), so `execute_sql` opens one per call; hold a `SQLiteDatabase` when
    running many queries on the same database. Like any sqlite3 connection it must stay in the
    thread that created it. Raises `FileNotFoundError` when the file is missing or is not a file.
    """

    dialect = "sqlite"

    def __init__(self, db_path: str | Path, *, busy_timeout: float = 1.0, max_steps: int | None = None):
        path = Path(db_path).expanduser().resolve()
        # A budget of virtual-machine steps per query: the same query is stopped at the same point on
        # every machine, loaded or not (the wall-clock timeout stays as a safety net).
        self.max_steps = max_steps
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        self.path = path
        self.target = str(path)
        # as_uri percent-encodes characters ('?', '#', '%') that would otherwise end the path.
        self._conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
        self._conn.text_factory = _decode_text
        self._conn.execute("PRAGMA query_only=ON")
        if hasattr(self._conn, "enable_load_extension"):  # absent when Python is built without it
            self._conn.enable_load_extension(False)
        if hasattr(self._conn, "setlimit"):  # Python >= 3.11
            self._conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # type: ignore[attr-defined]
            self._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)  # type: ignore[attr-defined]
            self._conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)  # type: ignore[attr-defined]
        # Last: from here on the user's SQL can no longer issue PRAGMAs, ours included.
        self._authorizer = _Authorizer()
        self._conn.set_authorizer(self._authorizer)

    def execute(
        self,
        sql: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> ExecutionResult:
        """Run one statement and return its first `max_rows` rows; never raises for bad SQL. A result
        with more than `max_bytes` of strings and blobs is an error, not a result."""
        attempt = Attempt(sql)
        deadline = attempt.start + timeout
        late = over_steps = False
        every = min(_PROGRESS_EVERY, self.max_steps) if self.max_steps else _PROGRESS_EVERY
        steps = 0

        def past_deadline() -> bool:
            nonlocal late, over_steps, steps
            steps += every
            over_steps = self.max_steps is not None and steps >= self.max_steps
            late = time.monotonic() > deadline
            return late or over_steps  # a true value makes SQLite interrupt the statement

        failure, text = attempt.failure, attempt.text  # sqlite3 would reject `SELECT 1;;` as two statements
        if (empty := attempt.empty()) is not None:
            return empty

        if self._authorizer.access is not None:
            hidden = self._hidden_reads(text)
            if hidden is not None:
                return failure(hidden, FORBIDDEN)
        self._authorizer.start(text, collect=False)
        self._conn.set_progress_handler(past_deadline, every)
        # The progress handler runs between VM steps; one step can be a long function call. A timer
        # interrupts the statement from another thread at the deadline whatever it is doing.
        watchdog = threading.Timer(timeout, self._conn.interrupt)
        watchdog.daemon = True
        watchdog.start()
        cursor = None
        try:
            cursor = self._conn.execute(text)
            if cursor.description is None:
                if not _has_statement(text):
                    return failure("empty SQL: only comments", SYNTAX)
                return failure("statement returns no rows; only queries are allowed", FORBIDDEN)
            columns = [d[0] for d in cursor.description]
            rows, over = fetch_limited(cursor, max_rows, max_bytes)
            if over:
                return failure(too_large(max_bytes), RUNTIME)
        except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:
            # ValueError covers NUL characters and unencodable text in the SQL; OverflowError
            # integers Python cannot hand to SQLite; MemoryError a result SQLite could not hold.
            message = str(exc) or type(exc).__name__
            if over_steps:
                return failure(f"query ran past its budget of {self.max_steps:,} SQLite steps and was stopped", TIMEOUT)
            if late or time.monotonic() > deadline:
                return failure(timed_out(timeout), TIMEOUT)
            if self._authorizer.hidden() is not None:
                return failure(self._authorizer.hidden() or message, FORBIDDEN)
            if message.startswith("not authorized") and self._authorizer.refused:
                return failure(refusal(*self._authorizer.refused), FORBIDDEN)
            if message == "not authorized":  # the authorizer's word: say what was refused
                first = text.split(None, 1)[0].upper() if text.split() else "SQL"
                message = f"{first} statement or function not allowed: only reading queries run (not authorized)"
            return failure(message, categorize(message))
        finally:
            watchdog.cancel()
            if cursor is not None:
                cursor.close()
            self._conn.set_progress_handler(None, 0)
        return limited_result(columns, rows, max_rows, attempt.elapsed)

    def _hidden_reads(self, text: str) -> str | None:
        """The refusal naming every hidden table and column `text` reads, from a compile that runs
        nothing (`EXPLAIN`); None when it reads none, or does not compile (the run reports that)."""
        self._authorizer.start(text, collect=True)
        try:
            self._conn.execute(f"EXPLAIN {text}").close()
        except (sqlite3.Error, ValueError, OverflowError, MemoryError):
            pass
        return self._authorizer.hidden()

    def restrict(self, permissions: DatabasePermissions) -> Access:
        """From now on, queries read only what `permissions` allow (see the module docstring).
        Raises a one-line ConfigError naming a table or column the database does not have."""
        views = self._views()
        relations = self.catalog()
        relations.tables.extend(views)
        access = permissions.bind(relations, schema_name="main", views=[v.name for v in views])
        self._authorizer.access = access
        return access

    @property
    def access(self) -> Access | None:
        """The permissions queries run under (None: every table may be read)."""
        return self._authorizer.access

    def _views(self) -> list[Table]:
        """The views of the database with their columns (the catalog holds tables only)."""
        conn = self._conn
        conn.set_authorizer(None)  # our own reads of sqlite_master and pragmas
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'view' ORDER BY rowid")]
            views = []
            for name in names:
                try:
                    info = conn.execute("SELECT name, type FROM pragma_table_info(?)", (name,)).fetchall()
                except sqlite3.Error:  # a view over a table that is gone: no columns to list
                    info = []
                views.append(Table(name, [Column(col, ctype or "") for col, ctype in info]))
            return views
        finally:
            conn.set_authorizer(self._authorizer)

    # ------------------------------------------------------------------ what the database holds

    def catalog(self) -> Schema:
        """Tables (in sqlite_master order), columns, primary and foreign keys."""
        conn = self._conn
        conn.set_authorizer(None)  # our own catalog queries read sqlite_master and pragmas
        try:
            names = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) != 'sqlite_' "
                    "ORDER BY rowid"
                )
            ]
            tables = []
            for name in names:
                info = conn.execute("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", (name,)).fetchall()
                table = Table(name, [Column(col, ctype or "") for col, ctype, _ in info])
                table.primary_key = [col for col, _, pk in sorted((r for r in info if r[2]), key=lambda r: r[2])]
                fk_rows = conn.execute(
                    'SELECT id, seq, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq', (name,)
                ).fetchall()
                groups: dict[int, list[tuple]] = {}
                for row in fk_rows:
                    groups.setdefault(row[0], []).append(row)
                for group in groups.values():
                    to = tuple(r[4] for r in group if r[4] is not None)
                    table.foreign_keys.append(ForeignKey(tuple(r[3] for r in group), group[0][2], to))
                tables.append(table)
        finally:
            conn.set_authorizer(self._authorizer)
        schema = Schema(tables, db_id=self.path.stem, db_path=str(self.path), dialect=self.dialect)
        resolve_implicit_references(schema)
        return schema

    def sample_rows(self, tables: list[str], limit: int) -> dict[str, list[tuple]]:
        """The first `limit` rows of each table, in rowid (insertion) order: the same rows every time."""
        out = {}
        for name in tables:
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                rows = self._conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid LIMIT ?", (limit,)).fetchall()
            except sqlite3.OperationalError:
                # WITHOUT ROWID tables (and views) have no rowid; order by every column instead.
                width = len(self._conn.execute(f"SELECT * FROM {quoted} LIMIT 0").description)
                order = ", ".join(str(i + 1) for i in range(width))
                rows = self._conn.execute(f"SELECT * FROM {quoted} ORDER BY {order} LIMIT ?", (limit,)).fetchall()
            out[name] = rows
        return out

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SQLiteDatabase:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
