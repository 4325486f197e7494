"""SQL written for SQLite, rewritten for the database it will run on (sqlglot), so that a dataset
written for one engine trains a model for another.

sqlglot translates the syntax; two meanings it leaves alone are made to match SQLite's here, because
they decide whether a query returns the same rows:

* names: SQLite matches table and column names case-insensitively, quoted or not. `text2sql db
  copy` writes names in lower case on PostgreSQL (where an unquoted name is folded to lower case),
  so every identifier is lower-cased for it (`target_identifier`).
* LIKE: case-insensitive in SQLite, case-sensitive in PostgreSQL and DuckDB; it becomes ILIKE.
* "John": a string in SQLite when no column has that name (Spider's gold is full of them); a name
  everywhere else. With the database's column names given, it becomes 'John'.

Whether the result is really the same is not assumed: `data.prepare` runs both and keeps the pair
only when the rows match.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from text2sql.sql.targets import check_dialect


class TranspileError(ValueError):
    """The SQL cannot be parsed or written in the target dialect."""


def target_identifier(name: str, dialect: str) -> str:
    """A SQLite table or column name as a copy of the database on `dialect` names it."""
    return name.lower() if dialect == "postgres" else name


def transpile(sql: str, target: str, source: str = "sqlite", *, columns: Collection[str] | None = None) -> str:
    """`sql` (one statement in `source`'s dialect) written for `target`. `columns`, the column
    names of the database (any case), tell SQLite's double-quoted strings from quoted names: SQLite
    reads `"John"` as a string when no column is called John, the other engines never do."""
    check_dialect(target)
    if target == source:
        return sql
    try:
        statements = [s for s in sqlglot.parse(sql, read=source) if s is not None]
    except (SqlglotError, RecursionError) as exc:
        raise TranspileError(f"cannot parse: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if len(statements) != 1:
        raise TranspileError(f"expected one statement, got {len(statements)}")
    tree = statements[0]
    if source == "sqlite":
        known = {c.lower() for c in columns} if columns is not None else None
        # One pass per rewrite: sqlglot does not descend into a node a pass has just replaced.
        tree = tree.transform(lambda node: _string_or_name(node, known), copy=False)
        if target in ("postgres", "duckdb"):
            tree = tree.transform(_like_as_sqlite, copy=False)
            for select in list(tree.find_all(exp.Select)):
                _aggregate_bare_columns(select)
        tree = tree.transform(lambda node: _identifier_for(node, target), copy=False)
    try:
        return tree.sql(dialect=target)
    except (SqlglotError, RecursionError) as exc:
        raise TranspileError(f"cannot write for {target}: {str(exc).splitlines()[0]}") from None


def _string_or_name(node: exp.Expression, known: set[str] | None) -> exp.Expression:
    if (
        known is not None
        and isinstance(node, exp.Column)
        and not node.table
        and node.this.quoted
        and node.name.lower() not in known
        and not isinstance(node.parent, (exp.Alias, exp.Ordered))  # `ORDER BY "cnt"` names an alias
    ):
        return exp.Literal.string(node.name)
    return node


def _like_as_sqlite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Like):
        return exp.ILike(this=node.this, expression=node.expression)
    return node


def _aggregate_bare_columns(select: exp.Select) -> None:
    """SQLite lets a grouped query name a column that is neither grouped nor aggregated (any row's
    value); PostgreSQL and DuckDB refuse it. Such a column becomes MIN(column): the same value
    wherever it depends on the group (a customer's name grouped by customer id); where it does
    not, the checked result says so."""
    group = select.args.get("group")
    if not group:
        return
    grouped = {g.sql() for g in group.expressions}
    grouped_names = {g.name for g in group.expressions if isinstance(g, exp.Column)}
    aliases = {e.alias for e in select.expressions if isinstance(e, exp.Alias)}
    places = [*select.expressions, select.args.get("having"), select.args.get("order")]
    for place in places:
        if place is None:
            continue
        for column in list(place.find_all(exp.Column)):
            if column.sql() in grouped or (not column.table and column.name in aliases | grouped_names):
                continue
            if column.find_ancestor(exp.AggFunc, exp.Select) is not select:
                continue  # inside an aggregate, or in a subquery of its own
            column.replace(exp.Min(this=column.copy()))


def _identifier_for(node: exp.Expression, target: str) -> exp.Expression:
    if isinstance(node, exp.Identifier):
        return exp.Identifier(this=target_identifier(node.name, target), quoted=node.quoted)
    return node
