"""Which tables join on which columns: the declared foreign keys, and where none are declared the
plausible ones, a column that names another table's key (same name and kind of value, or `x_id`
beside a table `x`/`xs` keyed by `id`) and whose values are (nearly all) that table's keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from text2sql.data.synth.build import column, render, table
from text2sql.data.synth.names import humanise, plural, role_phrase, singular, words
from text2sql.data.synth.profile import PROFILE_TIMEOUT, TableProfile
from text2sql.sql.catalog import Schema

# Share of a column's distinct values that must be keys of the other table for a plausible join.
MIN_CONTAINED = 0.9


@dataclass(frozen=True)
class Edge:
    """`child.child_column` holds keys of `parent.parent_column`; `role` is what the child calls the
    parent row ("customer" for customer_id, "origin" for origin_code)."""

    child: str
    child_column: str
    parent: str
    parent_column: str
    role: str
    declared: bool


def join_edges(db: Any, schema: Schema, profiles: dict[str, TableProfile]) -> list[Edge]:
    """Declared single-column foreign keys between profiled tables, then plausible ones (checked on
    the data) for pairs of tables that declare none between them."""
    edges: list[Edge] = []
    for t in schema.tables:
        child = profiles.get(t.name)
        for fk in t.foreign_keys:
            parent = profiles.get(fk.ref_table) or _by_lower(profiles, fk.ref_table)
            ref = list(fk.ref_columns) or (parent.primary_key if parent else [])
            if child is None or parent is None or len(fk.columns) != 1 or len(ref) != 1:
                continue
            if fk.columns[0] in child.columns and ref[0] in parent.columns and parent.name != child.name:
                edges.append(Edge(child.name, fk.columns[0], parent.name, ref[0], _role(fk.columns[0], parent), True))
    linked = {(e.child, e.parent) for e in edges} | {(e.parent, e.child) for e in edges}
    for child in profiles.values():
        for parent in profiles.values():
            if parent.name == child.name or (child.name, parent.name) in linked:
                continue
            key = _key_of(parent)
            if key is None:
                continue
            for name, col in child.columns.items():
                if col.kind != parent.columns[key].kind or not _names_key(name, parent, key):
                    continue
                if name == key and name in child.primary_key and len(child.primary_key) == 1:
                    continue  # two tables keyed alike (one-to-one), not a reference
                if _contained(db, schema.dialect, child, name, parent, key):
                    edges.append(Edge(child.name, name, parent.name, key, _role(name, parent), False))
    return edges


def _by_lower(profiles: dict[str, TableProfile], name: str) -> TableProfile | None:
    return next((p for n, p in profiles.items() if n.lower() == name.lower()), None)


def _role(column_name: str, parent: TableProfile) -> str:
    return role_phrase(column_name, parent.noun)


def _key_of(parent: TableProfile) -> str | None:
    """The single column that identifies the table's rows: its primary key, else a unique `id` or
    `<table>_id` column."""
    if len(parent.primary_key) == 1:
        return parent.primary_key[0] if parent.primary_key[0] in parent.columns else None
    singular_name = "_".join(words(singular(humanise(parent.name)))).lower()
    for name, col in parent.columns.items():
        if name.lower() in ("id", f"{singular_name}_id") and col.distinct == col.non_null == parent.rows:
            return name
    return None


def _names_key(name: str, parent: TableProfile, key: str) -> bool:
    """Whether a column's name points at `parent.key`: the same name (`customer_id` in both), or
    `<parent>_id` / `<parent>Id` for a parent keyed by `id`."""
    if name.lower() == key.lower():
        return key.lower() != "id"  # every table has an `id`; the name alone says nothing then
    parts = [w.lower() for w in words(name)]
    if len(parts) < 2 or parts[-1] != "id" or key.lower() != "id":
        return False
    stem = " ".join(parts[:-1])
    table_words = " ".join(w.lower() for w in words(parent.name))
    return stem in (table_words, singular(table_words), plural(table_words))


def _contained(db: Any, dialect: str, child: TableProfile, name: str, parent: TableProfile, key: str) -> bool:
    """Whether nearly all distinct values of `child.name` are keys of `parent` (one bounded query)."""
    col = column(name, dialect)
    keys = exp.select(column(key, dialect)).from_(table(parent.name, dialect))
    found = exp.Count(this=exp.Distinct(expressions=[exp.case().when(col.copy().isin(query=keys), col.copy())]))
    query = exp.select(found, exp.Count(this=exp.Distinct(expressions=[col.copy()]))).from_(table(child.name, dialect))
    result = db.execute(render(query, dialect), timeout=PROFILE_TIMEOUT, max_rows=1)
    if not result.ok or not result.rows or not result.rows[0][1]:
        return False
    inside, total = result.rows[0]
    return inside >= MIN_CONTAINED * total
