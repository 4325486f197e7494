"""Question/SQL templates, and their expansion into checked pairs over one database.

A `Template` is one SQL shape with several paraphrases of the same question. Its slots are filled
from rows of the database itself (the `values` query), crossed with fixed alternatives (`choices`:
"highest" -> MAX, "3" -> LIMIT 3). Database values appear verbatim in the question and in the SQL,
so a model can copy them. Every pair is executed before it is kept: it must return at least one
non-NULL row, and when it orders rows the order must be unique (no ties), so its answer is
deterministic.
"""

from __future__ import annotations

import random
import re
import sqlite3
import string
from dataclasses import dataclass
from itertools import product

Slots = dict[str, str]


@dataclass(frozen=True)
class Template:
    """One SQL shape and its paraphrases.

    `values` is a query over the database whose result columns are named after slots; each of its
    distinct rows is one way to fill them. `choices` are fixed alternatives crossed with those rows,
    for slots that are not database values (aggregate words, sort direction, top-k).
    """

    name: str
    sql: str
    questions: tuple[str, ...]
    values: str = ""
    choices: tuple[tuple[Slots, ...], ...] = ()


@dataclass(frozen=True)
class Pair:
    db_id: str
    template: str
    paraphrase: int
    question: str
    sql: str
    complexity: str


# Fixed alternatives shared by the domains, so that the same English maps to the same SQL everywhere.
AGGREGATES: tuple[Slots, ...] = (
    {"agg_word": "average", "agg": "AVG"},
    {"agg_word": "highest", "agg": "MAX"},
    {"agg_word": "lowest", "agg": "MIN"},
)
TOP_K: tuple[Slots, ...] = tuple({"k": str(k)} for k in range(2, 11))


def superlatives(high: str, low: str) -> tuple[Slots, ...]:
    """The two ends of an ordering, as question words with their sort direction."""
    return ({"sup": high, "dir": "DESC"}, {"sup": low, "dir": "ASC"})


def complexity(sql: str) -> str:
    """The taxonomy label of a canonical SQL query, by its most demanding construct."""
    if re.search(r"\b(UNION|INTERSECT|EXCEPT)\b", sql):
        return "set operation"
    if sql.count("SELECT") > 1:
        return "nested"
    if " JOIN " in sql:
        return "join"
    if " ORDER BY " in sql:
        return "ordering"
    if re.search(r"\b(COUNT|SUM|AVG|MIN|MAX)\(|\bGROUP BY\b", sql):
        return "aggregation"
    return "basic"


def expand(
    template: Template,
    db_id: str,
    conn: sqlite3.Connection,
    rng: random.Random,
    cap: int,
    seen_questions: set[str],
) -> list[Pair]:
    """Up to `cap` checked pairs of one template, spread over as many slot values as possible.

    Every value combination is used once (with a random paraphrase) before any is used again, so
    a template with many values yields many different SQL queries rather than one query phrased
    several ways. Questions in `seen_questions` are skipped, and the kept ones are added to it.
    """
    slot_sets = _slot_sets(template, conn)
    _check_slots(template, slot_sets)
    rng.shuffle(slot_sets)
    n_questions = len(template.questions)
    paraphrase_orders = [rng.sample(range(n_questions), n_questions) for _ in slot_sets]
    answerable: dict[int, bool] = {}
    pairs: list[Pair] = []
    for round_ in range(n_questions):
        for index, (slots, order) in enumerate(zip(slot_sets, paraphrase_orders)):
            if len(pairs) == cap:
                return pairs
            question = template.questions[order[round_]].format(**slots)
            sql = template.sql.format(**slots)
            if question in seen_questions:
                continue
            if index not in answerable:
                answerable[index] = has_deterministic_answer(conn, sql, template.name)
            if not answerable[index]:
                continue
            seen_questions.add(question)
            pairs.append(Pair(db_id, template.name, order[round_], question, sql, complexity(sql)))
    return pairs


def _slot_sets(template: Template, conn: sqlite3.Connection) -> list[Slots]:
    return slot_sets(conn, template.values, template.choices)


def slot_sets(conn: sqlite3.Connection, values: str, choices: tuple[tuple[Slots, ...], ...] = ()) -> list[Slots]:
    """Each distinct row of the `values` query as slots (one empty set without a query), crossed with
    each group of fixed `choices`."""
    out: list[Slots] = [{}]
    if values:
        cursor = conn.execute(values)
        columns = [d[0] for d in cursor.description]
        # Sorted so that the result does not depend on SQLite's scan order.
        rows = sorted(set(cursor.fetchall()), key=lambda row: [(type(v).__name__, v) for v in row])
        out = [dict(zip(columns, map(_render, row))) for row in rows]
    for alternatives in choices:
        out = [{**slots, **extra} for slots, extra in product(out, alternatives)]
    return out


def _render(value: object) -> str:
    """A database value as it is written in both the question and the SQL."""
    if isinstance(value, str):
        # A quote would need escaping in SQL and then no longer appear verbatim in the question.
        if "'" in value:
            raise ValueError(f"slot value {value!r} contains a quote; keep it out of the word lists")
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    raise ValueError(f"slot value {value!r} cannot be written into a question")


def _check_slots(template: Template, slot_sets: list[Slots]) -> None:
    """Template-authoring errors: unknown slots, and database values missing from a question."""
    if not slot_sets:
        raise ValueError(f"template {template.name}: its values query returned no rows")
    available = set(slot_sets[0])
    fields = {f for _, f, _, _ in string.Formatter().parse(template.sql) if f}
    from_database = available - {key for group in template.choices for c in group for key in c}
    for text in (template.sql, *template.questions):
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        if used - available:
            raise ValueError(f"template {template.name}: unknown slots {sorted(used - available)}")
        if from_database - used:
            raise ValueError(f"template {template.name}: {text!r} lacks database slots {sorted(from_database - used)}")
    if not fields:
        raise ValueError(f"template {template.name}: SQL has no slots, so it yields one pair only")


_ORDERED = re.compile(
    r"^SELECT (?P<columns>.+?) FROM (?P<body>.+) ORDER BY (?P<key>.+?) (?P<dir>ASC|DESC)"
    r"(?: LIMIT (?P<limit>\d+))?$"
)


def has_deterministic_answer(conn: sqlite3.Connection, sql: str, name: str) -> bool:
    """True when the query returns a non-NULL row and, if it orders rows, the order has no ties."""
    try:
        rows = conn.execute(sql).fetchall()
    except sqlite3.Error as exc:
        raise ValueError(f"template {name}: {sql!r} fails: {exc}") from exc
    if not rows or all(v is None for row in rows for v in row):
        return False
    if " ORDER BY " not in sql:
        return True
    match = _ORDERED.match(sql)
    if match is None or match["columns"].startswith("DISTINCT"):
        raise ValueError(f"template {name}: ORDER BY outside the canonical shape in {sql!r}")
    if match["columns"] == match["key"]:
        return True  # rows tied on the key are identical, so their order cannot matter
    # The sort keys of the returned rows plus the next one must all differ: otherwise which rows
    # make the cut, or their order, is up to SQLite.
    key_sql = f"SELECT {match['key']} FROM {match['body']} ORDER BY {match['key']} {match['dir']}"
    if match["limit"]:
        key_sql += f" LIMIT {int(match['limit']) + 1}"
    keys = [row[0] for row in conn.execute(key_sql).fetchall()]
    return len(set(keys)) == len(keys)
