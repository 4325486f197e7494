"""Whether a candidate's result makes a training pair: it ran within the time bound, returned rows,
not only NULLs, not too many to read, narrowed the table where a filter was meant to, and, where
its rows are ordered or cut by LIMIT, has no ties that would leave the answer up to the engine; and
every filter the question names changes the answer (the query without it returns another result).
Each refusal is a drop reason the report counts."""

from __future__ import annotations

import re
from typing import Any

from text2sql.data.synth.shapes import Candidate
from text2sql.sql.results import TIMEOUT, ExecutionResult

QUERY_TIMEOUT = 5.0  # seconds a sampled query may run
MAX_RESULT_ROWS = 500  # an answer longer than this is no question a person asks

# Drop reasons.
FAILED = "failed to run"
TIMED_OUT = "timeout"
EMPTY = "empty result"
ALL_NULL = "all null"
TOO_MANY_ROWS = "too many rows"
NOT_NARROWED = "filter did not narrow"
COUNT_AT_END = "count of none or all"
TIES = "ties in order"
IDLE_FILTER = "filter changes nothing"
REPEATED_SQL = "repeated sql"
DUPLICATE_RESULT = "duplicate result"
DUPLICATE_QUESTION = "duplicate question"
UNFILLED_SLOT = "unfilled template slot"
TEACHER_ERROR = "teacher error"
ROUND_TRIP = "round trip mismatch"
NO_DATABASE_PAIR = "no usable tables"

_SLOT = re.compile(r"[{}]")


def refusal(candidate: Candidate, result: ExecutionResult, db: Any) -> str | None:
    """The drop reason for `candidate`'s `result` on the open database `db`, or None to keep it."""
    if not result.ok:
        return TIMED_OUT if result.category == TIMEOUT else FAILED
    if result.truncated:
        return TOO_MANY_ROWS
    if not result.rows:
        return EMPTY
    if all(value is None for row in result.rows for value in row):
        return ALL_NULL
    if candidate.rows_below is not None and len(result.rows) >= candidate.rows_below:
        return NOT_NARROWED
    if candidate.count_below is not None:
        count = result.rows[0][0]
        if not isinstance(count, int) or not 0 < count < candidate.count_below:
            return COUNT_AT_END
    if candidate.order_keys is not None:
        keys = db.execute(candidate.order_keys, timeout=QUERY_TIMEOUT, max_rows=MAX_RESULT_ROWS + 1)
        if not keys.ok or keys.truncated:
            return TIMED_OUT if keys.category == TIMEOUT else FAILED
        values = [row[0] for row in keys.rows]
        if len(set(values)) != len(values):
            return TIES
    if _SLOT.search(candidate.question):
        return UNFILLED_SLOT
    for relaxed in candidate.relaxed:  # a filter the question names must change the answer
        other = db.execute(relaxed, timeout=QUERY_TIMEOUT, max_rows=MAX_RESULT_ROWS + 1)
        if other.ok and not other.truncated and _same_rows(other.rows, result.rows, candidate.ordered):
            return IDLE_FILTER
    return None


def _same_rows(a: list[tuple], b: list[tuple], ordered: bool) -> bool:
    return a == b if ordered else sorted(map(repr, a)) == sorted(map(repr, b))
