"""sql-create-context records (b-mc2/sql-create-context): question, context, answer.

`context` holds CREATE TABLE statements, often several separated by '; '; they become `schema`,
one statement per line. A context without CREATE TABLE statements is kept as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from text2sql.data.example import Example
from text2sql.data.readers.base import ReadOptions, RowFunction, missing_field, optional_text, row_id, text_field
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.ddl import extract_create_tables

FIELDS = ("question", "context", "answer")


def create_context_row_function(opts: ReadOptions, label: str, databases: Databases) -> RowFunction:
    def to_example(row: Mapping[str, Any], default_id: str) -> Example:
        for name in FIELDS:
            if name not in row:
                raise missing_field(label, name, row)
        context = text_field(row, "context")
        statements, _ = extract_create_tables(context)
        db_id = optional_text(row, "db_id")
        db_path = None
        if db_id and opts.db_dir:
            # The row's own context stays the prompt's schema; the database makes it executable.
            db_path, _ = databases.resolve(db_id)
        return Example(
            question=text_field(row, "question"),
            sql=text_field(row, "answer"),
            schema="\n".join(statements) if statements else context,
            db_id=db_id,
            db_path=db_path,
            complexity=optional_text(row, opts.complexity_column),
            id=row_id(row, default_id),
        )

    return to_example
