"""Shapes over linked tables or several queries, one function per shape (see `shapes`): join (along
`joins.Edge`s), nested (IN / NOT IN subqueries, comparisons with a scalar subquery) and set
operation (UNION, INTERSECT, EXCEPT)."""

from __future__ import annotations

import random

from sqlglot import exp

from text2sql.data.synth.build import column, literal, render, shown, table
from text2sql.data.synth.candidate import (
    JOIN,
    NESTED,
    SET_OPERATION,
    Candidate,
    DatabaseView,
    child_keys,
    columns_read,
    compare,
    comparison,
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
from text2sql.data.synth.phrasings import AGGREGATES

# ------------------------------------------------------------------------------------------- join


def join_filter_parent(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: c.label is not None and bool(p.categories))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    pc = rng.choice(parent.categories)
    v = shared_value(rng, pc, parent.rows)
    if v is None:
        return None
    d = view.dialect
    sql = joined(view, e, column(label_of(child).name, d, "T1")).where(equals(column(pc.name, d, "T2"), v))
    slots = {**link_slots(view, e), "pcol": pc.phrase, "v": shown(v)}
    return Candidate(
        JOIN,
        "join_filter_parent",
        render(sql, d),
        phrase(rng, "join_filter_parent", slots),
        columns_read((e.child, label_of(child).name), (e.child, e.child_column), (e.parent, pc.name)),
        rows_below=child.rows,
    )


def join_filter_child(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None and bool(c.categories))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    cc = rng.choice(child.categories)
    v = shared_value(rng, cc, child.rows)
    if v is None:
        return None
    d = view.dialect
    sql = joined(view, e, column(label_of(parent).name, d, "T2")).where(equals(column(cc.name, d, "T1"), v)).distinct()
    slots = {**link_slots(view, e), "ccol": cc.phrase, "v": shown(v)}
    return Candidate(
        JOIN,
        "join_filter_child",
        render(sql, d),
        phrase(rng, "join_filter_child", slots),
        columns_read((e.parent, label_of(parent).name), (e.child, e.child_column), (e.child, cc.name)),
        rows_below=parent.rows,
    )


def join_count(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    parent = view.tables[e.parent]
    d = view.dialect
    label = column(label_of(parent).name, d, "T2")
    groups = (
        [column(e.parent_column, d, "T2"), label.copy()] if label_of(parent).name != e.parent_column else [label.copy()]
    )
    sql = joined(view, e, label, exp.Count(this=exp.Star())).group_by(*groups)
    slots = link_slots(view, e)
    return Candidate(
        JOIN,
        "join_count",
        render(sql, d),
        phrase(rng, "join_count", slots),
        columns_read((e.parent, label_of(parent).name), (e.child, e.child_column)),
    )


def join_stat(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.unique_label)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    v = pick(rng, label_of(parent).spread)
    m = pick(rng, [m for m in child.measures if m.name != e.child_column])
    if v is None:
        return None
    d = view.dialect
    where = equals(column(label_of(parent).name, d, "T2"), v)
    slots = {**link_slots(view, e), "v": shown(v)}
    if m is None or rng.random() < 0.4:
        sql = joined(view, e, exp.Count(this=exp.Star())).where(where)
        return Candidate(
            JOIN,
            "join_count_for",
            render(sql, d),
            phrase(rng, "join_count_for", slots),
            columns_read((e.parent, label_of(parent).name), (e.child, e.child_column)),
            count_below=child.rows,
        )
    func, agg = rng.choice(AGGREGATES)
    sql = joined(view, e, exp.func(func, column(m.name, d, "T1"))).where(where)
    slots.update(agg=agg, cmeasure=m.phrase)
    return Candidate(
        JOIN,
        "join_stat",
        render(sql, d),
        phrase(rng, "join_stat", slots),
        columns_read((e.parent, label_of(parent).name), (e.child, e.child_column), (e.child, m.name)),
    )


def join_both_labels(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: c.label is not None and p.label is not None and bool(c.measures))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    m = rng.choice(child.measures)
    x = threshold(rng, m)
    if x is None:
        return None
    op, above = comparison(rng)
    d = view.dialect
    sql = joined(view, e, column(label_of(child).name, d, "T1"), column(label_of(parent).name, d, "T2")).where(
        compare(op, column(m.name, d, "T1"), literal(x))
    )
    slots = {**link_slots(view, e), "cmeasure": m.phrase, "above": above, "x": shown(x)}
    return Candidate(
        JOIN,
        "join_both_labels",
        render(sql, d),
        phrase(rng, "join_both_labels", slots),
        columns_read(
            (e.child, label_of(child).name),
            (e.parent, label_of(parent).name),
            (e.child, e.child_column),
            (e.child, m.name),
        ),
        rows_below=child.rows,
    )


# ----------------------------------------------------------------------------------------- nested


def nested_in(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None and bool(c.categories))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    cc = rng.choice(child.categories)
    v = shared_value(rng, cc, child.rows)
    if v is None:
        return None
    d = view.dialect
    inner = child_keys(view, e, equals(column(cc.name, d), v))
    sql = select_from(
        view, parent, column(label_of(parent).name, d), where=column(e.parent_column, d).isin(query=inner)
    )
    slots = {**link_slots(view, e), "ccol": cc.phrase, "v": shown(v)}
    return Candidate(
        NESTED,
        "nested_in",
        render(sql, d),
        phrase(rng, "nested_in", slots),
        columns_read((e.parent, label_of(parent).name), (e.child, e.child_column), (e.child, cc.name), ("in", "")),
        rows_below=parent.rows,
    )


def nested_not_in(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    cc = pick(rng, child.categories) if rng.random() < 0.6 else None
    v = shared_value(rng, cc, child.rows) if cc is not None else None
    d = view.dialect
    inner = child_keys(view, e, equals(column(cc.name, d), v) if cc is not None and v is not None else None)
    where = exp.Not(this=column(e.parent_column, d).isin(query=inner))
    sql = select_from(view, parent, column(label_of(parent).name, d), where=where)
    slots = link_slots(view, e)
    columns = columns_read((e.parent, label_of(parent).name), (e.child, e.child_column), ("not in", ""))
    if cc is None or v is None:
        return Candidate(
            NESTED,
            "nested_not_in",
            render(sql, d),
            phrase(rng, "nested_not_in", slots),
            columns,
            rows_below=parent.rows,
        )
    slots.update(ccol=cc.phrase, v=shown(v))
    return Candidate(
        NESTED,
        "nested_not_in_eq",
        render(sql, d),
        phrase(rng, "nested_not_in_eq", slots),
        columns | columns_read((e.child, cc.name)),
        rows_below=parent.rows,
    )


def nested_avg(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures)))
    if t is None:
        return None
    m = rng.choice(t.measures)
    op, above = comparison(rng)
    d = view.dialect
    average = select_from(view, t, exp.func("AVG", column(m.name, d))).subquery()
    sql = select_from(
        view, t, column(label_of(t).name, d), column(m.name, d), where=compare(op, column(m.name, d), average)
    )
    slots = {**table_slots(t), "measure": m.phrase, "above": above}
    return Candidate(
        NESTED,
        "nested_avg",
        render(sql, d),
        phrase(rng, "nested_avg", slots),
        columns_read((t.name, label_of(t).name), (t.name, m.name), ("avg", op)),
        rows_below=t.rows,
    )


def nested_than(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.unique_label and bool(t.measures)))
    if t is None:
        return None
    m = rng.choice(t.measures)
    v = pick(rng, label_of(t).spread)
    if v is None:
        return None
    op, above = comparison(rng)
    d = view.dialect
    other = select_from(view, t, column(m.name, d), where=equals(column(label_of(t).name, d), v)).subquery()
    sql = select_from(view, t, column(label_of(t).name, d), where=compare(op, column(m.name, d), other))
    slots = {**table_slots(t), "measure": m.phrase, "above": above, "v": shown(v)}
    return Candidate(
        NESTED,
        "nested_than",
        render(sql, d),
        phrase(rng, "nested_than", slots),
        columns_read((t.name, label_of(t).name), (t.name, m.name), ("than", op)),
        rows_below=t.rows,
    )


def nested_having(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    fk = child.columns.get(e.child_column)
    counts = sorted({n for _, n in fk.top}) if fk is not None else []
    k = pick(rng, counts[:-1])
    if k is None:
        return None
    d = view.dialect
    inner = (
        exp.select(column(e.child_column, d))
        .from_(table(e.child, d))
        .group_by(column(e.child_column, d))
        .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(k)))
    )
    sql = select_from(
        view, parent, column(label_of(parent).name, d), where=column(e.parent_column, d).isin(query=inner)
    )
    slots = {**link_slots(view, e), "k": str(k)}
    return Candidate(
        NESTED,
        "nested_having",
        render(sql, d),
        phrase(rng, "nested_having", slots),
        columns_read((e.parent, label_of(parent).name), (e.child, e.child_column), ("having", "")),
        rows_below=parent.rows,
    )


# -------------------------------------------------------------------------------- set operations


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
