"""Execution voting: several candidate queries for one question, and the database decides.

Each candidate runs read-only (identical texts once); the ones that fail are dropped; the rest are
grouped by result, with the comparison execution accuracy uses (`results_match`, order compared
when the group's first query orders its rows); the largest group wins. Ties go to the group holding
the most likely candidate, and within the winning group the most likely candidate is the answer.
When every candidate fails, the most likely one is returned as it is (it carries the error a repair
round can use).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from text2sql.sql.equivalence import gold_orders_results, results_match
from text2sql.sql.execution import Database
from text2sql.sql.results import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT, ExecutionResult


@dataclass
class Vote:
    chosen: int  # index of the answer among the candidates
    groups: list[list[int]]  # candidates with equal results, largest group first; failed ones in none
    results: list[ExecutionResult] = field(default_factory=list)  # per candidate

    @property
    def support(self) -> int:
        """How many candidates agree with the answer."""
        return len(self.groups[0]) if self.groups else 0


def vote(
    db: Database,
    candidates: Sequence[str],
    scores: Sequence[float | None] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> Vote:
    """The answer among `candidates` (queries for one question on `db`); `scores` are their
    log-likelihoods (None or missing: ranked in the order given, first best)."""
    if not candidates:
        raise ValueError("vote needs at least one candidate")
    rank = _ranking(len(candidates), scores)
    done: dict[str, ExecutionResult] = {}
    results = []
    for sql in candidates:
        if sql not in done:
            done[sql] = db.execute(sql, timeout=timeout, max_rows=max_rows) if sql.strip() else _empty()
        results.append(done[sql])
    groups: list[list[int]] = []
    for i, result in enumerate(results):
        if not result.ok:
            continue
        for group in groups:
            first = group[0]
            if candidates[i] == candidates[first] or results_match(
                results[first], result, order_matters=gold_orders_results(candidates[first])
            ):
                group.append(i)
                break
        else:
            groups.append([i])
    if not groups:
        return Vote(min(range(len(candidates)), key=rank.__getitem__), [], results)
    for group in groups:
        group.sort(key=rank.__getitem__)
    groups.sort(key=lambda g: (-len(g), rank[g[0]]))
    return Vote(groups[0][0], groups, results)


def _ranking(n: int, scores: Sequence[float | None] | None) -> list[int]:
    """Each candidate's place by likelihood (0 is the most likely); ties and missing scores keep
    the given order."""

    def score(i: int) -> float:
        value = scores[i] if scores is not None and i < len(scores) else None
        return float("-inf") if value is None else value

    keyed = sorted(range(n), key=lambda i: (-score(i), i))
    place = [0] * n
    for position, i in enumerate(keyed):
        place[i] = position
    return place


def _empty() -> ExecutionResult:
    return ExecutionResult(error="the model answered without SQL", category="syntax")
