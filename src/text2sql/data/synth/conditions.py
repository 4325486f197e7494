"""Filters: one condition on one column, drawn from the column's kind and its stored values, with
the SQL that applies it and two ways a question says it ("price is above 50" after "whose" or
"where"; "price above 50" after "with" or "have"), and the clause that joins several of them.

Kinds: text columns are matched (=, <>, one of two or three values, a word they contain), numbers
and dates compared (<, <=, >, >=, BETWEEN), years and dates in words of time ("after 1990"). Every
value is one the column holds; a text value is written in the question exactly as stored.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from text2sql.data.synth.build import column, literal, shown
from text2sql.data.synth.profile import DATE, NUMBER, TEXT, ColumnProfile, TableProfile
from text2sql.data.synth.wording import compare_words, event_verb, listing, name_of, said

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]{3,}")
_OPS = {">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}


@dataclass(frozen=True)
class Condition:
    """One filter: its SQL, the column it reads, its words after "whose" (`is_`) and "with" (`with_`),
    and for a category's or a parent's stored value, the words right after a noun (`in_`: "in city
    'Boston'", or the value alone: "in Boston", "from Boston", "by KLM") and right before it
    (`before`: "Books products", "Psychology students", "Isaac Brown's orders")."""

    sql: exp.Expr
    read: tuple[str, str]
    is_: str
    with_: str
    in_: str = ""
    before: str = ""


def draw_condition(
    rng: random.Random,
    t: TableProfile,
    dialect: str,
    *,
    alias: str | None = None,
    prefix: str = "",
    avoid: set[str] | frozenset[str] = frozenset(),
) -> Condition | None:
    """A filter on a column of `t` that is not in `avoid`, or None when there is none; `alias`
    qualifies the column (a join), `prefix` says whose column it is ("airline's" -> "airline's country")."""
    weighted = [(c, 6) for c in t.categories] + [(c, 5) for c in t.measures] + [(c, 4) for c in t.dates]
    weighted += [(c, 2) for c in t.texts if c not in t.categories and c is not t.label]
    weighted = [(c, w) for c, w in weighted if c.name not in avoid]
    if not weighted:
        return None
    col = rng.choices([c for c, _ in weighted], [w for _, w in weighted])[0]
    name = name_of(rng, col)
    name = f"{prefix} {name}" if prefix else name
    node = column(col.name, dialect, alias)
    if col.kind == TEXT:
        return _text(rng, col, t, node, name, alone=not prefix)
    if col in t.categories and col.kind == NUMBER and rng.random() < 0.4:
        return _equal(rng, col, t, node, name, alone=not prefix)
    return _compare(rng, col, node, name, alone=not prefix)


def unsaid(sql: exp.Expr, read: tuple[str, str] = ("", "")) -> Condition:
    """A condition the question says in its own words elsewhere, or not at all (a shape's subquery)."""
    return Condition(sql, read, "", "")


def label_condition(
    rng: random.Random, t: TableProfile, dialect: str, *, alias: str | None = None, name: str = "", alone: bool = True
):
    """`label = v` for a stored label, said as "<name> is v" ("airline is 'Delta'"), and with `alone`
    also by the value alone ("by 'Delta'", "Delta flights"); None without one."""
    if t.label is None:
        return None
    v = rng.choice(t.label.spread) if t.label.spread else None
    if v is None:
        return None
    shown_v = said(rng, v)
    name = name or name_of(rng, t.label)
    node = column(t.label.name, dialect, alias)
    # People name a related row by its value alone: "orders for Isaac Brown", "flights operated by
    # KLM", "Psychology students"; the model has to find the table that holds the value and join it.
    form = rng.choices(("for {s}", "of {s}", "by {s}", "with {s}", "from {s}", "in {s}"), (4, 2, 3, 1, 1, 1))[0]
    plain = shown(v)
    before = rng.choices((plain, f"{plain}'s"), (3, 1))[0] if isinstance(v, str) else ""
    if not alone:
        form, before = "", ""
    return Condition(
        exp.EQ(this=node, expression=literal(v)),
        (t.name, t.label.name),
        f"{name} is {shown_v}",
        f"{name} {shown_v}",
        form.format(s=shown_v) if form else "",
        before,
    )


def _equal(
    rng: random.Random, col: ColumnProfile, t: TableProfile, node: exp.Expr, name: str, *, alone: bool = True
) -> Condition | None:
    values = [v for v, n in col.top if n < t.rows] or (col.spread if col not in t.categories else [])
    if not values:
        return None
    v = rng.choice(values)
    s = said(rng, v)
    sql = exp.EQ(this=node, expression=literal(v))
    in_ = ""
    verb = event_verb(col) if col.yearly and alone else None
    if verb:  # "students enrolled in 2021"
        in_ = f"{verb} in {s}"
    if col in t.categories and col.kind == TEXT:
        # "in city 'Boston'"; or the value alone, as people name a category: "in Boston", "from
        # Boston", "Books products". Not a parent's column: "flights from Canada" would say the
        # origin, not the airline's country.
        weights = (3, 4, 2, 1) if alone else (1, 0, 0, 0)
        form = rng.choices(("in {name} {s}", "in {s}", "from {s}", "for {s}"), weights)[0]
        in_ = form.format(name=name, s=s)
    before = shown(v) if in_ and alone and isinstance(v, str) else ""
    return Condition(sql, (col.table, col.name), f"{name} is {s}", f"{name} {s}", in_, before)


def _text(
    rng: random.Random, col: ColumnProfile, t: TableProfile, node: exp.Expr, name: str, *, alone: bool = True
) -> Condition | None:
    shared = [v for v, n in col.top if n < t.rows]
    kind = rng.choices(("eq", "neq", "or", "in", "like"), (10, 1, 2, 1.5, 1))[0]
    sql: exp.Expr
    if kind == "neq" and len(shared) >= 2:
        v = rng.choice(shared)
        s = said(rng, v)
        sql = exp.NEQ(this=node, expression=literal(v))
        return Condition(sql, (col.table, col.name), f"{name} is not {s}", f"{name} other than {s}")
    if kind in ("or", "in") and len(shared) >= (3 if kind == "or" else 4):
        values = rng.sample(shared, 2 if kind == "or" else 3)
        words = listing([said(rng, v) for v in values], "or")
        if kind == "or":
            sql = exp.or_(*(exp.EQ(this=node.copy(), expression=literal(v)) for v in values))
        else:
            sql = node.isin(*(literal(v) for v in values))
        return Condition(sql, (col.table, col.name), f"{name} is {words}", f"{name} {words}")
    if kind == "like":
        found = _like(rng, col)
        if found is not None:
            pattern, is_, with_ = found
            sql = exp.Like(this=node, expression=exp.Literal.string(pattern))
            return Condition(sql, (col.table, col.name), f"{name} {is_}", f"{name} {with_}")
    return _equal(rng, col, t, node, name, alone=alone)


def _like(rng: random.Random, col: ColumnProfile) -> tuple[str, str, str] | None:
    """(LIKE pattern, "contains 'Air'", "containing 'Air'") for a word of a stored value; or a
    value's first word, "starts with"."""
    values = [v for v in col.spread + [v for v, _ in col.top] if isinstance(v, str)]
    words = sorted({w for v in values for w in _WORD.findall(v) if w != v})  # a whole value is matched with =
    if not words:
        return None
    word = rng.choice(words)
    s = said(rng, word)
    if rng.random() < 0.3 and any(v.startswith(word) for v in values):
        return f"{word}%", f"starts with {s}", f"starting with {s}"
    return f"%{word}%", f"contains {s}", f"containing {s}"


def _compare(
    rng: random.Random, col: ColumnProfile, node: exp.Expr, name: str, *, alone: bool = True
) -> Condition | None:
    inner = col.spread[1:-1]  # values inside the range: rows lie on both sides
    if not inner:
        return None
    time = col.kind == DATE or col.yearly
    verb = event_verb(col) if time and alone else None  # "hired after 2005": in_, right after the noun
    if len(inner) >= 3 and rng.random() < 0.15:
        low, high = sorted(rng.sample(inner, 2))
        sql: exp.Expr = exp.Between(this=node, low=literal(low), high=literal(high))
        words = f"between {said(rng, low)} and {said(rng, high)}"
        in_ = f"{verb} {words}" if verb else ""
        return Condition(sql, (col.table, col.name), f"{name} is {words}", f"{name} {words}", in_)
    op = rng.choices((">", "<", ">=", "<="), (4, 4, 1, 1))[0]
    x: Any = rng.choice(inner)
    words = compare_words(rng, op, said(rng, x), time=time)
    sql = _OPS[op](this=node, expression=literal(x))
    in_ = f"{verb} {words}" if verb else ""
    return Condition(sql, (col.table, col.name), f"{name} is {words}", f"{name} {words}", in_)


def draw_conditions(
    rng: random.Random,
    t: TableProfile,
    dialect: str,
    n: int,
    *,
    alias: str | None = None,
    prefix: str = "",
    avoid: set[str] | frozenset[str] = frozenset(),
) -> list[Condition]:
    """Up to `n` filters on different columns of `t` (fewer when it has fewer columns to filter)."""
    found: list[Condition] = []
    used = set(avoid)
    for _ in range(n):
        c = draw_condition(rng, t, dialect, alias=alias, prefix=prefix, avoid=frozenset(used))
        if c is None:
            break
        found.append(c)
        used.add(c.read[1])
    return found


def how_many(rng: random.Random) -> int:
    """How many conditions a filtered question has: one most often, two often, three sometimes."""
    return rng.choices((1, 2, 3), (5, 4, 1.5))[0]


def where_of(conditions: list[Condition]) -> exp.Expr | None:
    """The conditions ANDed, or None without any."""
    return exp.and_(*(c.sql.copy() for c in conditions)) if conditions else None


def clause(rng: random.Random, conditions: list[Condition]) -> str:
    """The conditions as a relative clause with a leading space (" whose city is 'Boston' and price
    is above 50", " with city Boston and price above 50", " where ..."), or "" without any."""
    if not conditions:
        return ""
    named = next((c for c in conditions if c.in_), None)
    style = rng.choices(("whose", "with", "where", "that have", "in"), (5, 4, 2, 1, 5 if named else 0))[0]
    if style == "in" and named is not None:  # "in city 'Boston' with price above 50"
        rest = [c for c in conditions if c is not named]
        return f" {named.in_}" + (" with " + listing([c.with_ for c in rest]) if rest else "")
    if style == "with":
        return " with " + listing([c.with_ for c in conditions])
    if style == "that have":
        return " that have " + listing([c.with_ for c in conditions])
    if style == "whose" and len(conditions) > 1 and rng.random() < 0.3:
        return " whose " + " and whose ".join(c.is_ for c in conditions)
    return f" {style} " + listing([c.is_ for c in conditions])


def having(conditions: list[Condition]) -> str:
    """The conditions after "have": "city Boston and price above 50"."""
    return listing([c.with_ for c in conditions])


__all__ = ["Condition", "clause", "draw_condition", "draw_conditions", "having", "how_many", "unsaid", "where_of"]
