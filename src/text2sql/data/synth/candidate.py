"""What every query shape works with: the database as the shapes see it (`DatabaseView`), the
candidate pair a shape draws (`Candidate`: SQL in the database's dialect, its templated question, and
what its result must look like to be kept, see `checks`), and the small builders the shapes share.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from text2sql.data.synth.build import column, literal, render, table
from text2sql.data.synth.joins import Edge
from text2sql.data.synth.names import plural
from text2sql.data.synth.phrasings import GREATER, LESS, PHRASINGS
from text2sql.data.synth.profile import ColumnProfile, TableProfile

BASIC, AGGREGATION, ORDERING, JOIN, NESTED, SET_OPERATION = (
    "basic",
    "aggregation",
    "ordering",
    "join",
    "nested",
    "set operation",
)
CLASSES = (BASIC, AGGREGATION, ORDERING, JOIN, NESTED, SET_OPERATION)
MAX_K = 5  # largest LIMIT a top-k question asks for


@dataclass
class DatabaseView:
    """One database as the shapes see it."""

    db_id: str
    dialect: str
    tables: dict[str, TableProfile]
    edges: list[Edge]


@dataclass
class Candidate:
    """One drawn pair before it is checked: its class and shape, SQL and templated question."""

    cls: str
    shape: str
    sql: str
    question: str
    columns: frozenset[str]  # table.column of every column it reads: part of its result signature
    rows_below: int | None = None  # the result must have fewer rows (a filter meant to narrow)
    count_below: int | None = None  # its single value must be a count above 0 and below this
    order_keys: str | None = None  # SQL giving the sort keys of the rows it returns (and the next): no ties
    ordered: bool = False  # row order is part of the answer
    relaxed: tuple[str, ...] = ()  # the SQL without each of its filters: each must return another result


Shape = Callable[[DatabaseView, random.Random], "Candidate | None"]


# --------------------------------------------------------------------------------------- helpers


def pick(rng: random.Random, items: list[Any]) -> Any:
    return rng.choice(items) if items else None


def shared_value(rng: random.Random, col: ColumnProfile, rows: int) -> Any:
    """A value that some rows hold and others do not (a filter on it narrows the table)."""
    values = [v for v, n in col.top if n < rows]
    return pick(rng, values)


def threshold(rng: random.Random, col: ColumnProfile) -> Any:
    """A value inside the column's range, so that rows lie on both sides of it."""
    inner = col.spread[1:-1]
    return pick(rng, inner)


def comparison(rng: random.Random) -> tuple[str, str]:
    op, words = rng.choice((GREATER, LESS))
    return op, rng.choice(words)


def compare(op: str, left: exp.Expr, right: exp.Expr) -> exp.Expr:
    return exp.GT(this=left, expression=right) if op == ">" else exp.LT(this=left, expression=right)


def equals(left: exp.Expr, value: Any) -> exp.Expr:
    return exp.EQ(this=left, expression=literal(value))


class _Slots(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"  # left in the question: `checks` drops it as an unfilled slot


def which_or(rng: random.Random, key: str, fields: list[Any]) -> str:
    """`key`'s templates, or half the time for a question asking for the label alone, its "which"
    templates (`<key>_which`), which name no fields: "Which customers have no orders?"."""
    return f"{key}_which" if len(fields) == 1 and rng.random() < 0.5 else key


def phrase(rng: random.Random, shape: str, slots: dict[str, str]) -> str:
    """One of the shape's templates (`phrasings`), filled; a slot the shape did not fill stays in braces."""
    text = rng.choice(PHRASINGS[shape]).format_map(_Slots(slots))
    return " ".join(text.split())


def label_of(t: TableProfile) -> ColumnProfile:
    """The table's label column; shapes ask for it only of tables that have one."""
    assert t.label is not None
    return t.label


def table_slots(t: TableProfile) -> dict[str, str]:
    slots = {"thing": t.noun, "things": t.nouns}
    if t.label is not None:
        slots.update(label=t.label.phrase, labels=plural(t.label.phrase))
    return slots


def link_slots(view: DatabaseView, edge: Edge) -> dict[str, str]:
    child, parent = view.tables[edge.child], view.tables[edge.parent]
    slots = {"cthing": child.noun, "cthings": child.nouns, "pthing": parent.noun, "pthings": parent.nouns}
    slots["role"] = edge.role
    if child.label is not None:
        slots.update(clabel=child.label.phrase, clabels=plural(child.label.phrase))
    if parent.label is not None:
        slots.update(plabel=parent.label.phrase, plabels=plural(parent.label.phrase))
    return slots


def columns_read(*pairs: tuple[str, str]) -> frozenset[str]:
    return frozenset(f"{t}.{c}" for t, c in pairs)


def tables_where(view: DatabaseView, need: Callable[[TableProfile], bool]) -> list[TableProfile]:
    return [t for t in view.tables.values() if need(t)]


def not_null(col: exp.Expr) -> exp.Expr:
    return exp.Not(this=exp.Is(this=col, expression=exp.Null()))


def all_of(*conditions: exp.Expr | None) -> exp.Expr | None:
    kept = [c for c in conditions if c is not None]
    return exp.and_(*kept) if kept else None


def nulls_out(col: ColumnProfile, t: TableProfile, node: exp.Expr) -> exp.Expr | None:
    """`col IS NOT NULL` when the column holds NULLs: engines sort NULL first or last differently."""
    return not_null(node) if col.non_null < t.rows else None


def relaxations(build: Callable[[list[Any]], exp.Expr], conditions: list[Any], dialect: str) -> tuple[str, ...]:
    """The query `build` makes from the conditions, once without each of them (`Candidate.relaxed`)."""
    return tuple(render(build(conditions[:i] + conditions[i + 1 :]), dialect) for i in range(len(conditions)))


def sort_keys(query: exp.Select, key: exp.Expr, limit: int | None) -> exp.Select:
    """The sort keys of an ordered query's rows, and of the next row after a LIMIT (`Candidate.order_keys`)."""
    keys = query.copy().select(key.copy(), append=False)
    return keys.limit(limit + 1) if limit is not None else keys


def select_from(view: DatabaseView, t: TableProfile, *columns: exp.Expr, where: exp.Expr | None = None):
    """SELECT columns FROM the table [WHERE where]."""
    query = exp.select(*columns).from_(table(t.name, view.dialect))
    return query.where(where) if where is not None else query


def pick_edge(
    view: DatabaseView, rng: random.Random, need: Callable[[TableProfile, TableProfile], bool]
) -> Edge | None:
    return pick(rng, [e for e in view.edges if need(view.tables[e.child], view.tables[e.parent])])


def joined(view: DatabaseView, e: Edge, *columns: exp.Expr) -> exp.Select:
    """SELECT columns FROM child AS T1 JOIN parent AS T2 ON T1.fk = T2.key."""
    d = view.dialect
    on = exp.EQ(this=column(e.child_column, d, "T1"), expression=column(e.parent_column, d, "T2"))
    return exp.select(*columns).from_(table(e.child, d, "T1")).join(table(e.parent, d, "T2"), on=on)


def child_keys(view: DatabaseView, e: Edge, where: exp.Expr | None) -> exp.Select:
    """The child's keys of its parent; without NULLs, which would make NOT IN match nothing."""
    d = view.dialect
    fk = column(e.child_column, d)
    child = view.tables[e.child]
    nulls = nulls_out(child.columns[e.child_column], child, fk.copy())
    query = exp.select(fk).from_(table(e.child, d))
    condition = all_of(nulls, where)
    return query.where(condition) if condition is not None else query
