"""Shapes over one table, one module-level function per shape (see `shapes`): basic (filters on
stored values, comparisons, dates, a lookup by name), aggregation (counts, statistics, GROUP BY,
HAVING) and ordering (top k, the extreme row of a group, a sorted list, the most common value)."""

from __future__ import annotations

import random

from sqlglot import exp

from text2sql.data.synth.build import column, literal, ordered, render, shown
from text2sql.data.synth.candidate import (
    AGGREGATION,
    BASIC,
    MAX_K,
    ORDERING,
    Candidate,
    DatabaseView,
    all_of,
    columns_read,
    compare,
    comparison,
    equals,
    label_of,
    nulls_out,
    phrase,
    pick,
    select_from,
    shared_value,
    table_slots,
    tables_where,
    threshold,
)
from text2sql.data.synth.names import plural
from text2sql.data.synth.phrasings import AGGREGATES
from text2sql.data.synth.profile import TableProfile

# ------------------------------------------------------------------------------------------ basic


def filter_eq(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    v = shared_value(rng, c, t.rows)
    if v is None:
        return None
    d = view.dialect
    sql = select_from(view, t, column(label_of(t).name, d), where=equals(column(c.name, d), v))
    slots = {**table_slots(t), "col": c.phrase, "v": shown(v)}
    return Candidate(
        BASIC,
        "filter_eq",
        render(sql, d),
        phrase(rng, "filter_eq", slots),
        columns_read((t.name, label_of(t).name), (t.name, c.name)),
        rows_below=t.rows,
    )


def filter_cmp(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures)))
    if t is None:
        return None
    m = rng.choice(t.measures)
    x = threshold(rng, m)
    if x is None:
        return None
    op, above = comparison(rng)
    d = view.dialect
    sql = select_from(
        view, t, column(label_of(t).name, d), column(m.name, d), where=compare(op, column(m.name, d), literal(x))
    )
    slots = {**table_slots(t), "measure": m.phrase, "measures": plural(m.phrase), "above": above, "x": shown(x)}
    return Candidate(
        BASIC,
        "filter_cmp",
        render(sql, d),
        phrase(rng, "filter_cmp", slots),
        columns_read((t.name, label_of(t).name), (t.name, m.name)),
        rows_below=t.rows,
    )


def filter_two(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.categories) and bool(t.measures)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    v, x = shared_value(rng, c, t.rows), threshold(rng, m)
    if v is None or x is None or c.name == m.name:
        return None
    op, above = comparison(rng)
    d = view.dialect
    where = exp.and_(equals(column(c.name, d), v), compare(op, column(m.name, d), literal(x)))
    sql = select_from(view, t, column(label_of(t).name, d), where=where)
    slots = {**table_slots(t), "col": c.phrase, "v": shown(v), "measure": m.phrase, "above": above, "x": shown(x)}
    return Candidate(
        BASIC,
        "filter_two",
        render(sql, d),
        phrase(rng, "filter_two", slots),
        columns_read((t.name, label_of(t).name), (t.name, c.name), (t.name, m.name)),
        rows_below=t.rows,
    )


def lookup(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.unique_label and bool(t.measures + t.categories)))
    if t is None:
        return None
    target = rng.choice(t.measures + t.categories)
    v = pick(rng, label_of(t).spread)
    if v is None:
        return None
    d = view.dialect
    sql = select_from(view, t, column(target.name, d), where=equals(column(label_of(t).name, d), v))
    slots = {**table_slots(t), "col": target.phrase, "v": shown(v)}
    return Candidate(
        BASIC,
        "lookup",
        render(sql, d),
        phrase(rng, "lookup", slots),
        columns_read((t.name, label_of(t).name), (t.name, target.name)),
        rows_below=t.rows,
    )


def filter_date(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.dates)))
    if t is None:
        return None
    c = rng.choice(t.dates)
    day = threshold(rng, c)
    if day is None:
        return None
    op, when = rng.choice(((">", "after"), ("<", "before")))
    d = view.dialect
    sql = select_from(view, t, column(label_of(t).name, d), where=compare(op, column(c.name, d), literal(day)))
    slots = {**table_slots(t), "date_col": c.phrase, "when": when, "d": shown(day)}
    return Candidate(
        BASIC,
        "filter_date",
        render(sql, d),
        phrase(rng, "filter_date", slots),
        columns_read((t.name, label_of(t).name), (t.name, c.name)),
        rows_below=t.rows,
    )


