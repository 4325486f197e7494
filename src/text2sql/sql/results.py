"""What running a SQL string on any engine gives: rows, or an error with its category; and the
limits every engine enforces on untrusted SQL.

Bad SQL never raises: every failure comes back as an `ExecutionResult` with an error message and a
category, because a prediction that fails to run is a wrong answer with a reason, not a crash.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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

# Largest string or blob a query may build, in bytes, enforced inside SQLite before a value reaches
# Python: `zeroblob(1e9)`, `printf('%.*c', 1e9, 'x')` or a group_concat of everything would
# otherwise allocate a gigabyte per row, and `length(randomblob(5e7))` run for seconds inside one
# function call. Benchmark databases hold far smaller values (Spider's and BIRD's longest are KB).
MAX_VALUE_BYTES = 1024 * 1024
# Longest SQL text accepted, in bytes: model answers and gold queries are short, and a bound on the
# text bounds how many values one row can hold.
MAX_SQL_BYTES = 100_000
# Most bytes of strings and blobs one result may hold: rows are fetched one at a time and counted,
# so no query can take more memory than this (plus one row) whatever its row count.
MAX_RESULT_BYTES = 64 * 1024 * 1024


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


def text_bytes(value: Any) -> int:
    """Characters of the strings and bytes of the blobs in one value, arrays and structs included."""
    if isinstance(value, (str, bytes, bytearray, memoryview)):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(text_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(text_bytes(k) + text_bytes(v) for k, v in value.items())
    return 0


class Attempt:
    """How every engine's `execute` begins: the clock starts, the SQL is trimmed (trailing semicolons
    end the statement; they are not a second one), and a failure becomes a result with its time."""

    def __init__(self, sql: str | None):
        self.start = time.monotonic()
        self.text = (sql or "").strip().rstrip(";").rstrip()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def failure(self, message: str, category: str) -> ExecutionResult:
        return ExecutionResult(error=message, category=category, elapsed=self.elapsed)

    def empty(self) -> ExecutionResult | None:
        """The failure of SQL that holds nothing, or None."""
        return None if self.text else self.failure("empty SQL", SYNTAX)


def timed_out(timeout: float) -> str:
    return f"query ran longer than {timeout:g} s and was stopped"


def fetch_limited(rows: Iterable[Any], max_rows: int, max_bytes: int) -> tuple[list[tuple], bool]:
    """(up to max_rows + 1 rows of `rows`, whether the result went past max_bytes of strings and
    blobs). One row past the cap tells whether there was more without reading it all; rows are
    taken one at a time so that the byte count stops a result before it is held whole."""
    kept: list[tuple] = []
    size = 0
    for row in rows:
        size += sum(text_bytes(v) for v in row)
        if size > max_bytes:
            return kept, True
        kept.append(tuple(row))
        if len(kept) > max_rows:
            break
    return kept, False


def too_large(max_bytes: int) -> str:
    return f"the result holds more than {max_bytes // 2**20} MB of text and blobs; only queries with smaller results are run"


def limited_result(columns: list[str], rows: list[tuple], max_rows: int, elapsed: float) -> ExecutionResult:
    """The result of `rows` fetched by `fetch_limited` (one past the cap means truncated)."""
    return ExecutionResult(columns=columns, rows=rows[:max_rows], elapsed=elapsed, truncated=len(rows) > max_rows)
