"""Join shapes, one module-level function per shape (see `shapes`), along `joins.Edge`s (child T1,
parent T2) and three-table `paths` (T1, T2, T3). A parent's filters are said as the child's: by the
parent's label ("flights whose airline is 'Delta Air Lines'") or a column of it ("whose airline's
country is 'France'"); a chain's as the child's parent's ("bookings whose flight's airline is ...").

Rows of the child filtered on either side, with the parent's label beside them; the distinct parents
of filtered children; counts and statistics per parent or per parent column; a count or statistic
for one parent; the parents with the most children; the top children with their parent; distinct
values across the join; a chain of three tables; two tables linked through a third.
"""

from __future__ import annotations

import random

from sqlglot import exp

from text2sql.data.synth.build import column, literal, ordered, render
from text2sql.data.synth.candidate import (
    JOIN,
    MAX_K,
    Candidate,
    DatabaseView,
    joined,
    label_of,
    link_slots,
    phrase,
    pick,
    pick_edge,
    relaxations,
    sort_keys,
    table_slots,
    which_or,
)
from text2sql.data.synth.conditions import Condition, clause, draw_conditions, label_condition, unsaid, where_of
from text2sql.data.synth.joins import Edge
from text2sql.data.synth.names import plural
from text2sql.data.synth.paths import chain_from, chains, link_from, links, relate
from text2sql.data.synth.profile import TableProfile
from text2sql.data.synth.table_shapes import aggregates, filter_slots, label_fields, reads, which_row
from text2sql.data.synth.wording import aggregate_word, field, fields_phrase, name_of, superlative


def parent_conditions(
    rng: random.Random, view: DatabaseView, parent: TableProfile, role: str, alias: str | None, n: int = 1
) -> list[Condition]:
    """Filters on a parent said as its child's: by its label ("airline is 'Delta'") half the time
    when the label names one row, else on its columns ("airline's country is 'France'"). The label
    alone ("Delta flights") only where the child calls the parent by its own noun: "Heathrow flights"
    does not say whether Heathrow is the origin or the destination."""
    d = view.dialect
    if parent.unique_label and rng.random() < 0.5:
        alone = role.lower() == parent.noun.lower()
        found = label_condition(rng, parent, d, alias=alias, name=role, alone=alone)
        return [found] if found is not None else []
    prefix = rng.choice((f"{role}'s", role))
    return draw_conditions(rng, parent, d, n, alias=alias, prefix=prefix)


def child_conditions(rng: random.Random, view: DatabaseView, child: TableProfile, alias: str | None, chance: float):
    return draw_conditions(rng, child, view.dialect, 1, alias=alias) if rng.random() < chance else []


def _where(query: exp.Select, conditions: list[Condition]) -> exp.Select:
    where = where_of(conditions)
    return query.where(where) if where is not None else query


def _shuffled(rng: random.Random, conditions: list[Condition]) -> list[Condition]:
    return rng.sample(conditions, len(conditions))