def distinct_cmp(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories) and bool(t.measures)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    x = threshold(rng, m)
    if x is None or c.name == m.name:
        return None
    op, above = comparison(rng)
    d = view.dialect
    sql = select_from(view, t, column(c.name, d), where=compare(op, column(m.name, d), literal(x))).distinct()
    slots = {**table_slots(t), "cols": plural(c.phrase), "measure": m.phrase, "above": above, "x": shown(x)}
    return Candidate(
        BASIC,
        "distinct_cmp",
        render(sql, d),
        phrase(rng, "distinct_cmp", slots),
        columns_read((t.name, c.name), (t.name, m.name)),
        rows_below=c.distinct,
    )


# ------------------------------------------------------------------------------------ aggregation


def count_eq(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    v = shared_value(rng, c, t.rows)
    if v is None:
        return None
    d = view.dialect
    sql = select_from(view, t, exp.Count(this=exp.Star()), where=equals(column(c.name, d), v))
    slots = {**table_slots(t), "col": c.phrase, "v": shown(v)}
    return Candidate(
        AGGREGATION,
        "count_eq",
        render(sql, d),
        phrase(rng, "count_eq", slots),
        columns_read((t.name, c.name)),
        count_below=t.rows,
    )


def stat(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.measures)))
    if t is None:
        return None
    m = rng.choice(t.measures)
    func, agg = rng.choice(AGGREGATES)
    d = view.dialect
    value = exp.func(func, column(m.name, d))
    slots = {**table_slots(t), "measure": m.phrase, "agg": agg}
    c = pick(rng, [c for c in t.categories if c.name != m.name]) if rng.random() < 0.5 else None
    v = shared_value(rng, c, t.rows) if c is not None else None
    if c is None or v is None:
        sql = select_from(view, t, value)
        return Candidate(
            AGGREGATION, "stat", render(sql, d), phrase(rng, "stat", slots), columns_read((t.name, m.name))
        )
    sql = select_from(view, t, value, where=equals(column(c.name, d), v))
    slots.update(col=c.phrase, v=shown(v))
    return Candidate(
        AGGREGATION,
        "stat_eq",
        render(sql, d),
        phrase(rng, "stat_eq", slots),
        columns_read((t.name, m.name), (t.name, c.name)),
    )


def group_count(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    d = view.dialect
    sql = select_from(view, t, column(c.name, d), exp.Count(this=exp.Star())).group_by(column(c.name, d))
    slots = {**table_slots(t), "col": c.phrase}
    return Candidate(
        AGGREGATION, "group_count", render(sql, d), phrase(rng, "group_count", slots), columns_read((t.name, c.name))
    )


def group_stat(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories) and bool(t.measures)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    if c.name == m.name:
        return None
    func, agg = rng.choice(AGGREGATES)
    d = view.dialect
    sql = select_from(view, t, column(c.name, d), exp.func(func, column(m.name, d))).group_by(column(c.name, d))
    slots = {**table_slots(t), "col": c.phrase, "measure": m.phrase, "agg": agg}
    return Candidate(
        AGGREGATION,
        "group_stat",
        render(sql, d),
        phrase(rng, "group_stat", slots),
        columns_read((t.name, c.name), (t.name, m.name)),
    )


def having(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    counts = sorted({n for _, n in c.top})
    k = pick(rng, counts[:-1])  # a count some group has: groups above it and at it both exist
    if k is None:
        return None
    d = view.dialect
    count = exp.Count(this=exp.Star())
    sql = (
        select_from(view, t, column(c.name, d))
        .group_by(column(c.name, d))
        .having(exp.GT(this=count, expression=exp.Literal.number(k)))
    )
    slots = {**table_slots(t), "cols": plural(c.phrase), "k": str(k)}
    return Candidate(
        AGGREGATION,
        "having",
        render(sql, d),
        phrase(rng, "having", slots),
        columns_read((t.name, c.name)),
        rows_below=c.distinct,
    )


def count_distinct(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    d = view.dialect
    sql = select_from(view, t, exp.Count(this=exp.Distinct(expressions=[column(c.name, d)])))
    slots = {**table_slots(t), "cols": plural(c.phrase)}
    return Candidate(
        AGGREGATION,
        "count_distinct",
        render(sql, d),
        phrase(rng, "count_distinct", slots),
        columns_read((t.name, c.name)),
    )


def count_cmp(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.measures)))
    if t is None:
        return None
    m = rng.choice(t.measures)
    x = threshold(rng, m)
    if x is None:
        return None
    op, above = comparison(rng)
    d = view.dialect
    sql = select_from(view, t, exp.Count(this=exp.Star()), where=compare(op, column(m.name, d), literal(x)))
    slots = {**table_slots(t), "measure": m.phrase, "above": above, "x": shown(x)}
    return Candidate(
        AGGREGATION,
        "count_cmp",
        render(sql, d),
        phrase(rng, "count_cmp", slots),
        columns_read((t.name, m.name)),
        count_below=t.rows,
    )


# --------------------------------------------------------------------------------------- ordering


def _superlative(rng: random.Random) -> tuple[bool, str, str]:
    """(descending, the word for the end asked for, the word for the other end)."""
    return rng.choice(((True, "highest", "lowest"), (False, "lowest", "highest")))


def _ordered_keys(
    view: DatabaseView, t: TableProfile, key: exp.Expr, desc: bool, where: exp.Expr | None, limit: int | None
) -> str:
    query = select_from(view, t, key.copy(), where=where.copy() if where is not None else None).order_by(
        ordered(key.copy(), view.dialect, desc=desc)
    )
    return render(query.limit(limit + 1) if limit is not None else query, view.dialect)


def top_k(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures) and t.rows > 2))
    if t is None:
        return None
    m = rng.choice(t.measures)
    k = rng.randint(2, min(MAX_K, t.rows - 1))
    desc, sup, _ = _superlative(rng)
    d = view.dialect
    key = column(m.name, d)
    where = nulls_out(m, t, key.copy())
    sql = (
        select_from(view, t, column(label_of(t).name, d), where=where)
        .order_by(ordered(key, view.dialect, desc=desc))
        .limit(k)
    )
    slots = {**table_slots(t), "measure": m.phrase, "k": str(k), "sup": sup}
    return Candidate(
        ORDERING,
        "top_k",
        render(sql, d),
        phrase(rng, "top_k", slots),
        columns_read((t.name, label_of(t).name), (t.name, m.name)),
        order_keys=_ordered_keys(view, t, key, desc, where, k),
        ordered=True,
    )


