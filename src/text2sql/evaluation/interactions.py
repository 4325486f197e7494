"""Question match and interaction match: how a model does on conversations, as SParC and CoSQL report it.

Rows that are turns of a conversation carry its id and their turn (`ScoredExample.interaction`, `.turn`,
from the readers' `extra`). Over those rows:

- question_match: share of turns answered right;
- interaction_match: share of interactions whose every turn is right (one wrong turn fails the whole
  conversation, as it would fail the user);
- by_turn: question match of the first, second, third and later ("4+") turns, where follow-ups get harder.

A turn is right as `ScoredExample.correct` says: by execution where it could run, else by exact match.
The `exact_set_*` twins use Spider's exact-set match instead (SParC's own measure; a turn whose gold
does not parse counts as wrong there). An interaction counts the turns that were evaluated (all of
them, unless --max-samples cut it short).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from text2sql.evaluation.scoring import ScoredExample

TURN_BUCKETS = ("1", "2", "3", "4+")


def _share(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _turn_bucket(turn: int) -> str:
    return TURN_BUCKETS[min(max(turn, 1), len(TURN_BUCKETS)) - 1]


def interaction_scores(scored: Sequence[ScoredExample]) -> dict[str, Any] | None:
    """metrics.json's `interactions` section (see the module docstring); None when no row is a turn of a
    conversation."""
    turns = [s for s in scored if s.interaction is not None]
    if not turns:
        return None
    groups: dict[str, list[ScoredExample]] = {}
    for s in turns:
        groups.setdefault(str(s.interaction), []).append(s)

    def rates(right: Callable[[ScoredExample], bool]) -> tuple[float | None, float | None]:
        question = _share([right(s) for s in turns])
        interaction = _share([all(right(s) for s in group) for group in groups.values()])
        return question, interaction

    question_match, interaction_match = rates(lambda s: s.correct)
    exact_question, exact_interaction = rates(lambda s: s.exact_set_match == 1.0)
    by_turn: dict[str, list[ScoredExample]] = {}
    for s in turns:
        by_turn.setdefault(_turn_bucket(s.turn or 1), []).append(s)
    return {
        "num_interactions": len(groups),
        "num_turns": len(turns),
        "question_match": question_match,
        "interaction_match": interaction_match,
        "exact_set_question_match": exact_question,
        "exact_set_interaction_match": exact_interaction,
        "by_turn": {
            bucket: {"num_turns": len(by_turn[bucket]), "question_match": _share([s.correct for s in by_turn[bucket]])}
            for bucket in TURN_BUCKETS
            if bucket in by_turn
        },
    }


def interaction_note(section: dict[str, Any] | None) -> str | None:
    """One line for the summary and the report: question and interaction match, and by turn."""
    if not section:
        return None

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 100:.1f} %"

    turns = ", ".join(f"turn {k} {pct(v['question_match'])}" for k, v in section["by_turn"].items())
    return (
        f"follow-up questions: question match {pct(section['question_match'])} over {section['num_turns']:,} turns, "
        f"interaction match {pct(section['interaction_match'])} over {section['num_interactions']:,} interactions "
        f"(every turn right); {turns}"
    )
