"""Score predictions one example at a time: string metrics, and execution on the example's database.

Every query, gold or predicted, runs through `sql.execution` (see `sql.match`:
read-only file, authorizer, deadline, row cap): predicted SQL is untrusted and nothing else in
evaluation opens a database. A prediction that fails to parse or run is a wrong answer with a recorded reason.

Per-example `error` (empty when the prediction is right):
  syntax, schema (unknown table or column), runtime, timeout, forbidden (tried to write or attach),
  truncated (the answer hit the token limit before it ended),
  wrong_result (ran, different result), no_database (the row has no database to run on: it is
  scored by EM/F1 only), gold_error (the gold SQL itself failed: excluded from execution accuracy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from text2sql.evaluation.evalset import EvalRow
from text2sql.evaluation.exact_set import exact_set_match
from text2sql.evaluation.metrics import exact_match, normalized_exact_match, sql_tokenize, token_f1, token_jaccard
from text2sql.evaluation.sampling import Voted
from text2sql.evaluation.text_metrics import rouge_l, sentence_bleu
from text2sql.sql.execution import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, NO_DATABASE
from text2sql.sql.match import PROMPT_TOO_LONG, TRUNCATED, execute_pairs


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
    # Spider's exact-set match (component matching, values ignored); None when the gold does not parse.
    exact_set_match: float | None = None
    execution_match: float | None = None
    valid_sql: bool | None = None
    error: str = ""
    error_detail: str = ""
    gold_length: int = 0  # gold query length in SQL tokens
    raw_output: str | None = None
    bleu: float | None = None
    rouge_l: float | None = None
    # With evaluation.num_samples > 1: the SQL the vote chose, whether it is right (maj@k), whether
    # any candidate is (pass@k), how many candidates agreed with the chosen one, out of how many.
    voted_sql: str | None = None
    voted_match: float | None = None
    pass_match: float | None = None
    support: int | None = None
    candidates: int | None = None
    # A turn of a conversation: its interaction's id and 1-based turn (question and interaction match).
    interaction: str | None = None
    turn: int | None = None

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
    cut: Sequence[bool] | None = None,
    too_long: Sequence[str | None] | None = None,
    voted: Sequence[Voted] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
    text_metrics: bool = False,
    progress: bool = False,
    max_steps: int | None = None,
    result_match: str = "default",
) -> list[ScoredExample]:
    """Score `predictions[i]` against `rows[i]`; never raises for bad SQL or a missing database.

    `cut[i]` says the model's answer reached its token limit before it ended: a wrong answer that
    was cut is counted as `truncated`, whatever error its unfinished SQL gave (the fix is a larger
    `max_new_tokens`, not a better model). `too_long[i]`, when set, says why row i's prompt was
    over budget: it was not asked, and is scored wrong as `prompt_too_long`."""
    if len(rows) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
    raw_outputs = raw_outputs if raw_outputs is not None else [None] * len(rows)
    scored = [_string_scores(r, p, raw, text_metrics) for r, p, raw in zip(rows, predictions, raw_outputs)]
    outcomes = execute_pairs(
        rows,
        predictions,
        timeout=timeout,
        max_rows=max_rows,
        progress=progress,
        max_steps=max_steps,
        result_match=result_match,
    )
    for i, (example, outcome) in enumerate(zip(scored, outcomes)):
        example.execution_match, example.valid_sql, example.error, example.error_detail = outcome
        if cut is not None and cut[i] and example.error and example.error != NO_DATABASE:
            example.error_detail = (
                f"the answer reached the token limit before it ended ({example.error}: {example.error_detail})"
            )
            example.error = TRUNCATED
        if too_long is not None and too_long[i]:
            example.error, example.error_detail = PROMPT_TOO_LONG, too_long[i] or ""
            if example.execution_match is not None:
                example.execution_match, example.valid_sql = 0.0, False
        if voted is not None:
            v = voted[i]
            example.voted_sql, example.support, example.candidates = v.sql, v.support, v.candidates
            if example.execution_match is not None:  # the same denominator as execution accuracy
                example.voted_match = v.match if v.match is not None else 0.0
                example.pass_match = v.any_match if v.any_match is not None else 0.0
    return scored


def _string_scores(row: EvalRow, pred: str, raw: str | None, text_metrics: bool) -> ScoredExample:
    pred = pred or ""
    example = ScoredExample(
        id=row.id,
        question=row.question,
        gold_sql=row.sql,
        predicted_sql=pred,
        complexity=row.complexity or "",
        db_id=row.db_id,
        exact_match=exact_match(pred, row.sql),
        normalized_exact_match=normalized_exact_match(pred, row.sql),
        exact_set_match=exact_set_match(pred, row.sql),
        f1_score=token_f1(pred, row.sql),
        token_jaccard=token_jaccard(pred, row.sql),
        gold_length=len(sql_tokenize(row.sql)),
        raw_output=raw,
        interaction=_interaction(row),
        turn=_turn(row),
    )
    if text_metrics:
        example.bleu = sentence_bleu(pred, row.sql)
        example.rouge_l = rouge_l(pred, row.sql)
    return example


def _interaction(row: EvalRow) -> str | None:
    value = row.extra.get("interaction") if row.extra else None
    return None if value is None else str(value)


def _turn(row: EvalRow) -> int | None:
    value = row.extra.get("turn") if row.extra else None
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
