"""Shapes over one table, one module-level function per shape (see `shapes`), each built from the
same parts: the fields a question asks to see (the label, often with a measure, a date or another
column), one to three filters (`conditions`), and for some a grouping or a sort.

basic: filtered rows, every row, one row by its name, distinct values; aggregation: counts and
statistics (optionally filtered, optionally per group), HAVING, distinct counts; ordering: the top k
rows by a measure or date (filtered or not), a sorted list, the most or least common value.
"""

from __future__ import annotations

import random

from sqlglot import exp

from text2sql.data.synth.build import column, literal, ordered, render
from text2sql.data.synth.candidate import (
    AGGREGATION,
    BASIC,
    MAX_K,
    ORDERING,
    Candidate,
    DatabaseView,
    columns_read,
    label_of,
    nulls_out,
    phrase,
    pick,
    relaxations,
    select_from,
    sort_keys,
    table_slots,
    tables_where,
    which_or,
)
from text2sql.data.synth.conditions import Condition, clause, draw_conditions, having, how_many, unsaid, where_of
from text2sql.data.synth.names import plural
from text2sql.data.synth.phrasings import ORDER_WORDS
from text2sql.data.synth.profile import NUMBER, TEXT, ColumnProfile, TableProfile
from text2sql.data.synth.wording import (
    Field,
    aggregate_word,
    field,
    fields_phrase,
    implied_superlative,
    listing,
    name_of,
    said,
    superlative,
)


def label_fields(rng: random.Random, t: TableProfile, dialect: str, *, alias: str | None = None) -> list[Field]:
    """The label, and half the time one or two other columns beside it ("names and prices")."""
    extra = rng.choices((0, 1, 2), (10, 8, 2))[0]
    others = rng.sample(t.attributes, min(extra, len(t.attributes)))
    return [field(rng, label_of(t), dialect, alias)] + [field(rng, c, dialect, alias) for c in others]


def filter_slots(rng: random.Random, t: TableProfile, conditions: list[Condition]) -> dict[str, str]:
    """The table's nouns and its filters said after them; a quarter of the time a filter on a stored
    value goes before the noun instead ("Psychology students", "KLM flights")."""
    slots = table_slots(t)
    first = next((c for c in conditions if c.before), None)
    if first is not None and rng.random() < 0.25:
        slots.update(thing=f"{first.before} {t.noun}", things=f"{first.before} {t.nouns}")
        rest = [c for c in conditions if c is not first]
        said_clause = clause(rng, rest)
        have = having(rest or [first])  # "Which Books products have category Books?": said twice, never empty
    else:
        said_clause, have = clause(rng, conditions), having(conditions)
    return {**slots, "clause": said_clause, "have": have, "among": f" among those{said_clause}" if said_clause else ""}


def reads(fields: list[Field], conditions: list[Condition], *more: tuple[str, str]) -> frozenset[str]:
    return columns_read(*(f.read for f in fields), *(c.read for c in conditions), *more)


def some_conditions(rng: random.Random, t: TableProfile, dialect: str, avoid: set[str], none: float) -> list[Condition]:
    """No filter with probability `none`, else one to three on columns not in `avoid`."""
    return [] if rng.random() < none else draw_conditions(rng, t, dialect, how_many(rng), avoid=avoid)


# ------------------------------------------------------------------------------------------ basic


def where_list(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None))
    if t is None:
        return None
    d = view.dialect
    conditions = draw_conditions(rng, t, d, how_many(rng))
    if not conditions:
        return None
    fields = label_fields(rng, t, d)

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, *(f.node.copy() for f in fields), where=where_of(cs))

    slots = {**filter_slots(rng, t, conditions), "fields": fields_phrase(fields)}
    key = "which" if len(fields) == 1 and rng.random() < 0.5 else "list"
    return Candidate(
        BASIC,
        "where_list",
        render(build(conditions), d),
        phrase(rng, key, slots),
        reads(fields, conditions),
        rows_below=t.rows,
        relaxed=relaxations(build, conditions, d),
    )


