"""Flat records: one question field and one SQL field per row (a classic text-to-SQL CSV: input_text, sql,
sql_complexity). The same mapping reads JSONL, parquet or HF rows with those fields.

Optional fields: `db_id` (with data.db_dir: the row gets that database's schema and becomes
executable; without data.db_dir the db_id is kept but the row has no database), `id`,
`evidence` / `external_knowledge`, and `reasoning` / `cot` (SynSQL's chain of thought).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from text2sql.data.example import Example
from text2sql.data.readers.base import (
    EVIDENCE_FIELDS,
    REASONING_FIELDS,
    ReadOptions,
    RowFunction,
    first_text,
    missing_field,
    optional_text,
    row_id,
    text_field,
)
from text2sql.data.readers.databases import Databases


def csv_row_function(opts: ReadOptions, label: str, databases: Databases) -> RowFunction:
    default_complexity = ReadOptions.__dataclass_fields__["complexity_column"].default

    def to_example(row: Mapping[str, Any], default_id: str) -> Example:
        for column, key in ((opts.question_column, "data.question_column"), (opts.sql_column, "data.sql_column")):
            if column not in row and (column != opts.sql_column or opts.require_sql):
                raise missing_field(label, column, row, key)
        if opts.complexity_column != default_complexity and opts.complexity_column not in row:
            raise missing_field(label, opts.complexity_column, row, "data.complexity_column")
        db_id = optional_text(row, "db_id")
        db_path, schema = None, ""
        if db_id and opts.db_dir:
            db_path, schema = databases.resolve(db_id)
        return Example(
            question=text_field(row, opts.question_column),
            sql=text_field(row, opts.sql_column),
            schema=schema,
            db_id=db_id,
            db_path=db_path,
            complexity=optional_text(row, opts.complexity_column),
            reasoning=first_text(row, REASONING_FIELDS),
            evidence=first_text(row, EVIDENCE_FIELDS),
            id=row_id(row, default_id),
        )

    return to_example