def top_one_eq(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures) and bool(t.categories)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    v = shared_value(rng, c, t.rows)
    if v is None or c.name == m.name:
        return None
    desc, sup, _ = _superlative(rng)
    d = view.dialect
    key = column(m.name, d)
    where = all_of(equals(column(c.name, d), v), nulls_out(m, t, key.copy()))
    sql = (
        select_from(view, t, column(label_of(t).name, d), where=where)
        .order_by(ordered(key, view.dialect, desc=desc))
        .limit(1)
    )
    slots = {**table_slots(t), "col": c.phrase, "v": shown(v), "measure": m.phrase, "sup": sup}
    return Candidate(
        ORDERING,
        "top_one_eq",
        render(sql, d),
        phrase(rng, "top_one_eq", slots),
        columns_read((t.name, label_of(t).name), (t.name, m.name), (t.name, c.name)),
        order_keys=_ordered_keys(view, t, key, desc, where, 1),
        ordered=True,
    )


def sorted_eq(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures) and bool(t.categories)))
    if t is None:
        return None
    c, m = rng.choice(t.categories), rng.choice(t.measures)
    v = shared_value(rng, c, t.rows)
    if v is None or c.name == m.name:
        return None
    desc, sup, other = _superlative(rng)
    d = view.dialect
    key = column(m.name, d)
    where = all_of(equals(column(c.name, d), v), nulls_out(m, t, key.copy()))
    sql = select_from(view, t, column(label_of(t).name, d), key.copy(), where=where).order_by(
        ordered(key, view.dialect, desc=desc)
    )
    slots = {**table_slots(t), "col": c.phrase, "v": shown(v), "measure": m.phrase, "measures": plural(m.phrase)}
    slots.update(sup=sup, other=other)
    return Candidate(
        ORDERING,
        "sorted_eq",
        render(sql, d),
        phrase(rng, "sorted_eq", slots),
        columns_read((t.name, label_of(t).name), (t.name, m.name), (t.name, c.name)),
        rows_below=t.rows,
        order_keys=_ordered_keys(view, t, key, desc, where, None),
        ordered=True,
    )


def group_top(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    c = rng.choice(t.categories)
    d = view.dialect
    count = exp.Count(this=exp.Star())
    grouped = select_from(view, t, column(c.name, d)).group_by(column(c.name, d))
    sql = grouped.order_by(ordered(count, view.dialect, desc=True)).limit(1)
    keys = (
        select_from(view, t, count.copy())
        .group_by(column(c.name, d))
        .order_by(ordered(count.copy(), view.dialect, desc=True))
    )
    slots = {**table_slots(t), "col": c.phrase}
    return Candidate(
        ORDERING,
        "group_top",
        render(sql, d),
        phrase(rng, "group_top", slots),
        columns_read((t.name, c.name)),
        order_keys=render(keys.limit(2), d),
        ordered=True,
    )