def join_where(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: c.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    conditions = parent_conditions(rng, view, parent, e.role, "T2", rng.choices((1, 2), (4, 1))[0])
    if not conditions:
        return None
    conditions = _shuffled(rng, conditions + child_conditions(rng, view, child, "T1", 0.4))
    fields = label_fields(rng, child, d, alias="T1")
    if (
        parent.label is not None
        and rng.random() < 0.3
        and all(c.read != (parent.name, parent.label.name) for c in conditions)
    ):
        fields.append(field(rng, parent.label, d, "T2", prefix=e.role))

    def build(cs: list[Condition]) -> exp.Expr:
        return _where(joined(view, e, *(f.node.copy() for f in fields)), cs)

    slots = {**filter_slots(rng, child, conditions), "fields": fields_phrase(fields)}
    key = "which" if len(fields) == 1 and rng.random() < 0.5 else "list"
    return Candidate(
        JOIN,
        "join_where",
        render(build(conditions), d),
        phrase(rng, key, slots),
        reads(fields, conditions, (e.child, e.child_column)),
        rows_below=child.rows,
        relaxed=relaxations(build, conditions, d),
    )


def parent_slots(
    rng: random.Random, view: DatabaseView, edge: Edge, parent_side: list[Condition], child_side: list[Condition]
) -> dict[str, str]:
    """Slots of a question about parents by their children: pthings, pclause, relate, cthings, cclause."""
    child, parent = view.tables[edge.child], view.tables[edge.parent]
    slots = {**link_slots(view, edge), "pclause": clause(rng, parent_side), "cclause": clause(rng, child_side)}
    slots.update(relate(view, edge), cthing=child.noun, cthings=child.nouns)
    slots.update(pthing=parent.noun, pthings=parent.nouns)
    return slots


def join_parents(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    child_side = draw_conditions(rng, child, d, rng.choices((1, 2), (3, 1))[0], alias="T1")
    if not child_side:
        return None
    parent_side = draw_conditions(rng, parent, d, 1, alias="T2") if rng.random() < 0.3 else []
    fields = label_fields(rng, parent, d, alias="T2") if rng.random() < 0.3 else [field(rng, label_of(parent), d, "T2")]

    def build(cs: list[Condition]) -> exp.Expr:
        return _where(joined(view, e, *(f.node.copy() for f in fields)), cs).distinct()

    conditions = parent_side + child_side
    slots = {**parent_slots(rng, view, e, parent_side, child_side), "fields": fields_phrase(fields)}
    return Candidate(
        JOIN,
        "join_parents",
        render(build(conditions), d),
        phrase(rng, which_or(rng, "parents", fields), slots),
        reads(fields, conditions, (e.child, e.child_column)),
        rows_below=parent.rows,
        relaxed=relaxations(build, conditions, d),
    )


def join_group(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: p.label is not None or bool(p.categories))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    by_label = parent.label is not None and (not parent.categories or rng.random() < 0.65)
    g = label_of(parent) if by_label else rng.choice(parent.categories)
    m = pick(rng, [m for m in child.measures if m.name != e.child_column]) if rng.random() < 0.35 else None
    conditions = child_conditions(rng, view, child, "T1", 0.4)
    func = rng.choice(aggregates(rng, m)) if m is not None else "COUNT"
    value = exp.Count(this=exp.Star()) if m is None else exp.func(func, column(m.name, d, "T1"))
    groups = [column(g.name, d, "T2")]
    if by_label and not parent.unique_label:
        groups.insert(0, column(e.parent_column, d, "T2"))  # two parents may share a name

    def build(cs: list[Condition]) -> exp.Expr:
        return _where(joined(view, e, column(g.name, d, "T2"), value.copy()), cs).group_by(*(c.copy() for c in groups))

    group = e.role if by_label and rng.random() < 0.5 else f"{e.role} {name_of(rng, g)}"
    slots = {**filter_slots(rng, child, conditions), "group": group}
    if m is not None:
        slots.update(agg=aggregate_word(rng, func), measure=name_of(rng, m))
    more = [(e.parent, g.name), (e.child, e.child_column), (func, "")] + ([(e.child, m.name)] if m else [])
    return Candidate(
        JOIN,
        "join_group",
        render(build(conditions), d),
        phrase(rng, "group_count" if m is None else "group_stat", slots),
        reads([], conditions, *more),
        relaxed=relaxations(build, conditions, d),
    )


def join_stat(view: DatabaseView, rng: random.Random) -> Candidate | None:
    e = pick_edge(view, rng, lambda c, p: True)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    m = pick(rng, [m for m in child.measures if m.name != e.child_column]) if rng.random() < 0.5 else None
    own = e.role.lower() == parent.noun.lower()  # "the airline X", not "the airport X" for an origin
    one = own and parent.unique_label and rng.random() < 0.3  # "How many flights does the airline X have?"
    v = pick(rng, label_of(parent).spread) if one else None
    if v is not None:  # said by `which_row` below
        named = exp.EQ(this=column(label_of(parent).name, d, "T2"), expression=literal(v))
        conditions = [unsaid(named, (e.parent, label_of(parent).name))]
    else:
        conditions = parent_conditions(rng, view, parent, e.role, "T2")
    if not conditions:
        return None
    child_side = child_conditions(rng, view, child, "T1", 0.3)
    funcs = aggregates(rng, m) if m is not None else ["COUNT"]

    def build(cs: list[Condition]) -> exp.Expr:
        values = [exp.Count(this=exp.Star())] if m is None else [exp.func(f, column(m.name, d, "T1")) for f in funcs]
        return _where(joined(view, e, *values), cs)

    everything = _shuffled(rng, conditions + child_side) if v is None else conditions + child_side
    slots = {**filter_slots(rng, child, everything if v is None else child_side)}
    if v is not None:
        slots.update(pthing=parent.noun, which=which_row(rng, parent, v), cthings=child.nouns, cclause=slots["clause"])
        key = "count_for" if m is None else "stat"
        if m is not None:
            slots["clause"] = f"{slots['clause']} of the {parent.noun} {slots['which']}"
    else:
        key = "count" if m is None else "stat"
    if m is not None:
        slots.update(measure=name_of(rng, m), agg=" and ".join(aggregate_word(rng, f) for f in funcs))
        slots["be"] = "is" if len(funcs) == 1 else "are"
    more = [(e.child, e.child_column)] + ([(e.child, m.name)] if m else []) + [(f, "") for f in funcs]
    return Candidate(
        JOIN,
        "join_stat",
        render(build(everything), d),
        phrase(rng, key, slots),
        reads([], everything, *more),
        count_below=child.rows if m is None else None,
        relaxed=relaxations(build, everything, d),
    )


def join_most(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """The parents with the most children (never the fewest: a parent without any is not joined)."""
    e = pick_edge(view, rng, lambda c, p: p.label is not None)
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    conditions = child_conditions(rng, view, child, "T1", 0.35)
    k = 1 if rng.random() < 0.6 else rng.randint(2, 3)
    label = label_of(parent)
    groups = (
        [column(label.name, d, "T2")]
        if parent.unique_label
        else [column(e.parent_column, d, "T2"), column(label.name, d, "T2")]
    )
    count = exp.Count(this=exp.Star())

    def build(cs: list[Condition]) -> exp.Select:
        query = _where(joined(view, e, column(label.name, d, "T2")), cs).group_by(*(g.copy() for g in groups))
        return query.order_by(ordered(count.copy(), d, desc=True)).limit(k)

    query = build(conditions)
    fields = [field(rng, label, d, "T2")]
    slots = {**filter_slots(rng, child, conditions), "cthings": child.nouns, "role": e.role, "roles": plural(e.role)}
    slots.update(cclause=slots["clause"], k=str(k), most="most", most_number="largest number")
    slots.update(field=fields_phrase(fields, many=False), fields=fields_phrase(fields))
    return Candidate(
        JOIN,
        "join_most",
        render(query, d),
        phrase(rng, "most" if k == 1 else "most_k", slots),
        reads(fields, conditions, (e.child, e.child_column), ("count", "")),
        order_keys=render(sort_keys(query, count, k), d),
        ordered=True,
        relaxed=relaxations(build, conditions, d),
    )


def join_top(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """The children with the highest or lowest measure, with their parent's label or among a parent's."""
    e = pick_edge(view, rng, lambda c, p: c.label is not None and p.label is not None and bool(c.measures + c.dates))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    key_col = rng.choice(child.measures + child.dates)
    conditions = parent_conditions(rng, view, parent, e.role, "T2") if rng.random() < 0.6 else []
    fields = [field(rng, label_of(child), d, "T1")]
    if not conditions or rng.random() < 0.4:
        fields.append(field(rng, label_of(parent), d, "T2", prefix=e.role))
    k = 1 if rng.random() < 0.4 else rng.randint(2, MAX_K)
    desc = rng.random() < 0.6
    key = column(key_col.name, d, "T1")

    def build(cs: list[Condition]) -> exp.Select:
        query = _where(joined(view, e, *(f.node.copy() for f in fields)), cs)
        return query.order_by(ordered(key.copy(), d, desc=desc)).limit(k)

    query = build(conditions)
    slots = {**filter_slots(rng, child, conditions), "measure": name_of(rng, key_col), "k": str(k)}
    slots.update(sup=superlative(rng, desc, key_col), top="top" if desc else "bottom")
    slots.update(fields=fields_phrase(fields), field=fields_phrase(fields, many=False))
    return Candidate(
        JOIN,
        "join_top",
        render(query, d),
        phrase(rng, which_or(rng, "top_one", fields) if k == 1 else "top_k", slots),
        reads(fields, conditions, (e.child, e.child_column), (e.child, key_col.name)),
        order_keys=render(sort_keys(query, key, k), d),
        ordered=True,
        relaxed=relaxations(build, conditions, d),
    )


def join_distinct(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Distinct values of one side for rows filtered on the other."""
    e = pick_edge(view, rng, lambda c, p: bool(c.categories) or bool(p.categories))
    if e is None:
        return None
    child, parent = view.tables[e.child], view.tables[e.parent]
    d = view.dialect
    of_parent = bool(parent.categories) and (not child.categories or rng.random() < 0.5)
    if of_parent:
        g, alias = rng.choice(parent.categories), "T2"
        conditions = draw_conditions(rng, child, d, 1, alias="T1")
        groups = plural(f"{e.role} {name_of(rng, g)}")
    else:
        g, alias = rng.choice(child.categories), "T1"
        conditions = parent_conditions(rng, view, parent, e.role, "T2")
        groups = plural(name_of(rng, g))
    if not conditions:
        return None

    def build(cs: list[Condition]) -> exp.Expr:
        return _where(joined(view, e, column(g.name, d, alias)), cs).distinct()

    slots = {**filter_slots(rng, child, conditions), "groups": groups}
    return Candidate(
        JOIN,
        "join_distinct",
        render(build(conditions), d),
        phrase(rng, "distinct", slots),
        reads([], conditions, (g.table, g.name), (e.child, e.child_column)),
        rows_below=g.distinct,
        relaxed=relaxations(build, conditions, d),
    )


def join_chain(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Rows of a child filtered on its parent's parent: bookings whose flight's airline is X."""
    path = pick(rng, [p for p in chains(view) if view.tables[p.near.child].label is not None])
    if path is None:
        return None
    child, grand = view.tables[path.near.child], view.tables[path.far.parent]
    d = view.dialect
    role = f"{path.near.role}'s {path.far.role}"
    conditions = parent_conditions(rng, view, grand, role, "T3")
    if not conditions:
        return None
    conditions = _shuffled(rng, conditions + child_conditions(rng, view, child, "T1", 0.3))
    count = rng.random() < 0.35
    fields = [] if count else label_fields(rng, child, d, alias="T1")

    def build(cs: list[Condition]) -> exp.Expr:
        values = [exp.Count(this=exp.Star())] if count else [f.node.copy() for f in fields]
        return _where(chain_from(view, path, *values), cs)

    slots = {**filter_slots(rng, child, conditions), "fields": fields_phrase(fields)}
    key = "count" if count else "which" if len(fields) == 1 and rng.random() < 0.5 else "list"
    return Candidate(
        JOIN,
        "join_chain",
        render(build(conditions), d),
        phrase(rng, key, slots),
        reads(fields, conditions, (path.near.child, path.near.child_column), (path.far.child, path.far.child_column)),
        rows_below=None if count else child.rows,
        count_below=child.rows if count else None,
        relaxed=relaxations(build, conditions, d),
    )


def join_link(view: DatabaseView, rng: random.Random) -> Candidate | None:
    """Rows of one table linked to filtered rows of another through a third: patients who have
    appointments whose doctor is X."""
    path = pick(rng, [p for p in links(view) if view.tables[p.to_subject.parent].label is not None])
    if path is None:
        return None
    subject, via, other = (
        view.tables[n] for n in (path.to_subject.parent, path.to_subject.child, path.to_other.parent)
    )
    d = view.dialect
    conditions = parent_conditions(rng, view, other, path.to_other.role, "T3")
    if not conditions:
        return None
    via_side = child_conditions(rng, view, via, "T2", 0.25)
    fields = [field(rng, label_of(subject), d, "T1")]

    def build(cs: list[Condition]) -> exp.Expr:
        return _where(link_from(view, path, *(f.node.copy() for f in fields)), cs).distinct()

    child_side = _shuffled(rng, conditions + via_side)
    slots = {**parent_slots(rng, view, path.to_subject, [], child_side), "fields": fields_phrase(fields)}
    slots.update(table_slots(subject))
    return Candidate(
        JOIN,
        "join_link",
        render(build(child_side), d),
        phrase(rng, which_or(rng, "parents", fields), slots),
        reads(fields, child_side, (via.name, path.to_subject.child_column), (via.name, path.to_other.child_column)),
        rows_below=subject.rows,
        relaxed=relaxations(build, child_side, d),
    )