def select_all(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.attributes)))
    if t is None:
        return None
    d = view.dialect
    fields = label_fields(rng, t, d)
    sql = select_from(view, t, *(f.node for f in fields))
    slots = {**table_slots(t), "fields": fields_phrase(fields)}
    return Candidate(BASIC, "select_all", render(sql, d), phrase(rng, "all", slots), reads(fields, []))


def which_row(rng: random.Random, t: TableProfile, v: object) -> str:
    """How a question names the row whose label is `v`: "named 'Boston'", "with ID 4", ..."""
    label, s = name_of(rng, label_of(t)), said(rng, v)
    forms = [f"whose {label} is {s}", f"with {label} {s}", s]
    if label_of(t).kind == TEXT:
        forms += [f"named {s}", f"called {s}"]
    return rng.choice(forms)


def lookup(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.unique_label and bool(t.attributes)))
    if t is None:
        return None
    v = pick(rng, label_of(t).spread)
    if v is None:
        return None
    d = view.dialect
    targets = rng.sample(t.attributes, min(rng.choices((1, 2), (3, 1))[0], len(t.attributes)))
    fields = [field(rng, c, d) for c in targets]
    where = exp.EQ(this=column(label_of(t).name, d), expression=literal(v))
    sql = select_from(view, t, *(f.node for f in fields), where=where)
    slots = {**table_slots(t), "field": fields_phrase(fields, many=False), "which": which_row(rng, t, v)}
    slots["be"] = "is" if len(fields) == 1 else "are"
    return Candidate(
        BASIC,
        "lookup",
        render(sql, d),
        phrase(rng, "lookup", slots),
        reads(fields, [], (t.name, label_of(t).name)),
        rows_below=t.rows,
    )


def distinct_values(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    d = view.dialect
    g = rng.choice(t.categories)
    conditions = some_conditions(rng, t, d, {g.name}, none=0.25)

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, column(g.name, d), where=where_of(cs)).distinct()

    slots = {**filter_slots(rng, t, conditions), "groups": plural(name_of(rng, g))}
    return Candidate(
        BASIC,
        "distinct",
        render(build(conditions), d),
        phrase(rng, "distinct", slots),
        reads([], conditions, (t.name, g.name)),
        rows_below=g.distinct if conditions else None,
        relaxed=relaxations(build, conditions, d),
    )


# ------------------------------------------------------------------------------------ aggregation


def count_where(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, list(view.tables.values()))
    if t is None:
        return None
    d = view.dialect
    conditions = draw_conditions(rng, t, d, how_many(rng))
    if not conditions:
        return None

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, exp.Count(this=exp.Star()), where=where_of(cs))

    return Candidate(
        AGGREGATION,
        "count",
        render(build(conditions), d),
        phrase(rng, "count", filter_slots(rng, t, conditions)),
        reads([], conditions),
        count_below=t.rows,
        relaxed=relaxations(build, conditions, d),
    )


def aggregates(rng: random.Random, m: ColumnProfile) -> list[str]:
    """One aggregate of the measure, or sometimes two ("lowest and highest"); no sum of years."""
    funcs = ["AVG", "MAX", "MIN"] + ([] if m.yearly else ["SUM"])
    return rng.sample(funcs, rng.choices((1, 2), (3, 1))[0])


def stat_where(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.measures)))
    if t is None:
        return None
    d = view.dialect
    m = rng.choice(t.measures)
    funcs = aggregates(rng, m)
    conditions = some_conditions(rng, t, d, {m.name}, none=0.3)

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, *(exp.func(f, column(m.name, d)) for f in funcs), where=where_of(cs))

    slots = {**filter_slots(rng, t, conditions), "measure": name_of(rng, m)}
    slots.update(agg=listing([aggregate_word(rng, f) for f in funcs]), be="is" if len(funcs) == 1 else "are")
    return Candidate(
        AGGREGATION,
        "stat",
        render(build(conditions), d),
        phrase(rng, "stat", slots),
        reads([], conditions, (t.name, m.name), *((f, "") for f in funcs)),
        relaxed=relaxations(build, conditions, d),
    )


