"""The format names, telling a row's format from its fields, and each format's row function.

A format here is a way of mapping a row's fields to an Example. Where the rows come from (a CSV or
JSONL file, a parquet file, a HF dataset) is separate, so a parquet file of chat records and a JSONL
file of chat records go through the same `chat` row function.
"""

from __future__ import annotations

from collections.abc import Collection

from text2sql.data.readers.base import ReadOptions, RowFunction
from text2sql.data.readers.chat import chat_row_function
from text2sql.data.readers.create_context import create_context_row_function
from text2sql.data.readers.csv_rows import csv_row_function
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.sparc import SPARC_FIELDS, sparc_row_function
from text2sql.data.readers.spider import benchmark_row_function
from text2sql.errors import DataError

FORMATS: tuple[str, ...] = ("auto", "csv", "chat", "create_context", "spider", "bird", "sparc", "hf", "bundled")
# Formats that say how a row maps to an Example (the others say where rows come from).
ROW_FORMATS = ("csv", "chat", "create_context", "spider", "bird", "sparc")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DataError(f"data.format {fmt!r} is unknown; use one of: {', '.join(FORMATS)}")
    return fmt


def format_from_fields(fields: Collection[str], opts: ReadOptions) -> str | None:
    """The row format whose fields these are, or None. First match wins:

    messages → chat; interaction + database_id → sparc (SParC, CoSQL); question + context + answer →
    create_context; db_id + question + SQL → bird; db_id + question + query (or sql) → spider; the
    configured question and SQL columns (the question column alone when `opts.require_sql` is off) → csv.
    """
    fields = set(fields)
    if "messages" in fields:
        return "chat"
    if set(SPARC_FIELDS) <= fields:
        return "sparc"
    if {"question", "context", "answer"} <= fields:
        return "create_context"
    if {"db_id", "question"} <= fields:
        if "SQL" in fields:
            return "bird"
        if "query" in fields or "sql" in fields:
            return "spider"
    if {opts.question_column, opts.sql_column} <= fields:
        return "csv"
    if not opts.require_sql and opts.question_column in fields:  # questions without SQL
        return "csv"
    return None


def undetectable(label: str, fields: Collection[str]) -> DataError:
    shown = ", ".join(sorted(map(str, fields))) or "none"
    return DataError(
        f"{label}: cannot tell the format from the fields ({shown}); set data.format to one of: "
        f"{', '.join(ROW_FORMATS)} (for csv, also data.question_column / data.sql_column)"
    )


def row_function(fmt: str, opts: ReadOptions, label: str, databases: Databases) -> RowFunction:
    """The row → Example function of a row format."""
    if fmt == "csv":
        return csv_row_function(opts, label, databases)
    if fmt == "chat":
        return chat_row_function(opts, label, databases)
    if fmt == "create_context":
        return create_context_row_function(opts, label, databases)
    if fmt in ("spider", "bird"):
        return benchmark_row_function(opts, label, databases)
    if fmt == "sparc":
        return sparc_row_function(opts, label, databases)
    raise DataError(f"{label}: {fmt!r} is not a row format; use one of: {', '.join(ROW_FORMATS)}")
