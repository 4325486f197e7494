"""Rewards from execution, for reinforcement learning (TRL's `GRPOTrainer`).

    reward = ExecutionReward(partial_credit=0.1, forbidden_penalty=-0.5)
    trainer = GRPOTrainer(..., reward_funcs=[reward, format_reward(0.1)])

TRL calls a reward function as `f(prompts=..., completions=..., completion_ids=..., **columns)`,
where `columns` are the dataset's other columns, one value per completion; here `sql` (the gold
query) and `db_path` (the row's database). Each completion's SQL (`extract_sql`) runs against the
gold on the row's database through `execute_pairs`: read-only connections, one per database, a
time limit per query and a cap on the rows fetched; the executor refuses any statement that writes.

Scores: 1.0 when the results match, `partial_credit` for SQL that runs but returns something else,
0.0 for SQL that does not parse or fails to run (and for an empty answer), `forbidden_penalty` for
SQL the executor refuses. A row whose gold SQL fails (or whose database cannot be opened) gets
None: TRL leaves that completion out of the advantage instead of scoring it (its rewards become
NaN and are averaged with `nanmean`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from text2sql.sql.extract import extract_sql, looks_like_sql
from text2sql.sql.match import WRONG_RESULT, execute_pairs
from text2sql.sql.results import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT

FORBIDDEN = "forbidden"


@dataclass
class RewardCounts:
    """Completions scored so far, by outcome (`total` counts every completion, unscored ones too)."""

    total: int = 0
    correct: int = 0
    wrong: int = 0  # ran, different result
    failing: int = 0  # did not parse or run (syntax, schema, runtime, timeout, empty)
    forbidden: int = 0
    unscored: int = 0  # gold SQL failed, or no database: reward None

    def add(self, other: RewardCounts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def shares(self, prefix: str = "execution/") -> dict[str, float]:
        """correct / wrong / failing / forbidden as shares of the scored completions, plus the unscored share."""
        scored = self.total - self.unscored
        out = {
            f"{prefix}{name}": (getattr(self, name) / scored if scored else 0.0)
            for name in ("correct", "wrong", "failing", "forbidden")
        }
        out[f"{prefix}unscored"] = self.unscored / self.total if self.total else 0.0
        return out


@dataclass
class _Row:
    sql: str
    db_path: str | None


class ExecutionReward:
    """A TRL reward function scoring each completion by executing its SQL against the gold: 1.0 for
    the gold's result, `partial_credit` for SQL that runs but differs, 0.0 for SQL that fails,
    `forbidden_penalty` for SQL the read-only executor refuses, None (left out) when the gold fails.

    `counts` accumulates over every call; `last` holds the counts of the latest call. When TRL
    passes `log_metric` (it does from 1.x on), the shares of each call are logged as
    `execution/correct`, `execution/failing`, ... and averaged over each logging window.
    """

    def __init__(
        self,
        *,
        partial_credit: float = 0.0,
        forbidden_penalty: float = -0.5,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_steps: int | None = None,
        result_match: str = "default",
    ):
        self.partial_credit = partial_credit
        self.forbidden_penalty = forbidden_penalty
        self.timeout = timeout
        self.max_rows = max_rows
        self.max_steps = max_steps
        self.result_match = result_match
        self.counts = RewardCounts()
        self.last = RewardCounts()
        self.__name__ = "execution"  # TRL names the reward's metrics after it (rewards/execution/mean)

    def score(self, outcome: tuple[Any, ...]) -> float | None:
        match, _valid, error, _detail = outcome
        if match is None:  # gold_error, no_database
            return None
        if match == 1.0:
            return 1.0
        if error == FORBIDDEN:
            return self.forbidden_penalty
        if error == WRONG_RESULT:
            return self.partial_credit
        return 0.0

    def __call__(
        self,
        prompts: list[Any] | None = None,
        completions: list[Any] | None = None,
        completion_ids: list[Any] | None = None,
        *,
        sql: list[str],
        db_path: list[str | None],
        log_metric: Any = None,
        **_: Any,
    ) -> list[float | None]:
        texts = [_completion_text(c) for c in completions or []]
        predictions = [extract_sql(t) for t in texts]
        rows = [_Row(s or "", d or None) for s, d in zip(sql, db_path)]
        outcomes = execute_pairs(
            rows,
            predictions,
            timeout=self.timeout,
            max_rows=self.max_rows,
            max_steps=self.max_steps,
            result_match=self.result_match,
        )
        rewards: list[float | None] = []
        batch = RewardCounts(total=len(outcomes))
        for outcome in outcomes:
            reward = self.score(outcome)
            rewards.append(reward)
            error = outcome[2]
            if reward is None:
                batch.unscored += 1
            elif outcome[0] == 1.0:
                batch.correct += 1
            elif error == FORBIDDEN:
                batch.forbidden += 1
            elif error == WRONG_RESULT:
                batch.wrong += 1
            else:
                batch.failing += 1
        self.last = batch
        self.counts.add(batch)
        if log_metric is not None:
            for name, value in batch.shares().items():
                log_metric(name, value)
        return rewards


def is_single_statement(text: str) -> bool:
    """Whether `text` is one SQL statement and nothing else: no prose, no fence, no second statement
    (one trailing `;` is fine)."""
    body = text.strip()
    if body.endswith(";"):
        body = body[:-1].rstrip()
    if not body or not looks_like_sql(body):
        return False
    return extract_sql(body) == body


def format_reward(weight: float):
    """A TRL reward function: `weight` when the completion is exactly one SQL statement, else 0."""

    def reward(completions: list[Any] | None = None, **_: Any) -> list[float | None]:
        return [weight if is_single_statement(_completion_text(c)) else 0.0 for c in completions or []]

    reward.__name__ = "format"
    return reward


def _completion_text(completion: Any) -> str:
    """A completion's text: TRL passes a string for plain prompts, a list of messages for chat ones."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        return content if isinstance(content, str) else ""
    return str(completion or "")


__all__ = [
    "ExecutionReward",
    "RewardCounts",
    "format_reward",
    "is_single_statement",
]
