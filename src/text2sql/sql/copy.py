"""`text2sql db copy`: SQLite databases copied into PostgreSQL or DuckDB, tables, keys and rows, so
that a dataset written for SQLite can be checked and trained on the engine a user really runs.

    report = copy_database("concert.sqlite", "postgresql://me@localhost/spider?schema=concert")
    reports = copy_databases([(path, f"out/{db_id}.duckdb") for db_id, path in found.items()])

All or nothing: every database of a copy is planned and checked first (`copy_plan`, `copy_limits`:
names the destination cannot hold, text it cannot hold, tables it already has), then written so
that a failure anywhere leaves every destination as it was (`copy_writers`). Existing tables are
replaced only with `force`. Nothing is changed silently: what the copy must change (a column of
mixed values as text, a key the rows break, bytes that are not UTF-8) is in the report's notes, and
what it cannot copy unchanged on an engine (a name too long, text with NUL on PostgreSQL) is refused.

Rows are read and written in batches of at most `_BATCH_BYTES`, so memory stays bounded whatever
the size of the values.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from text2sql.errors import DataError
from text2sql.progress import progress
from text2sql.sql.catalog import Table
from text2sql.sql.copy_plan import CopiedTable, CopyReport, plan_copy, q, read_only, source_tables
from text2sql.sql.copy_writers import DuckDBWriter, PostgresWriter, RowsOf
from text2sql.sql.targets import dialect_of, local_path, redact

__all__ = ["CopiedTable", "CopyReport", "copy_database", "copy_databases", "plan_copy"]

_BATCH_BYTES = 16 * 2**20  # bytes of row values held at a time (a 1 MB blob column: 16 rows a batch)
_BATCH_ROWS = 4096  # rows at a time, whatever their size: 2 DuckDB vectors, 1/30 of its row group


def copy_database(source: str | Path, dest: str, *, force: bool = False, show_progress: bool = True) -> CopyReport:
    """Copy the SQLite database `source` into `dest` (a postgresql:// URL, its `?schema=` the schema to
    create, or a DuckDB file), showing progress with an ETA; on failure `dest` is as it was."""
    return copy_databases([(source, dest)], force=force, show_progress=show_progress)[0]


def copy_databases(
    jobs: Sequence[tuple[str | Path, str]], *, force: bool = False, show_progress: bool = True
) -> list[CopyReport]:
    """Copy each SQLite database onto its destination (all PostgreSQL schemas of one database, or all
    DuckDB files): every one is copied, or, on any failure, none is and every destination is as it
    was. Raises DataError (one line naming the table or column and the fix) before anything is
    written for what a destination cannot hold, and OutputExistsError for tables it already has."""
    if not jobs:
        return []
    dests = [dest for _, dest in jobs]
    dialect = _dialect(dests)
    writer = PostgresWriter(dests) if dialect == "postgres" else DuckDBWriter(dests)
    catalogs = [source_tables(source, dialect) for source, _ in jobs]  # names first: no row read yet
    plans = [plan_copy(source, dialect, tables) for (source, _), tables in zip(jobs, catalogs)]
    for (_, dest), (report, _) in zip(jobs, plans):
        report.dest = redact(dest)
    writer.open()
    try:
        for (_, dest), (report, _) in zip(jobs, plans):
            writer.prepare(dest, report, force)
        for (source, dest), (report, tables) in zip(jobs, plans):
            bar = progress(report.rows, f"copy {Path(source).stem}", "rows", enabled=show_progress)
            try:
                with read_only(local_path(source), raw_text=True) as conn:
                    writer.write(dest, report, tables, _reader(conn, report.notes), bar.update)
            except sqlite3.DatabaseError as exc:
                raise DataError(f"{source}: cannot be read ({exc}); nothing was copied") from None
            finally:
                bar.close()
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return [report for report, _ in plans]


def _dialect(dests: list[str]) -> str:
    dialect = dialect_of(dests[0])
    if dialect not in ("postgres", "duckdb"):
        raise DataError(
            f"{redact(dests[0])}: not a PostgreSQL or DuckDB destination; text2sql db copy writes into a "
            "postgresql:// URL or a .duckdb file"
        )
    other = next((d for d in dests if dialect_of(d) != dialect), None)
    if other is not None:
        raise DataError(f"{redact(other)}: every destination of one copy is on the same engine")
    return dialect


def _reader(conn: sqlite3.Connection, notes: list[str]) -> RowsOf:
    return lambda copied, table: _batches(conn, table, copied, notes)


def _batches(conn: sqlite3.Connection, table: Table, copied: CopiedTable, notes: list[str]) -> Iterator[list[tuple]]:
    """The rows of `table` as `copied` writes them, in batches of at most `_BATCH_BYTES` (one row more
    when a single row is larger) or `_BATCH_ROWS`. Counts the text values that are not UTF-8 into
    `notes`, column by column."""
    kinds = list(copied.columns.values())
    bad = [0] * len(kinds)
    cursor = conn.execute(f"SELECT {', '.join(q(c.name) for c in table.columns)} FROM {q(table.name)}")
    batch: list[tuple] = []
    size = 0
    for raw in cursor:  # one row at a time: a batch never holds more than its bound plus one row
        row = tuple(_value(v, k, bad, i) for i, (v, k) in enumerate(zip(raw, kinds)))
        batch.append(row)
        size += sys.getsizeof(row) + sum(sys.getsizeof(v) for v in row)
        if size >= _BATCH_BYTES or len(batch) >= _BATCH_ROWS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
    for column, count in zip(table.columns, bad):
        if count:
            notes.append(
                f"{table.name}.{column.name}: {count} value(s) not valid UTF-8; copied with U+FFFD in place of "
                "the bytes that are not"
            )


def _value(value: Any, kind: str, bad: list[int], i: int) -> Any:
    if value is None:
        return None
    if kind == "text":
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                bad[i] += 1
                return value.decode("utf-8", errors="replace")
        return str(value)
    if kind == "real":
        return float(value)
    return value
