"""Run untrusted, model-generated SQL on a SQLite database without letting it change anything.

A prediction is data, not a command: whatever it says, running it can only read. Three layers make
sure of that, each enough on its own for the usual cases:

1. the file is opened through a read-only URI (`mode=ro`), so SQLite's VFS never opens it for writing;
2. `PRAGMA query_only=ON` makes SQLite refuse any write to the open databases;
3. an authorizer, installed after our own pragmas, allows only the actions a query needs (read a
   column, call a harmless function, run a recursive CTE) and denies the rest at compile time,
   before anything runs: PRAGMA, ATTACH (which would create a file), VACUUM (whose `INTO` form
   writes a new file), DDL, DML, transactions.

A runaway query (an infinite recursive CTE, a huge cross join) is stopped by a progress handler that
checks a deadline, and the rows fetched are capped so that a query without LIMIT cannot fill memory.

Bad SQL never raises: every failure comes back as an `ExecutionResult` with an error message and a
category, because a prediction that fails to run is a wrong answer with a reason, not a crash.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError

# Error categories (`ExecutionResult.category`); None means the query ran.
SYNTAX = "syntax"
SCHEMA = "schema"
TIMEOUT = "timeout"
FORBIDDEN = "forbidden"
RUNTIME = "runtime"
NO_DATABASE = "no_database"
CATEGORIES = (SYNTAX, SCHEMA, TIMEOUT, FORBIDDEN, RUNTIME, NO_DATABASE)

DEFAULT_TIMEOUT = 5.0  # seconds per query, compilation and fetching included
DEFAULT_MAX_ROWS = 10_000

# The progress handler runs every this many SQLite VM instructions. A Python call costs about as
# much as ~100 VM steps, so 10,000 keeps the overhead under 1% while checking the deadline every
# few hundred microseconds.
_PROGRESS_EVERY = 10_000

# Largest string or blob a query may build, in bytes, enforced inside SQLite before a value reaches
# Python: `zeroblob(1e9)`, `printf('%.*c', 1e9, 'x')` or a group_concat of everything would
# otherwise allocate a gigabyte per row, and `length(randomblob(5e7))` run for seconds inside one
# function call. Benchmark databases hold far smaller values (Spider's and BIRD's longest are KB).
MAX_VALUE_BYTES = 1024 * 1024
# Longest SQL text accepted, in bytes: model answers and gold queries are short, and a bound on the
# text bounds how many values one row can hold.
_MAX_SQL_BYTES = 100_000
# Most bytes of strings and blobs one result may hold: rows are fetched one at a time and counted,
# so no query can take more memory than this (plus one row) whatever its row count.
MAX_RESULT_BYTES = 64 * 1024 * 1024

# Actions a read-only query needs. Everything else is denied (see module docstring).
_ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})

# Functions that reach outside the database. load_extension runs native code from a file;
# fts3_tokenizer with two arguments takes a raw pointer. The file-system functions exist only
# when the sqlite3 shell's extensions are loaded, but are named here in case a build ships them.
_DENIED_FUNCTIONS = frozenset(
    {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit", "fsdir", "shell_add_schema"}
)

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


@dataclass
class ExecutionResult:
    """What running one SQL string gave: its rows, or why there are none.

    `error` and `category` are None when the query ran. `truncated` is True when the query had more
    than `max_rows` rows and only the first `max_rows` were kept. `elapsed` is wall time in seconds.
    """

    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    error: str | None = None
    category: str | None = None
    elapsed: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


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


def _authorize(action: int, arg1, arg2, db_name, trigger) -> int:
    if action in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


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


class ReadOnlyDatabase:
    """One read-only connection to one SQLite file, for many queries from one thread.

    Opening is cheap (~50 µs), so `execute_sql` opens one per call; hold a `ReadOnlyDatabase` when
    running many queries on the same database. Like any sqlite3 connection it must stay in the
    thread that created it. Raises `FileNotFoundError` when the file is missing or is not a file.
    """

    def __init__(self, db_path: str | Path, *, busy_timeout: float = 1.0):
        path = Path(db_path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no SQLite database at {path}")
        self.path = path
        # as_uri percent-encodes characters ('?', '#', '%') that would otherwise end the path.
        self._conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=busy_timeout, isolation_level=None)
        self._conn.text_factory = _decode_text
        self._conn.execute("PRAGMA query_only=ON")
        if hasattr(self._conn, "enable_load_extension"):  # absent when Python is built without it
            self._conn.enable_load_extension(False)
        if hasattr(self._conn, "setlimit"):  # Python >= 3.11
            self._conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)  # type: ignore[attr-defined]
            self._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)  # type: ignore[attr-defined]
            self._conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, _MAX_SQL_BYTES)  # type: ignore[attr-defined]
        # Last: from here on the user's SQL can no longer issue PRAGMAs, ours included.
        self._conn.set_authorizer(_authorize)

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
        start = time.monotonic()
        deadline = start + timeout
        timed_out = False

        def past_deadline() -> bool:
            nonlocal timed_out
            timed_out = time.monotonic() > deadline
            return timed_out  # a true value makes SQLite interrupt the statement

        def failure(message: str, category: str) -> ExecutionResult:
            return ExecutionResult(error=message, category=category, elapsed=time.monotonic() - start)

        # Trailing semicolons are the statement's end, not a second statement; sqlite3 would
        # reject `SELECT 1;;` as two.
        text = (sql or "").strip().rstrip(";").rstrip()
        if not text:
            return failure("empty SQL", SYNTAX)

        self._conn.set_progress_handler(past_deadline, _PROGRESS_EVERY)
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
            rows, too_large = _fetch(cursor, max_rows, max_bytes)
            if too_large:
                return failure(
                    f"the result holds more than {max_bytes // 2**20} MB of text and blobs; only "
                    "queries with smaller results are run",
                    RUNTIME,
                )
        except (sqlite3.Error, ValueError, OverflowError, MemoryError) as exc:
            # ValueError covers NUL characters and unencodable text in the SQL; OverflowError
            # integers Python cannot hand to SQLite; MemoryError a result SQLite could not hold.
            message = str(exc) or type(exc).__name__
            if timed_out or time.monotonic() > deadline:
                return failure(f"query ran longer than {timeout:g} s and was stopped", TIMEOUT)
            return failure(message, categorize(message))
        finally:
            watchdog.cancel()
            if cursor is not None:
                cursor.close()
            self._conn.set_progress_handler(None, 0)
        truncated = len(rows) > max_rows
        return ExecutionResult(
            columns=columns,
            rows=rows[:max_rows],
            elapsed=time.monotonic() - start,
            truncated=truncated,
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ReadOnlyDatabase:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _fetch(cursor: sqlite3.Cursor, max_rows: int, max_bytes: int) -> tuple[list[tuple], bool]:
    """(up to max_rows + 1 rows, whether the result went past max_bytes). One row past the cap
    tells whether there was more without reading it all; rows come one at a time so that the byte
    count stops a result before it is held whole."""
    rows: list[tuple] = []
    size = 0
    for row in cursor:
        size += sum(len(v) for v in row if isinstance(v, (str, bytes)))
        if size > max_bytes:
            return rows, True
        rows.append(row)
        if len(rows) > max_rows:
            break
    return rows, False


def _open(db_path: str | Path) -> ReadOnlyDatabase | ExecutionResult:
    """A connection, or the `no_database` result to return instead of raising."""
    try:
        return ReadOnlyDatabase(db_path)
    except (OSError, sqlite3.Error) as exc:
        return ExecutionResult(error=str(exc), category=NO_DATABASE)


def execute_sql(
    db_path: str | Path,
    sql: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_bytes: int = MAX_RESULT_BYTES,
) -> ExecutionResult:
    """Run one untrusted SQL statement read-only on the SQLite file at `db_path`.

    Never raises for bad SQL or a missing database: the result carries the error and its category.
    Opens its own connection, so it is safe to call from several threads at once.
    """
    db = _open(db_path)
    if isinstance(db, ExecutionResult):
        return db
    with db:
        return db.execute(sql, timeout=timeout, max_rows=max_rows, max_bytes=max_bytes)


def execute_many(
    db_path: str | Path,
    sqls: Iterable[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[ExecutionResult]:
    """`execute_sql` for many statements on one database, over one connection."""
    db = _open(db_path)
    if isinstance(db, ExecutionResult):
        return [ExecutionResult(error=db.error, category=db.category) for _ in sqls]
    with db:
        return [db.execute(sql, timeout=timeout, max_rows=max_rows) for sql in sqls]
