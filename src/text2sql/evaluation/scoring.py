"""Score predictions one example at a time: string metrics, and execution on the example's database.

Every query, gold or predicted, runs through `execution.ReadOnlyDatabase` (read-only file,
authorizer, deadline, row cap): predicted SQL is untrusted and nothing else in evaluation opens a
database. A prediction that fails to parse or run is a wrong answer with a recorded reason.

Per-example `error` (empty when the prediction is right):
  syntax, schema (unknown table or column), runtime, timeout, forbidden (tried to write or attach),
  wrong_result (ran, different result), no_database (the row has no database to run on: it is
  scored by EM/F1 only), gold_error (the gold SQL itself failed: excluded from execution accuracy).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from text2sql.evaluation.compare import gold_orders_results, results_match
from text2sql.evaluation.evalset import EvalRow
from text2sql.evaluation.execution import (
    DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, NO_DATABASE, ExecutionResult, ReadOnlyDatabase,
)
from text2sql.evaluation.metrics import exact_match, normalized_exact_match, sql_tokenize, token_f1, token_jaccard

log = logging.getLogger(__name__)

WRONG_RESULT = "wrong_result"
GOLD_ERROR = "gold_error"
ERROR_CATEGORIES = ("syntax", "schema", "runtime", "timeout", "forbidden", WRONG_RESULT, NO_DATABASE, GOLD_ERROR)

# Rows run on one connection before it is reopened: bounds the gold-result cache, and opening a
# connection (~50 µs) per chunk costs nothing.
CHUNK_ROWS = 128
_DETAIL_CHARS = 300  # error messages kept per example


@dataclass
class ScoredExample:
    """One example's prediction and scores. `execution_match` and `valid_sql` are None when the row
    could not be executed (no database; for `execution_match` also when the gold SQL failed)."""

    id: str
    question: str
    gold_sql: str
    predicted_sql: str
    complexity: str
    db_id: str | None
    exact_match: float
    normalized_exact_match: float
    f1_score: float
    token_jaccard: float
    execution_match: float | None = None
    valid_sql: bool | None = None
    error: str = ""
    error_detail: str = ""
    gold_length: int = 0  # gold query length in SQL tokens
    raw_output: str | None = None
    bleu: float | None = None
    rouge_l: float | None = None

    @property
    def executable(self) -> bool:
        return self.error != NO_DATABASE

    @property
    def correct(self) -> bool:
        """Right by execution when it could be executed, else by exact match."""
        if self.execution_match is not None:
            return self.execution_match == 1.0
        return self.exact_match == 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_predictions(
    rows: Sequence[EvalRow],
    predictions: Sequence[str],
    *,
    raw_outputs: Sequence[str | None] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    text_metrics: bool = False,
    progress: bool = False,
) -> list[ScoredExample]:
    """Score `predictions[i]` against `rows[i]`; never raises for bad SQL or a missing database."""
    if len(rows) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
    raw_outputs = raw_outputs if raw_outputs is not None else [None] * len(rows)
    scored = [_string_scores(r, p, raw, text_metrics) for r, p, raw in zip(rows, predictions, raw_outputs)]
    outcomes = execute_pairs(rows, predictions, timeout=timeout, max_rows=max_rows, progress=progress)
    for example, outcome in zip(scored, outcomes):
        example.execution_match, example.valid_sql, example.error, example.error_detail = outcome
    return scored


def _string_scores(row: EvalRow, pred: str, raw: str | None, text_metrics: bool) -> ScoredExample:
    pred = pred or ""
    example = ScoredExample(
        id=row.id, question=row.question, gold_sql=row.sql, predicted_sql=pred,
        complexity=row.complexity or "", db_id=row.db_id,
        exact_match=exact_match(pred, row.sql),
        normalized_exact_match=normalized_exact_match(pred, row.sql),
        f1_score=token_f1(pred, row.sql),
        token_jaccard=token_jaccard(pred, row.sql),
        gold_length=len(sql_tokenize(row.sql)),
        raw_output=raw,
    )
    if text_metrics:
        from text2sql.evaluation.text_metrics import rouge_l, sentence_bleu

        example.bleu = sentence_bleu(pred, row.sql)
        example.rouge_l = rouge_l(pred, row.sql)
    return example


Outcome = tuple[float | None, bool | None, str, str]  # execution_match, valid_sql, error, detail


def execute_pairs(
    rows: Sequence[EvalRow],
    predictions: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
) -> list[Outcome]:
    """Run gold and predicted SQL of every row on its database and compare the results.

    Rows are grouped by database; each group runs on one read-only connection. Identical gold
    queries run once per chunk of rows; a prediction equal to its gold query reuses the gold
    result. Serial on purpose: a thread pool measured no faster, even on queries that run for tens
    of milliseconds, because the deadline check calls back into Python (BENCHMARKS.md, Evaluation).
    """
    from tqdm.auto import tqdm

    outcomes: list[Outcome] = [(None, None, NO_DATABASE, "no database for this row")] * len(rows)
    by_db: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.db_path:
            by_db[row.db_path].append(i)
    tasks = [(db, idx[k : k + CHUNK_ROWS]) for db, idx in by_db.items() for k in range(0, len(idx), CHUNK_ROWS)]
    bar = tqdm(total=sum(len(t[1]) for t in tasks), desc="executing", unit="ex", disable=not progress, leave=False)
    try:
        for db_path, indices in tasks:
            items = [(i, rows[i].sql, predictions[i] or "") for i in indices]
            _store(outcomes, _execute_chunk(db_path, items, timeout, max_rows), bar)
    finally:
        bar.close()
    return outcomes


def _store(outcomes: list[Outcome], done: list[tuple[int, Outcome]], bar) -> None:
    for i, outcome in done:
        outcomes[i] = outcome
    bar.update(len(done))


def _execute_chunk(
    db_path: str, items: list[tuple[int, str, str]], timeout: float, max_rows: int
) -> list[tuple[int, Outcome]]:
    try:
        db = ReadOnlyDatabase(db_path)
    except (OSError, sqlite3.Error) as exc:  # a missing or unreadable file: these rows cannot execute
        detail = f"cannot open database {db_path}: {exc}"[:_DETAIL_CHARS]
        return [(i, (None, None, NO_DATABASE, detail)) for i, _, _ in items]
    gold_cache: dict[str, ExecutionResult] = {}
    results = []
    with db:
        for i, gold_sql, pred_sql in items:
            gold = gold_cache.get(gold_sql)
            if gold is None:
                gold = gold_cache[gold_sql] = db.execute(gold_sql, timeout=timeout, max_rows=max_rows)
            pred = gold if pred_sql == gold_sql else db.execute(pred_sql, timeout=timeout, max_rows=max_rows)
            results.append((i, judge(gold_sql, gold, pred)))
    return results


def judge(gold_sql: str, gold: ExecutionResult, pred: ExecutionResult) -> Outcome:
    """(execution_match, valid_sql, error, detail) from the two results."""
    if gold.category == NO_DATABASE:
        return None, None, NO_DATABASE, (gold.error or "")[:_DETAIL_CHARS]
    valid = pred.ok
    if not gold.ok:
        return None, valid, GOLD_ERROR, f"gold SQL failed ({gold.category}): {gold.error}"[:_DETAIL_CHARS]
    if not pred.ok:
        return 0.0, False, pred.category or "runtime", (pred.error or "")[:_DETAIL_CHARS]
    if results_match(gold, pred, order_matters=gold_orders_results(gold_sql)):
        return 1.0, True, "", ""
    detail = f"gold returned {len(gold.rows)} rows, prediction {len(pred.rows)}"
    return 0.0, True, WRONG_RESULT, detail
