"""SQL built as sqlglot expressions and written in the database's own dialect, names quoted where
the dialect needs it (a keyword, a space, capitals on PostgreSQL): the same rule the schema text in
prompts follows (`data.schema.quote_identifier`)."""

from __future__ import annotations

import datetime
import decimal
from typing import Any

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from text2sql.data.schema import quote_identifier


def ident(name: str, dialect: str) -> exp.Identifier:
    return exp.Identifier(this=name, quoted=quote_identifier(name, dialect) != name)


def column(name: str, dialect: str, table: str | None = None) -> exp.Column:
    """`name`, qualified by the table alias `table` when given."""
    return exp.Column(this=ident(name, dialect), table=exp.to_identifier(table) if table else None)


def table(name: str, dialect: str, alias: str | None = None) -> exp.Expr:
    node: exp.Expr = exp.Table(this=ident(name, dialect))
    return exp.alias_(node, alias, table=True) if alias else node


def literal(value: Any) -> exp.Expr:
    """A value read from the database as a SQL literal: numbers as numbers, dates and text as strings."""
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, decimal.Decimal)):
        return exp.Literal.number(str(value))
    if isinstance(value, float):
        return exp.Literal.number(repr(value))
    return exp.Literal.string(shown(value))


def shown(value: Any) -> str:
    """A value as a question writes it, and as its SQL literal holds it."""
    if isinstance(value, (datetime.date, datetime.datetime, datetime.time)):
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def ordered(node: exp.Expr, dialect: str, *, desc: bool = False) -> exp.Ordered:
    """`node ASC|DESC` with the dialect's own NULL placement, so that no NULLS FIRST/LAST is written
    (the sampled queries sort columns without NULLs, or keep them out with IS NOT NULL)."""
    placement = Dialect.get_or_raise(dialect).NULL_ORDERING
    nulls_first = {"nulls_are_small": not desc, "nulls_are_large": desc}.get(placement, False)
    return exp.Ordered(this=node, desc=desc, nulls_first=nulls_first)


def render(node: exp.Expr, dialect: str) -> str:
    return node.sql(dialect=dialect)