def group_where(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    d = view.dialect
    g = rng.choice(t.categories)
    m = pick(rng, [m for m in t.measures if m.name != g.name]) if rng.random() < 0.35 else None
    conditions = some_conditions(rng, t, d, {g.name} | ({m.name} if m else set()), none=0.35)
    func = rng.choice(aggregates(rng, m)) if m is not None else "COUNT"
    value = exp.Count(this=exp.Star()) if m is None else exp.func(func, column(m.name, d))

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, column(g.name, d), value.copy(), where=where_of(cs)).group_by(column(g.name, d))

    slots = {**filter_slots(rng, t, conditions), "group": name_of(rng, g)}
    if m is not None:
        slots.update(agg=aggregate_word(rng, func), measure=name_of(rng, m))
    more = [(t.name, g.name), (func, "")] + ([(t.name, m.name)] if m else [])
    return Candidate(
        AGGREGATION,
        "group_count" if m is None else "group_stat",
        render(build(conditions), d),
        phrase(rng, "group_count" if m is None else "group_stat", slots),
        reads([], conditions, *more),
        relaxed=relaxations(build, conditions, d),
    )


def having_count(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    g = rng.choice(t.categories)
    counts = sorted({n for _, n in g.top})
    k = pick(rng, counts[:-1])  # a count some group has: groups above it and at it both exist
    if k is None:
        return None
    d = view.dialect
    least = rng.random() < 0.35
    k = k + 1 if least else k  # "at least k+1" is "more than k"
    bound = (exp.GTE if least else exp.GT)(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(k))
    sql = select_from(view, t, column(g.name, d)).group_by(column(g.name, d)).having(bound)
    slots = {**table_slots(t), "groups": plural(name_of(rng, g)), "k": str(k)}
    return Candidate(
        AGGREGATION,
        "having",
        render(sql, d),
        phrase(rng, "having_least" if least else "having", slots),
        columns_read((t.name, g.name)),
        rows_below=g.distinct,
    )


def count_distinct(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    d = view.dialect
    g = rng.choice(t.categories)
    conditions = some_conditions(rng, t, d, {g.name}, none=0.5)

    def build(cs: list[Condition]) -> exp.Expr:
        return select_from(view, t, exp.Count(this=exp.Distinct(expressions=[column(g.name, d)])), where=where_of(cs))

    slots = {**filter_slots(rng, t, conditions), "groups": plural(name_of(rng, g))}
    return Candidate(
        AGGREGATION,
        "count_distinct",
        render(build(conditions), d),
        phrase(rng, "count_distinct", slots),
        reads([], conditions, (t.name, g.name), ("distinct", "")),
        relaxed=relaxations(build, conditions, d),
    )


# --------------------------------------------------------------------------------------- ordering


def sort_column(rng: random.Random, t: TableProfile) -> ColumnProfile | None:
    return pick(rng, t.measures + t.dates)


def top_where(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None and bool(t.measures + t.dates) and t.rows > 2))
    if t is None:
        return None
    d = view.dialect
    key_col = sort_column(rng, t)
    assert key_col is not None
    conditions = some_conditions(rng, t, d, {key_col.name}, none=0.4)
    k = 1 if rng.random() < 0.45 else rng.randint(2, min(MAX_K, t.rows - 1))
    desc = rng.random() < 0.6
    fields = [field(rng, label_of(t), d)]
    if rng.random() < 0.35 and key_col is not label_of(t):
        fields.append(field(rng, key_col, d))
    key = column(key_col.name, d)

    def build(cs: list[Condition]) -> exp.Select:
        where = where_of(cs + _not_null(key_col, t, key))
        query = select_from(view, t, *(f.node.copy() for f in fields), where=where)
        return query.order_by(ordered(key.copy(), d, desc=desc)).limit(k)

    query = build(conditions)
    slots = {**filter_slots(rng, t, conditions), "measure": name_of(rng, key_col), "k": str(k)}
    slots.update(sup=superlative(rng, desc, key_col), top="top" if desc else "bottom")
    slots.update(fields=fields_phrase(fields), field=fields_phrase(fields, many=False))
    wording = "top_one" if k == 1 else "top_k"
    adj = implied_superlative(desc, key_col)
    if adj is not None and rng.random() < 0.5:
        slots["adj"] = adj
        wording = which_or(rng, f"{wording}_adj", fields)
    elif k == 1:
        wording = which_or(rng, wording, fields)
    return Candidate(
        ORDERING,
        "top_one" if k == 1 else "top_k",
        render(query, d),
        phrase(rng, wording, slots),
        reads(fields, conditions, (t.name, key_col.name)),
        order_keys=render(sort_keys(query, key, k), d),
        ordered=True,
        relaxed=relaxations(build, conditions, d),
    )


def _not_null(col: ColumnProfile, t: TableProfile, node: exp.Expr) -> list[Condition]:
    """`col IS NOT NULL` as a condition no question names, when the column holds NULLs."""
    check = nulls_out(col, t, node.copy())
    return [unsaid(check, (t.name, col.name))] if check is not None else []


def sorted_where(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: t.label is not None))
    if t is None:
        return None
    d = view.dialect
    by_label = label_of(t).kind == TEXT and t.unique_label and rng.random() < 0.25
    key_col = label_of(t) if by_label else sort_column(rng, t)
    if key_col is None:
        return None
    conditions = some_conditions(rng, t, d, {key_col.name}, none=0.3)
    desc = rng.random() < (0.25 if by_label else 0.5)
    fields = [field(rng, label_of(t), d)]
    if key_col is not label_of(t) and rng.random() < 0.6:
        fields.append(field(rng, key_col, d))
    key = column(key_col.name, d)

    def build(cs: list[Condition]) -> exp.Select:
        where = where_of(cs + _not_null(key_col, t, key))
        return select_from(view, t, *(f.node.copy() for f in fields), where=where).order_by(
            ordered(key.copy(), d, desc=desc)
        )

    query = build(conditions)
    kind = "text" if key_col.kind == TEXT else "number" if key_col.kind == NUMBER and not key_col.yearly else "time"
    order = rng.choice(ORDER_WORDS[(kind, desc)]).format(key=name_of(rng, key_col))
    slots = {**filter_slots(rng, t, conditions), "fields": fields_phrase(fields), "order": order}
    return Candidate(
        ORDERING,
        "sorted",
        render(query, d),
        phrase(rng, "sorted", slots),
        reads(fields, conditions, (t.name, key_col.name)),
        rows_below=t.rows if conditions else None,
        order_keys=render(sort_keys(query, key, None), d),
        ordered=True,
        relaxed=relaxations(build, conditions, d),
    )


def group_top(view: DatabaseView, rng: random.Random) -> Candidate | None:
    t = pick(rng, tables_where(view, lambda t: bool(t.categories)))
    if t is None:
        return None
    d = view.dialect
    g = rng.choice(t.categories)
    conditions = some_conditions(rng, t, d, {g.name}, none=0.6)
    desc = rng.random() < 0.75
    count = exp.Count(this=exp.Star())

    def build(cs: list[Condition]) -> exp.Select:
        grouped = select_from(view, t, column(g.name, d), where=where_of(cs)).group_by(column(g.name, d))
        return grouped.order_by(ordered(count.copy(), d, desc=desc)).limit(1)

    query = build(conditions)
    slots = {**filter_slots(rng, t, conditions), "group": name_of(rng, g)}
    return Candidate(
        ORDERING,
        "group_top",
        render(query, d),
        phrase(rng, "group_top" if desc else "group_least", slots),
        reads([], conditions, (t.name, g.name)),
        order_keys=render(sort_keys(query, count, 1), d),
        ordered=True,
        relaxed=relaxations(build, conditions, d),
    )
