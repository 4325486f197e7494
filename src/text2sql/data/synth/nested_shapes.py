"""Nested shapes, one module-level function per shape (see `shapes`): IN / NOT IN subqueries over a
foreign key, each side optionally filtered ("patients from Boston with no appointments"), rows
whose key is among a filtered parent's, the row with the extreme value (a MAX/MIN subquery),
comparisons with an average and with another row's value, and parents with more than k children."""

from __future__ import annotations

import random

from sqlglot import exp

from text2sql.data.synth.build import column, literal, render, table
from text2sql.data.synth.candidate import (
    NESTED,
    Candidate,
    DatabaseView,
    child_keys,
    comparison,
    label_of,
    link_slots,
    phrase,
    pick,
    pick_edge,
    relaxations,
    select_from,
    tables_where,
    which_or,
)
from text2sql.data.synth.conditions import Condition, draw_conditions, unsaid, where_of
from text2sql.data.synth.join_shapes import child_conditions, parent_conditions, parent_slots
from text2sql.data.synth.paths import relate
from text2sql.data.synth.profile import TableProfile
from text2sql.data.synth.table_shapes import filter_slots, label_fields, reads, some_conditions, which_row
from text2sql.data.synth.wording import field, fields_phrase, implied_comparative, name_of, said, superlative


def _on(t: TableProfile, conditions: list[Condition]) -> list[Condition]:
    return [c for c in conditions if c.read[0] == t.name]


