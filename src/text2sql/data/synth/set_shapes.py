"""Set-operation shapes, one module-level function per shape (see `shapes`): UNION of two values'
rows, INTERSECT and EXCEPT of a column's values over two filters, and EXCEPT of the parents of
filtered children."""

from __future__ import annotations

import random

from sqlglot import exp

from text2sql.data.synth.build import column, literal, render, shown
from text2sql.data.synth.candidate import (
    SET_OPERATION,
    Candidate,
    DatabaseView,
    columns_read,
    compare,
    equals,
    joined,
    label_of,
    link_slots,
    phrase,
    pick,
    pick_edge,
    select_from,
    shared_value,
    table_slots,
    tables_where,
    threshold,
)
from text2sql.data.synth.names import plural


def union(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    values = [v for v, n in c.top if n < t.rows]
    if len(values) < 3:  # two values that are not all of them
        return None
    v, v2 = rng.sample(values, 2)
    d = view.dialect
    left = select_from(view, t, column(label_of(t).name, d), where=equals(column(c.name, d), v))
    right = select_from(view, t, column(label_of(t).name, d), where=equals(column(c.name, d), v2))
    slots = {**table_slots(t), "col": c.phrase, "v": shown(v), "v2": shown(v2)}
    return Candidate(
        SET_OPERATION,
        "union",
        render(exp.union(left, right, distinct=True), d),
        phrase(rng, "union", slots),
        columns_read((t.name, label_of(t).name), (t.name, c.name)),
        rows_below=t.rows,
    )


def intersect(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories) and bool(t.measures)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    inner = m.spread[1:-1]
    if len(inner) < 2 or c.name == m.name:
        return None
    y, x = sorted(rng.sample(inner, 2))  # above the higher one and below the lower one
    d = view.dialect
    left = select_from(view, t, column(c.name, d), where=compare(">", column(m.name, d), literal(x)))
    right = select_from(view, t, column(c.name, d), where=compare("<", column(m.name, d), literal(y)))
    slots = {**table_slots(t), "cols": plural(c.phrase), "measure": m.phrase, "x": shown(x), "y": shown(y)}
    return Candidate(
        SET_OPERATION,
        "intersect",
        render(exp.intersect(left, right, distinct=True), d),
        phrase(rng, "intersect", slots),
        columns_read((t.name, c.name), (t.name, m.name), ("intersect", "")),
        rows_below=c.distinct,
    )


def except_(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories) and bool(t.measures)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    x = threshold(rng, m)
    if x is None or c.name == m.name:
        return None
    d = view.dialect
    left = select_from(view, t, column(c.name, d))
    right = select_from(view, t, column(c.name, d), where=compare(">", column(m.name, d), literal(x)))
    slots = {**table_slots(t), "cols": plural(c.phrase), "measure": m.phrase, "x": shown(x)}
    return Candidate(
        SET_OPERATION,
        "except",
        render(exp.except_(left, right, distinct=True), d),
        phrase(rng, "except", slots),
        columns_read((t.name, c.name), (t.name, m.name), ("except", "")),
        rows_below=c.distinct,
    )


def except_join(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None and bool(c.categories))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    cc = rng.choice(child.categories)
    v = shared_value(rng, cc, child.rows)
    if v is None:
        return None
    d = view.dialect
    left = select_from(view, parent, column(label_of(parent).name, d))
    right = joined(view, e, column(label_of(parent).name, d, "T2")).where(equals(column(cc.name, d, "T1"), v))
    slots = {**link_slots(view, e), "ccol": cc.phrase, "v": shown(v)}
    return Candidate(
        SET_OPERATION,
        "except_join",
        render(exp.except_(left, right, distinct=True), d),
        phrase(rng, "except_join", slots),
        columns_read((e.parent, label_of(parent).name), (e.child, e.child_column), (e.child, cc.name), ("except", "")),
        rows_below=parent.rows,
    )


def intersect_eq(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: len(t.categories) >= 2))
    if t is None:
        return None
    c, c2 = rng.sample(t.categories, 2)
    values = [v for v, n in c2.top if n < t.rows]
    if len(values) < 2:
        return None
    v, v2 = rng.sample(values, 2)
    d = view.dialect
    left = select_from(view, t, column(c.name, d), where=equals(column(c2.name, d), v))
    right = select_from(view, t, column(c.name, d), where=equals(column(c2.name, d), v2))
    slots = {**table_slots(t), "cols": plural(c.phrase), "col2": c2.phrase, "v": shown(v), "v2": shown(v2)}
    return Candidate(
        SET_OPERATION,
        "intersect_eq",
        render(exp.intersect(left, right, distinct=True), d),
        phrase(rng, "intersect_eq", slots),
        columns_read((t.name, c.name), (t.name, c2.name), ("intersect", "")),
        rows_below=c.distinct,
    )
