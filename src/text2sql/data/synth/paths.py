"""Three tables joined along two foreign keys: a chain (a booking's flight's airline: child -> parent
-> grandparent) and a link (patients and doctors through appointments: a table whose rows point at
both), with the FROM clause each is read through and what a question calls each end."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from text2sql.data.synth.build import column, table
from text2sql.data.synth.candidate import DatabaseView
from text2sql.data.synth.joins import Edge


@dataclass(frozen=True)
class Chain:
    """`near` leads from the subject (T1) to the middle table (T2), `far` from there to the end (T3)."""

    near: Edge
    far: Edge


@dataclass(frozen=True)
class Link:
    """Rows of `via` (T2) point at the subject (T1, along `to_subject`) and at the other end (T3)."""

    to_subject: Edge
    to_other: Edge


def chains(view: DatabaseView) -> list[Chain]:
    """Every child -> parent -> grandparent path between three different tables."""
    return [
        Chain(a, b)
        for a in view.edges
        for b in view.edges
        if b.child == a.parent and b.parent not in (a.child, a.parent)
    ]


def links(view: DatabaseView) -> list[Link]:
    """Every pair of tables that a third table's rows point at (many-to-many through it)."""
    return [
        Link(a, b)
        for a in view.edges
        for b in view.edges
        if a.child == b.child and a.parent != b.parent and a.parent != a.child and b.parent != b.child
    ]


def chain_from(view: DatabaseView, path: Chain, *columns: exp.Expr) -> exp.Select:
    """SELECT columns FROM near.child AS T1 JOIN near.parent AS T2 ON ... JOIN far.parent AS T3 ON ..."""
    d = view.dialect
    first = exp.EQ(this=column(path.near.child_column, d, "T1"), expression=column(path.near.parent_column, d, "T2"))
    second = exp.EQ(this=column(path.far.child_column, d, "T2"), expression=column(path.far.parent_column, d, "T3"))
    return (
        exp.select(*columns)
        .from_(table(path.near.child, d, "T1"))
        .join(table(path.near.parent, d, "T2"), on=first)
        .join(table(path.far.parent, d, "T3"), on=second)
    )


def link_from(view: DatabaseView, path: Link, *columns: exp.Expr) -> exp.Select:
    """SELECT columns FROM subject AS T1 JOIN via AS T2 ON ... JOIN other AS T3 ON ..."""
    d = view.dialect
    a, b = path.to_subject, path.to_other
    first = exp.EQ(this=column(a.parent_column, d, "T1"), expression=column(a.child_column, d, "T2"))
    second = exp.EQ(this=column(b.child_column, d, "T2"), expression=column(b.parent_column, d, "T3"))
    return (
        exp.select(*columns)
        .from_(table(a.parent, d, "T1"))
        .join(table(a.child, d, "T2"), on=first)
        .join(table(b.parent, d, "T3"), on=second)
    )


def relate(view: DatabaseView, edge: Edge) -> dict[str, str]:
    """How a parent relates to the children of `edge`, as the slots relate / lack / without: "have",
    "have no", "without any" where the child calls it by its own noun (a customer's orders), else
    "are the origin of", "are not the origin of any", "that are not the origin of any"."""
    parent = view.tables[edge.parent]
    if edge.role.lower() in (parent.noun.lower(), parent.nouns.lower()):
        return {"relate": "have", "lack": "have no", "without": "without any"}
    role = edge.role
    return {
        "relate": f"are the {role} of",
        "lack": f"are not the {role} of any",
        "without": f"that are not the {role} of any",
    }
