"""Execution match: run the gold and the predicted SQL of each row on its database and judge whether
the results are the same. Shared by evaluation, the execution-accuracy training callback and
anything else that scores SQL by what it returns.

`Outcome` per row: (execution_match, valid_sql, error, detail); error is empty when right, else one
of the execution categories (syntax, schema, runtime, timeout, forbidden), `wrong_result` (ran,
different result), `no_database` (no database to run on) or `gold_error` (the gold SQL itself failed:
the row is excluded from execution accuracy).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from text2sql.progress import progress as progress_bar
from text2sql.sql.equivalence import gold_orders_results, results_match
from text2sql.sql.execution import try_open
from text2sql.sql.extract import looks_like_sql
from text2sql.sql.results import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, NO_DATABASE, SYNTAX, ExecutionResult
from text2sql.sql.targets import redact

WRONG_RESULT = "wrong_result"
GOLD_ERROR = "gold_error"
# An answer the model did not finish within its token limit (set by whoever knows the limit was hit).
TRUNCATED = "truncated"
# A row whose prompt does not fit the model's budget even with its schema pruned: not asked, scored wrong.
PROMPT_TOO_LONG = "prompt_too_long"
ERROR_CATEGORIES = (
    "syntax",
    "schema",
    "runtime",
    "timeout",
    "forbidden",
    TRUNCATED,
    PROMPT_TOO_LONG,
    WRONG_RESULT,
    NO_DATABASE,
    GOLD_ERROR,
)

# Rows run on one connection before it is reopened: bounds the gold-result cache, and opening a
# connection (~50 µs) per chunk costs nothing.
CHUNK_ROWS = 128
_DETAIL_CHARS = 300  # error messages kept per example


class GoldRow(Protocol):
    """What a row needs to be judged: its gold SQL and the database it runs on (None: none)."""

    sql: str
    db_path: str | None


Outcome = tuple[float | None, bool | None, str, str]  # execution_match, valid_sql, error, detail


def execute_pairs(
    rows: Sequence[GoldRow],
    predictions: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    max_steps: int | None = None,
    result_match: str = "default",
) -> list[Outcome]:
    """Run gold and predicted SQL of every row on its database and compare the results.

    Rows are grouped by database; each group runs on one read-only connection. Identical gold
    queries run once per chunk of rows; a prediction equal to its gold query reuses the gold
    result. Serial on purpose: a thread pool measured no faster, even on queries that run for tens
    of milliseconds, because the deadline check calls back into Python (BENCHMARKS.md, Evaluation).
    """
    outcomes: list[Outcome] = [(None, None, NO_DATABASE, "no database for this row")] * len(rows)
    by_db: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.db_path:
            by_db[row.db_path].append(i)
    tasks = [(db, idx[k : k + CHUNK_ROWS]) for db, idx in by_db.items() for k in range(0, len(idx), CHUNK_ROWS)]
    bar = progress_bar(sum(len(t[1]) for t in tasks), "executing", enabled=progress)
    try:
        for db_path, indices in tasks:
            items = [(i, rows[i].sql, predictions[i] or "") for i in indices]
            _store(outcomes, _execute_chunk(db_path, items, timeout, max_rows, max_steps, result_match), bar)
    finally:
        bar.close()
    return outcomes


def _store(outcomes: list[Outcome], done: list[tuple[int, Outcome]], bar) -> None:
    for i, outcome in done:
        outcomes[i] = outcome
    bar.update(len(done))


def _execute_chunk(
    db_path: str,
    items: list[tuple[int, str, str]],
    timeout: float,
    max_rows: int,
    max_steps: int | None = None,
    result_match: str = "default",
) -> list[tuple[int, Outcome]]:
    db = try_open(db_path, max_steps=max_steps)
    if isinstance(db, ExecutionResult):  # a missing file, a server down: these rows cannot execute
        detail = f"cannot open database {redact(db_path)}: {db.error}"[:_DETAIL_CHARS]
        return [(i, (None, None, NO_DATABASE, detail)) for i, _, _ in items]
    gold_cache: dict[str, ExecutionResult] = {}
    results = []
    with db:
        for i, gold_sql, pred_sql in items:
            gold = gold_cache.get(gold_sql)
            if gold is None:
                gold = gold_cache[gold_sql] = db.execute(gold_sql, timeout=timeout, max_rows=max_rows)
            pred = gold if pred_sql == gold_sql else db.execute(pred_sql, timeout=timeout, max_rows=max_rows)
            outcome = judge(gold_sql, gold, pred, result_match)
            if outcome[2] == SYNTAX and pred_sql.strip() and not looks_like_sql(pred_sql):
                outcome = (*outcome[:3], "the model answered without SQL")
            results.append((i, outcome))
    return results


def judge(gold_sql: str, gold: ExecutionResult, pred: ExecutionResult, result_match: str = "default") -> Outcome:
    """(execution_match, valid_sql, error, detail) from the two results. `result_match` "bird"
    compares them as BIRD's script does: the sets of rows, exactly (no float tolerance, no column
    order search, duplicates and order ignored)."""
    if gold.category == NO_DATABASE:
        return None, None, NO_DATABASE, (gold.error or "")[:_DETAIL_CHARS]
    valid = pred.ok
    if not gold.ok:
        return None, valid, GOLD_ERROR, f"gold SQL failed ({gold.category}): {gold.error}"[:_DETAIL_CHARS]
    if not pred.ok:
        return 0.0, False, pred.category or "runtime", (pred.error or "")[:_DETAIL_CHARS]
    if result_match == "bird":
        same = set(gold.rows) == set(pred.rows)
    else:
        same = results_match(gold, pred, order_matters=gold_orders_results(gold_sql))
    if same:
        return 1.0, True, "", ""
    detail = f"gold returned {len(gold.rows)} rows, prediction {len(pred.rows)}"
    return 0.0, True, WRONG_RESULT, detail
