"""A schema from CREATE TABLE text, for rows that bring their schema as text and no database
(sql-create-context, chat data with DDL in a turn): what pruning needs to keep part of it."""

from __future__ import annotations

import functools

from text2sql.data.readers.ddl import extract_create_tables
from text2sql.sql.catalog import Column, ForeignKey, Schema, Table


@functools.lru_cache(maxsize=256)
def schema_from_ddl(text: str, dialect: str = "sqlite") -> Schema | None:
    """The tables, columns and keys of the CREATE TABLE statements in `text`; None when it holds
    none or does not parse (a schema in the compact or tables format, prose). Shared: copy before
    changing it."""
    import sqlglot
    from sqlglot import exp

    if "create" not in text.lower():
        return None
    tables = []
    # Real data joins statements with ', ' or newlines as often as with ';'.
    for ddl in extract_create_tables(text)[0]:
        try:
            statement = sqlglot.parse_one(ddl, read=dialect)
        except Exception:  # sqlglot's ParseError / TokenError: a statement it cannot read is left out
            continue
        if not isinstance(statement, exp.Create) or statement.kind != "TABLE":
            continue
        target = statement.this
        if not isinstance(target, exp.Schema) or not isinstance(target.this, exp.Table):
            continue
        table = Table(target.this.name)
        for part in target.expressions:
            if isinstance(part, exp.ColumnDef):
                kind = part.args.get("kind")
                table.columns.append(Column(part.name, kind.sql(dialect=dialect) if kind else ""))
                for constraint in part.args.get("constraints") or []:
                    if isinstance(constraint.kind, exp.PrimaryKeyColumnConstraint):
                        table.primary_key.append(part.name)
                    elif isinstance(constraint.kind, exp.Reference):
                        table.foreign_keys.append(ForeignKey((part.name,), *_reference(constraint.kind)))
            elif isinstance(part, exp.Identifier):  # a column without a type: CREATE TABLE t (a, b)
                table.columns.append(Column(part.name))
            elif isinstance(part, exp.PrimaryKey):
                table.primary_key.extend(e.name for e in part.expressions)
            elif isinstance(part, exp.ForeignKey):
                reference = part.args.get("reference")
                if reference is not None:
                    columns = tuple(e.name for e in part.expressions)
                    table.foreign_keys.append(ForeignKey(columns, *_reference(reference)))
        if table.columns:
            tables.append(table)
    return Schema(tables, dialect=dialect) if tables else None


def _reference(reference) -> tuple[str, tuple[str, ...]]:
    from sqlglot import exp

    target = reference.this
    if isinstance(target, exp.Schema):
        return target.this.name, tuple(e.name for e in target.expressions)
    return target.name, ()
