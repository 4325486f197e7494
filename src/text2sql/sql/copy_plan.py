"""What `text2sql db copy` creates for one SQLite database, decided from its catalog and its rows
before anything is written; read only.

A column's type comes from the values it holds (SQLite stores any value in any column): integers
only → BIGINT, numbers → DOUBLE, blobs → BYTEA/BLOB, anything else, or a mix with text → TEXT (the
report notes each column that falls back). On PostgreSQL names are written in lower case
(`transpile.target_identifier`). Names the destination cannot hold as they are, and text with NUL
on PostgreSQL, are refused here (`copy_limits`), so a refusal never leaves half a copy behind.

Primary keys are kept where the rows satisfy them once copied; foreign keys where they point at a
primary key (PostgreSQL: NOT VALID, so rows that break them still load, as SQLite let them; DuckDB
checks them, so only keys every row satisfies are kept).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from text2sql.errors import DataError
from text2sql.sql.catalog import ForeignKey, Table
from text2sql.sql.copy_limits import PG_MAX_KEY_COLUMNS, check_tables
from text2sql.sql.sqlite import SQLiteDatabase
from text2sql.sql.targets import local_path
from text2sql.sql.transpile import target_identifier

# A DOUBLE holds every integer up to 2**53 exactly; larger ones in a column of mixed numbers change.
_EXACT_IN_DOUBLE = 2**53


@dataclass
class CopiedTable:
    name: str  # as written in the destination
    rows: int
    columns: dict[str, str]  # destination column -> kind (integer, real, text, blob)
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)


@dataclass
class CopyReport:
    source: str
    dest: str
    tables: list[CopiedTable] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def q(name: str) -> str:
    """`name` quoted as an identifier (SQLite and DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def read_only(path: Path, *, raw_text: bool = False) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the SQLite file `path`, closed on leaving. Text comes back as str
    (bytes that are not UTF-8 replaced), or with `raw_text` as the stored bytes."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.text_factory = bytes if raw_text else lambda raw: raw.decode("utf-8", errors="replace")
    try:
        yield conn
    finally:
        conn.close()


def source_tables(source: str | Path, dialect: str) -> list[Table]:
    """The tables of the SQLite file `source`, once their names and sizes are known to fit `dialect`."""
    path = local_path(source)
    if not path.is_file():
        raise DataError(f"{source}: not a SQLite file; text2sql db copy reads SQLite databases")
    try:
        with SQLiteDatabase(path) as db:
            tables = db.catalog().tables
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{source}: not a readable SQLite database ({exc})") from None
    check_tables(tables, dialect, str(source))
    return tables


def plan_copy(source: str | Path, dialect: str, tables: list[Table] | None = None) -> tuple[CopyReport, list[Table]]:
    """What a copy of `source` onto `dialect` creates (tables in an order that loads parents first),
    decided from the rows; read only. Raises DataError for what the destination cannot hold."""
    if tables is None:
        tables = source_tables(source, dialect)
    report = CopyReport(source=str(source), dest="")
    try:
        with read_only(local_path(source)) as conn:
            for table in tables:
                report.tables.append(_plan_table(conn, table, dialect, report.notes, str(source)))
            by_name = {t.name: t for t in report.tables}
            for table, copied in zip(tables, report.tables):
                keys = (_plan_key(conn, table, fk, dialect, by_name, report.notes) for fk in table.foreign_keys)
                copied.foreign_keys = [fk for fk in keys if fk]
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{source}: not a readable SQLite database ({exc})") from None
    order = _parents_first(report.tables, dialect, report.notes)
    report.tables = [report.tables[i] for i in order]
    return report, [tables[i] for i in order]


def _plan_table(conn: sqlite3.Connection, table: Table, dialect: str, notes: list[str], source: str) -> CopiedTable:
    name = target_identifier(table.name, dialect)
    columns: dict[str, str] = {}
    kinds_of: dict[str, str] = {}
    for column in table.columns:
        kinds = {
            kind
            for (kind,) in conn.execute(f"SELECT DISTINCT typeof({q(column.name)}) FROM {q(table.name)}")
            if kind != "null"
        }
        kind = _kind(kinds, column.type)
        if len(kinds) > 1 and kind == "text":
            notes.append(f"{table.name}.{column.name}: holds {' and '.join(sorted(kinds))} values; copied as text")
        if kind == "text" and dialect == "postgres":
            _refuse_nul(conn, table, column.name, source)
        if kind == "real" and "integer" in kinds:
            big = conn.execute(
                f"SELECT 1 FROM {q(table.name)} WHERE typeof({q(column.name)}) = 'integer' "
                f"AND abs({q(column.name)}) > {_EXACT_IN_DOUBLE} LIMIT 1"
            ).fetchone()
            if big:
                notes.append(
                    f"{table.name}.{column.name}: integers beyond 2**53 next to real numbers; copied as DOUBLE, "
                    "which rounds them"
                )
        columns[target_identifier(column.name, dialect)] = kind
        kinds_of[column.name] = kind
    rows = conn.execute(f"SELECT COUNT(*) FROM {q(table.name)}").fetchone()[0]
    copied = CopiedTable(name=name, rows=rows, columns=columns)
    pk = table.primary_key
    if pk and dialect == "postgres" and len(pk) > PG_MAX_KEY_COLUMNS:
        notes.append(
            f"{table.name}: primary key of {len(pk)} columns, more than PostgreSQL's {PG_MAX_KEY_COLUMNS}; "
            "copied without it"
        )
    elif pk:
        # Grouped by the values as copied: SQLite tells 1 from '1', a TEXT column no longer does.
        cols = ", ".join(_as_copied(c, kinds_of.get(c, "text")) for c in pk)
        nulls = " OR ".join(f"{q(c)} IS NULL" for c in pk)
        broken = conn.execute(
            f"SELECT 1 FROM {q(table.name)} WHERE {nulls} UNION ALL "
            f"SELECT 1 FROM {q(table.name)} GROUP BY {cols} HAVING COUNT(*) > 1 LIMIT 1"
        ).fetchone()
        if broken:
            notes.append(f"{table.name}: rows repeat or leave out its primary key ({', '.join(pk)}); copied without it")
        else:
            copied.primary_key = [target_identifier(c, dialect) for c in pk]
    return copied


def _as_copied(column: str, kind: str) -> str:
    if kind == "text":
        return f"CAST({q(column)} AS TEXT)"
    if kind == "real":
        return f"CAST({q(column)} AS REAL)"
    return q(column)


def _refuse_nul(conn: sqlite3.Connection, table: Table, column: str, source: str) -> None:
    """PostgreSQL text cannot hold NUL: a column with one is refused rather than changed. (Copying it
    as BYTEA instead would change what every comparison, LIKE and string function means on it.)"""
    found = conn.execute(
        f"SELECT 1 FROM {q(table.name)} WHERE instr(CAST({q(column)} AS BLOB), X'00') > 0 LIMIT 1"
    ).fetchone()
    if found:
        where = "primary key column" if column in table.primary_key else "column"
        raise DataError(
            f"{source}: {where} {q(table.name)}.{q(column)} holds text with NUL characters, which PostgreSQL text cannot "
            f"hold; remove them in the SQLite file (UPDATE {q(table.name)} SET {q(column)} = "
            f"replace({q(column)}, char(0), '')) or copy into DuckDB"
        )


def _kind(kinds: set[str], declared: str) -> str:
    if not kinds:  # no values: the declared type's affinity (SQLite's rules, section 3.1 of its docs)
        t = declared.upper()
        if "INT" in t:
            return "integer"
        if any(word in t for word in ("CHAR", "CLOB", "TEXT")) or not t:
            return "text" if t else "blob"
        if "BLOB" in t:
            return "blob"
        return "real"
    if kinds == {"integer"}:
        return "integer"
    if kinds <= {"integer", "real"}:
        return "real"
    if kinds == {"blob"}:
        return "blob"
    return "text"


def _plan_key(
    conn: sqlite3.Connection,
    table: Table,
    fk: ForeignKey,
    dialect: str,
    by_name: dict[str, CopiedTable],
    notes: list[str],
) -> ForeignKey | None:
    parent = by_name.get(target_identifier(fk.ref_table, dialect))
    to = [target_identifier(c, dialect) for c in fk.ref_columns] or (parent.primary_key if parent else [])
    shown = f"{table.name} ({', '.join(fk.columns)}) -> {fk.ref_table}"
    if (
        parent is None
        or not parent.primary_key
        or sorted(to) != sorted(parent.primary_key)
        or len(to) != len(fk.columns)
    ):
        notes.append(f"foreign key {shown}: does not point at a primary key; left out")
        return None
    if dialect == "duckdb":  # checked on every row: only a key all rows keep can be declared
        join = " AND ".join(f"p.{q(pc)} = c.{q(cc)}" for cc, pc in zip(fk.columns, fk.ref_columns or to))
        set_ = " AND ".join(f"c.{q(cc)} IS NOT NULL" for cc in fk.columns)
        orphan = conn.execute(
            f"SELECT 1 FROM {q(table.name)} AS c WHERE {set_} AND NOT EXISTS "
            f"(SELECT 1 FROM {q(fk.ref_table)} AS p WHERE {join}) LIMIT 1"
        ).fetchone()
        if orphan:
            notes.append(f"foreign key {shown}: some rows point at no row; left out (DuckDB checks every row)")
            return None
    return ForeignKey(tuple(target_identifier(c, dialect) for c in fk.columns), parent.name, tuple(to))


def _parents_first(tables: list[CopiedTable], dialect: str, notes: list[str]) -> list[int]:
    """Table indexes with every table after the tables it references; on DuckDB, whose keys are
    declared with the table, keys that close a cycle (or reference their own table) are left out."""
    index = {t.name: i for i, t in enumerate(tables)}
    order: list[int] = []
    state: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(i: int) -> None:
        state[i] = 1
        kept = []
        for fk in tables[i].foreign_keys:
            j = index[fk.ref_table]
            if state.get(j) == 1 or j == i:
                if dialect == "duckdb":
                    notes.append(f"foreign key {tables[i].name} -> {fk.ref_table}: part of a cycle; left out")
                    continue
            elif j not in state:
                visit(j)
            kept.append(fk)
        tables[i].foreign_keys = kept
        state[i] = 2
        order.append(i)

    for i in range(len(tables)):
        if i not in state:
            visit(i)
    return order