def nested_in(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Parents, optionally filtered, whose key is among filtered children's."""
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    child_side = draw_conditions(rng, child, d, rng.choices((1, 2), (3, 1))[0])
    if not child_side:
        return None
    parent_side = draw_conditions(rng, parent, d, 1) if rng.random() < 0.4 else []
    fields = label_fields(rng, parent, d) if rng.random() < 0.3 else [field(rng, label_of(parent), d)]

    def build(cs: list[Condition]) -> exp.Expr:
        inner = child_keys(view, e, where_of(_on(child, cs)))
        where = where_of(_on(parent, cs) + [unsaid(column(e.parent_column, d).isin(query=inner))])
        return select_from(view, parent, *(f.node.copy() for f in fields), where=where)

    conditions = parent_side + child_side
    slots = {**parent_slots(rng, view, e, parent_side, child_side), "fields": fields_phrase(fields)}
    return Candidate(
        NESTED,
        "nested_in",
        render(build(conditions), d),
        phrase(rng, which_or(rng, "parents", fields), slots),
        reads(fields, conditions, (e.child, e.child_column), ("in", "")),
        rows_below=parent.rows,
        relaxed=relaxations(build, conditions, d),
    )


def nested_not_in(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Parents, optionally filtered, without (filtered) children."""
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    child_side = draw_conditions(rng, child, d, 1) if rng.random() < 0.5 else []
    parent_side = draw_conditions(rng, parent, d, 1) if rng.random() < 0.5 else []
    fields = label_fields(rng, parent, d) if rng.random() < 0.3 else [field(rng, label_of(parent), d)]

    def build(cs: list[Condition]) -> exp.Expr:
        inner = child_keys(view, e, where_of(_on(child, cs)))
        outside = unsaid(exp.Not(this=column(e.parent_column, d).isin(query=inner)))
        return select_from(view, parent, *(f.node.copy() for f in fields), where=where_of(_on(parent, cs) + [outside]))

    conditions = parent_side + child_side
    slots = {**parent_slots(rng, view, e, parent_side, child_side), "fields": fields_phrase(fields)}
    return Candidate(
        NESTED,
        "nested_not_in",
        render(build(conditions), d),
        phrase(rng, which_or(rng, "no_children", fields), slots),
        reads(fields, conditions, (e.child, e.child_column), ("not in", "")),
        rows_below=parent.rows,
        relaxed=relaxations(build, conditions, d),
    )


def nested_parent_in(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Children whose parent is among the filtered parents: flights whose airline's country is X."""
    e = pick_edge(view, rng, lambda c, p: c.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    parent_side = parent_conditions(rng, view, parent, e.role, None)
    if not parent_side:
        return None
    child_side = child_conditions(rng, view, child, None, 0.35)
    fields = label_fields(rng, child, d)

    def build(cs: list[Condition]) -> exp.Expr:
        keys = exp.select(column(e.parent_column, d)).from_(table(parent.name, d))
        inner = keys.where(where_of(_on(parent, cs))) if _on(parent, cs) else keys
        inside = unsaid(column(e.child_column, d).isin(query=inner))
        return select_from(view, child, *(f.node.copy() for f in fields), where=where_of(_on(child, cs) + [inside]))

    conditions = rng.sample(parent_side + child_side, len(parent_side + child_side))
    slots = {**filter_slots(rng, child, conditions), "fields": fields_phrase(fields)}
    return Candidate(
        NESTED,
        "nested_parent_in",
        render(build(conditions), d),
        phrase(rng, "which" if len(fields) == 1 and rng.random() < 0.5 else "list", slots),
        reads(fields, conditions, (e.child, e.child_column), ("in", "")),
        rows_below=child.rows,
        relaxed=relaxations(build, conditions, d),
    )


def nested_extreme(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """The rows holding a measure's highest or lowest value (of the filtered rows)."""
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures)))
    if t is None:
        return None
    d = view.dialect
    m = rng.choice(t.measures)
    conditions = some_conditions(rng, t, d, {m.name}, none=0.5)[:1]
    desc = rng.random() < 0.6
    fields = [field(rng, label_of(t), d)] + ([field(rng, m, d)] if rng.random() < 0.3 else [])

    def build(cs: list[Condition]) -> exp.Expr:
        extreme = select_from(view, t, exp.func("MAX" if desc else "MIN", column(m.name, d)), where=where_of(cs))
        at = unsaid(exp.EQ(this=column(m.name, d), expression=extreme.subquery()))
        return select_from(view, t, *(f.node.copy() for f in fields), where=where_of(cs + [at]))

    slots = {**filter_slots(rng, t, conditions), "measure": name_of(rng, m), "sup": superlative(rng, desc, m)}
    slots.update(field=fields_phrase(fields, many=False))
    return Candidate(
        NESTED,
        "nested_extreme",
        render(build(conditions), d),
        phrase(rng, which_or(rng, "top_one", fields), slots),
        reads(fields, conditions, (t.name, m.name), ("extreme", "max" if desc else "min")),
        rows_below=t.rows,
        relaxed=relaxations(build, conditions, d),
    )


def nested_avg(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Rows, optionally filtered, whose measure is above or below the average of all rows."""
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures)))
    if t is None:
        return None
    d = view.dialect
    m = rng.choice(t.measures)
    op, above = comparison(rng)
    conditions = some_conditions(rng, t, d, {m.name}, none=0.5)[:1]
    fields = [field(rng, label_of(t), d)] + ([field(rng, m, d)] if rng.random() < 0.4 else [])
    average = select_from(view, t, exp.func("AVG", column(m.name, d))).subquery()
    versus = (exp.GT if op == ">" else exp.LT)(this=column(m.name, d), expression=average)

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, *(f.node.copy() for f in fields), where=where_of(cs + [unsaid(versus.copy())]))

    slots = {**filter_slots(rng, t, conditions), "measure": name_of(rng, m), "above": above}
    slots["fields"] = fields_phrase(fields)
    return Candidate(
        NESTED,
        "nested_avg",
        render(build(conditions), d),
        phrase(rng, which_or(rng, "above_average", fields), slots),
        reads(fields, conditions, (t.name, m.name), ("avg", op)),
        rows_below=t.rows,
        relaxed=relaxations(build, conditions, d),
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
    other = select_from(
        view, t, column(m.name, d), where=exp.EQ(this=column(label_of(t).name, d), expression=literal(v))
    )
    versus = (exp.GT if op == ">" else exp.LT)(this=column(m.name, d), expression=other.subquery())
    fields = [field(rng, label_of(t), d)]
    sql = select_from(view, t, *(f.node for f in fields), where=versus)
    slots = {**filter_slots(rng, t, []), "measure": name_of(rng, m), "above": above, "which": which_row(rng, t, v)}
    slots.update(fields=fields_phrase(fields), named=said(rng, v))
    adj = implied_comparative(op == ">", m) if rng.random() < 0.5 else None  # "cheaper than the Desk Lamp"
    if adj is not None:
        slots["adj"] = adj
    return Candidate(
        NESTED,
        "nested_than",
        render(sql, d),
        phrase(rng, "than" if adj is None else "than_adj", slots),
        reads(fields, [], (t.name, m.name), ("than", op)),
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
    slots = {**link_slots(view, e), **relate(view, e), "k": str(k)}
    return Candidate(
        NESTED,
        "nested_having",
        render(sql, d),
        phrase(rng, "nested_having", slots),
        reads([], [], (e.parent, label_of(parent).name), (e.child, e.child_column), ("having", "")),
        rows_below=parent.rows,
    )
