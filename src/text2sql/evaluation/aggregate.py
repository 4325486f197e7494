"""Per-example scores → the numbers in metrics.json: overall, by complexity, by query length.

Denominators, stated once:
- exact_match, normalized_exact_match, f1_score (the names fine-tuning scripts use), token_jaccard, bleu, rouge_l:
  every row.
- execution_accuracy: rows that have a database and whose gold SQL runs (`num_execution_scored`).
  Rows with no database (`num_not_executable`) and rows whose gold SQL fails (`gold_errors`) are
  counted and reported, never silently dropped.
- valid_sql_rate: share of rows with a database whose prediction parses and runs.
- interactions (only when rows are turns of conversations): question match over those turns,
  interaction match over their conversations (`text2sql.evaluation.interactions`).
A rate whose denominator is 0 is None (null in JSON), not 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from text2sql.evaluation.interactions import interaction_note, interaction_scores
from text2sql.evaluation.metrics import wrong_values
from text2sql.evaluation.scoring import ScoredExample
from text2sql.evaluation.text_metrics import corpus_bleu
from text2sql.sql.match import ERROR_CATEGORIES, GOLD_ERROR

# Gold query length buckets, in `sql_tokenize` tokens: (label, low, high inclusive or None).
LENGTH_BUCKETS = (("1-10", 1, 10), ("11-20", 11, 20), ("21-40", 21, 40), ("41-80", 41, 80), ("81+", 81, None))

# Known label orders (bundled, BIRD difficulty, Spider hardness); other labels follow, sorted.
COMPLEXITY_ORDER = (
    "basic",
    "aggregation",
    "ordering",
    "join",
    "nested",
    "set operation",
    "simple",
    "moderate",
    "challenging",
    "easy",
    "medium",
    "hard",
    "extra",
)

HEADLINE = ("execution_accuracy", "exact_match", "normalized_exact_match", "f1_score", "valid_sql_rate")


def _mean(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are there; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarize(scored: Sequence[ScoredExample]) -> dict[str, Any]:
    """Counts and rates for one group of examples."""
    executable = [s for s in scored if s.executable]
    execution_scored = [s for s in executable if s.execution_match is not None]
    summary: dict[str, Any] = {
        "num_examples": len(scored),
        "num_executable": len(executable),
        "num_not_executable": len(scored) - len(executable),
        "gold_errors": sum(1 for s in executable if s.error == GOLD_ERROR),
        "num_execution_scored": len(execution_scored),
        "execution_accuracy": _mean(s.execution_match for s in execution_scored),
        "exact_match": _mean(s.exact_match for s in scored),
        "normalized_exact_match": _mean(s.normalized_exact_match for s in scored),
        "exact_set_match": _mean(s.exact_set_match for s in scored),
        "f1_score": _mean(s.f1_score for s in scored),
        "token_jaccard": _mean(s.token_jaccard for s in scored),
        "valid_sql_rate": _mean(float(bool(s.valid_sql)) for s in executable if s.valid_sql is not None),
    }
    if any(s.voted_match is not None for s in scored):
        # maj@k and pass@k over execution accuracy's rows (`num_execution_scored`), so all three line up.
        summary["maj_at_k"] = _mean(s.voted_match for s in execution_scored)
        summary["pass_at_k"] = _mean(s.pass_match for s in execution_scored)
    if any(s.rouge_l is not None for s in scored):
        summary["sentence_bleu"] = _mean(s.bleu for s in scored if s.bleu is not None)
        summary["rouge_l"] = _mean(s.rouge_l for s in scored if s.rouge_l is not None)
    return summary


def complexity_order(labels: Iterable[str]) -> list[str]:
    known = {label: i for i, label in enumerate(COMPLEXITY_ORDER)}
    return sorted(set(labels), key=lambda label: (known.get(label.lower(), len(known)), label))


def length_bucket(tokens: int) -> str:
    for label, low, high in LENGTH_BUCKETS:
        if tokens >= low and (high is None or tokens <= high):
            return label
    return LENGTH_BUCKETS[0][0]  # an empty gold query


def aggregate(scored: Sequence[ScoredExample], *, text_metrics: bool = False) -> dict[str, Any]:
    """metrics.json's numbers: `summarize` over all rows, plus error_counts, by_complexity and
    by_length (each group summarized the same way), and `interactions` when rows are turns of
    conversations."""
    metrics = summarize(scored)
    errors = Counter(s.error for s in scored if s.error)
    metrics["error_counts"] = {c: errors[c] for c in ERROR_CATEGORIES if errors[c]} | {
        c: n for c, n in errors.items() if c not in ERROR_CATEGORIES
    }
    # Wrong answers that are the gold query with other values: what value hints are for.
    metrics["wrong_values"] = sum(1 for s in scored if not s.correct and wrong_values(s.predicted_sql, s.gold_sql))
    groups: dict[str, list[ScoredExample]] = {}
    for s in scored:
        groups.setdefault(s.complexity or "(none)", []).append(s)
    metrics["by_complexity"] = {label: summarize(groups[label]) for label in complexity_order(groups)}
    by_length: dict[str, list[ScoredExample]] = {}
    for s in scored:
        by_length.setdefault(length_bucket(s.gold_length), []).append(s)
    metrics["by_length"] = {label: summarize(by_length[label]) for label, _, _ in LENGTH_BUCKETS if label in by_length}
    if text_metrics:
        metrics["bleu"] = corpus_bleu([s.predicted_sql for s in scored], [s.gold_sql for s in scored])
    interactions = interaction_scores(scored)
    if interactions is not None:
        metrics["interactions"] = interactions
    return metrics


def notes(metrics: dict[str, Any]) -> list[str]:
    """Plain sentences about what was not scored and why (printed, and shown in the report)."""
    out = []
    n = metrics["num_examples"]
    missing = metrics["num_not_executable"]
    conversations = interaction_note(metrics.get("interactions"))
    if conversations:
        out.append(conversations)
    if missing:
        out.append(
            f"{missing:,} of {n:,} rows could not be executed (no database): they are scored by exact match and F1 only"
        )
    if metrics.get("gold_errors"):
        out.append(
            f"{metrics['gold_errors']:,} rows were left out of execution accuracy because their gold SQL "
            "failed to run (see error 'gold_error' in results.csv)"
        )
    if metrics.get("execution_accuracy") is None:
        out.append("no row could be scored by execution: execution accuracy is not available")
    audit = metrics.get("gold_audit") or {}
    if audit.get("counts"):
        kinds = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in sorted(audit["counts"].items()))
        shown = (
            f"{audit['excluded']:,} unstable rows were left out of the scores (--exclude-unstable-gold)"
            if audit.get("excluded")
            else f"{audit.get('unstable_rows', 0):,} are unstable (LIMIT or ORDER BY over ties, gold that fails); "
            "--exclude-unstable-gold scores without them"
        )
        out.append(f"gold audit: {kinds}; {shown}")
    run = metrics.get("run") or {}
    if run.get("step_budget"):
        out.append(
            f"SQLite queries were stopped after {run['step_budget']:,} virtual-machine steps (the same on every "
            f"machine), other engines after {run.get('timeout')} s"
        )
    if run.get("result_match") == "bird":
        out.append("results compared as BIRD's script does: sets of rows, exactly")
    for note in metrics.get("notes", []):
        out.append(note)
    return out
