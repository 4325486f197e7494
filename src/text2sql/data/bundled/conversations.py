"""Conversation templates of the follow-up split, and their expansion into checked interactions.

A `Conversation` is a first question and the follow-ups that refine it, as people ask them: add a
filter ("Only those over 120 minutes."), change the ordering ("Sort them by price."), restrict to a
time ("Just the ones from 2023."), count or average instead of listing ("How many are there?"). Each
step is the whole SQL of that turn with its paraphrases. One row of the `values` query (crossed with
`choices`) fills the slots of every step, so the turns of an interaction agree.

An interaction is kept only when every turn's SQL returns a deterministic, non-empty answer (as
`pairs.has_deterministic_answer` checks single pairs), each turn's answer differs from the one before
(a follow-up that changes nothing teaches nothing), and its first SQL is no pair of the other splits.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass

from text2sql.data.bundled.pairs import Slots, has_deterministic_answer, slot_sets


@dataclass(frozen=True)
class Step:
    """One turn of a conversation: its SQL and the ways its question is put."""

    sql: str
    questions: tuple[str, ...]


@dataclass(frozen=True)
class Conversation:
    name: str
    values: str
    steps: tuple[Step, ...]
    choices: tuple[tuple[Slots, ...], ...] = ()


@dataclass(frozen=True)
class Interaction:
    """One expanded conversation: its (question, SQL) turns, in order."""

    db_id: str
    template: str
    turns: tuple[tuple[str, str], ...]


def expand_conversation(
    conversation: Conversation,
    db_id: str,
    conn: sqlite3.Connection,
    rng: random.Random,
    cap: int,
    taken_sql: set[str],
) -> list[Interaction]:
    """Up to `cap` checked interactions of one conversation, each from other slot values. A first SQL in
    `taken_sql` (the other splits' queries, and the first turns kept so far) is skipped; a kept one is
    added to it, so no two interactions open alike."""
    candidates = slot_sets(conn, conversation.values, conversation.choices)
    rng.shuffle(candidates)
    out: list[Interaction] = []
    for slots in candidates:
        if len(out) == cap:
            break
        sqls = [step.sql.format(**slots) for step in conversation.steps]
        if sqls[0] in taken_sql or not _answers_change(conn, sqls, conversation.name):
            continue
        taken_sql.add(sqls[0])
        questions = [rng.choice(step.questions).format(**slots) for step in conversation.steps]
        out.append(Interaction(db_id, conversation.name, tuple(zip(questions, sqls))))
    return out


def _answers_change(conn: sqlite3.Connection, sqls: list[str], name: str) -> bool:
    """Every turn answers deterministically with rows, and differently from the turn before."""
    previous = None
    for sql in sqls:
        if not has_deterministic_answer(conn, sql, name):
            return False
        rows = conn.execute(sql).fetchall()
        if rows == previous:
            return False
        previous = rows
    return True
