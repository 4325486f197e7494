"""`text2sql db copy`: a SQLite database copied into PostgreSQL or DuckDB, tables, keys and rows, so
that a dataset written for SQLite can be checked and trained on the engine a user really runs.

    report = copy_database("concert.sqlite", "postgresql://me@localhost/spider?schema=concert")

A column's type comes from the values it holds (SQLite stores any value in any column): integers
only → BIGINT, numbers → DOUBLE, blobs → BYTEA/BLOB, anything else, or a mix with text → TEXT (the
report notes each column that falls back). Text compares byte by byte as in SQLite (PostgreSQL:
COLLATE "C"). On PostgreSQL names are written in lower case (`transpile.target_identifier`).

Primary keys are kept where the rows satisfy them; foreign keys where they point at a primary key
(PostgreSQL: NOT VALID, so rows that break them still load, as SQLite let them; DuckDB checks them,
so only keys every row satisfies are kept). Everything happens in one transaction: a copy that fails
leaves the destination as it was. Existing tables are replaced only with `force`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.errors import DataError, OutputExistsError
from text2sql.progress import progress
from text2sql.sql.catalog import ForeignKey, Table
from text2sql.sql.sqlite import SQLiteDatabase
from text2sql.sql.targets import DISPLAY_NAMES, dialect_of, local_path, postgres_parts, redact
from text2sql.sql.transpile import target_identifier

_TYPES = {
    "postgres": {"integer": "BIGINT", "real": "DOUBLE PRECISION", "text": 'TEXT COLLATE "C"', "blob": "BYTEA"},
    "duckdb": {"integer": "BIGINT", "real": "DOUBLE", "text": "VARCHAR", "blob": "BLOB"},
}
_CHUNK = 5000  # rows read and written at a time


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
    return '"' + name.replace('"', '""') + '"'


# ------------------------------------------------------------------------------------ the plan


def plan_copy(source: str | Path, dialect: str) -> tuple[CopyReport, list[Table]]:
    """What a copy of `source` onto `dialect` creates (tables in an order that loads parents first),
    decided from the rows; read only."""
    if dialect not in _TYPES:
        raise DataError(f"cannot copy into {DISPLAY_NAMES.get(dialect, dialect)}; copy into PostgreSQL or DuckDB")
    path = local_path(source)
    if dialect_of(str(source)) != "sqlite" or not path.is_file():
        raise DataError(f"{source}: not a SQLite file; text2sql db copy reads SQLite databases")
    try:
        with SQLiteDatabase(path) as db:
            tables = db.catalog().tables
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{source}: not a readable SQLite database ({exc})") from None
    report = CopyReport(source=str(source), dest="")
    with _read_only(path) as conn:
        for table in tables:
            report.tables.append(_plan_table(conn, table, dialect, report.notes))
        by_name = {t.name: t for t in report.tables}
        for table, copied in zip(tables, report.tables):
            copied.foreign_keys = [
                fk
                for fk in (_plan_key(conn, table, fk, dialect, by_name, report.notes) for fk in table.foreign_keys)
                if fk
            ]
    order = _parents_first(report.tables, dialect, report.notes)
    report.tables = [report.tables[i] for i in order]
    return report, [tables[i] for i in order]


def _read_only(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    conn.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
    return conn


def _plan_table(conn: sqlite3.Connection, table: Table, dialect: str, notes: list[str]) -> CopiedTable:
    name = target_identifier(table.name, dialect)
    columns: dict[str, str] = {}
    for column in table.columns:
        kinds = {
            kind
            for (kind,) in conn.execute(f"SELECT DISTINCT typeof({q(column.name)}) FROM {q(table.name)}")
            if kind != "null"
        }
        kind = _kind(kinds, column.type)
        if len(kinds) > 1 and kind == "text":
            notes.append(f"{table.name}.{column.name}: holds {' and '.join(sorted(kinds))} values; copied as text")
        columns[target_identifier(column.name, dialect)] = kind
    rows = conn.execute(f"SELECT COUNT(*) FROM {q(table.name)}").fetchone()[0]
    copied = CopiedTable(name=name, rows=rows, columns=columns)
    pk = table.primary_key
    if pk:
        cols = ", ".join(q(c) for c in pk)
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


# ------------------------------------------------------------------------------------ the copy


def copy_database(
    source: str | Path,
    dest: str,
    *,
    force: bool = False,
    show_progress: bool = True,
) -> CopyReport:
    """Copy the SQLite database `source` into `dest` (a postgresql:// URL, its `?schema=` the
    schema to create, or a DuckDB file), showing progress with an ETA."""
    dialect = dialect_of(dest)
    report, tables = plan_copy(source, dialect)
    report.dest = redact(dest)
    writer = _PostgresWriter(dest) if dialect == "postgres" else _DuckDBWriter(dest)
    bar = progress(report.rows, f"copy {Path(source).stem}", "rows", enabled=show_progress)
    try:
        with _read_only(local_path(source)) as conn:
            writer.write(
                report, tables, lambda copied, table: _rows(conn, table, copied), force=force, on_rows=bar.update
            )
    finally:
        bar.close()
    return report


def _rows(conn: sqlite3.Connection, table: Table, copied: CopiedTable) -> Iterator[list[tuple]]:
    kinds = list(copied.columns.values())
    cursor = conn.execute(f"SELECT {', '.join(q(c.name) for c in table.columns)} FROM {q(table.name)}")
    while chunk := cursor.fetchmany(_CHUNK):
        yield [tuple(_value(v, k) for v, k in zip(row, kinds)) for row in chunk]


def _value(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "text":
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        # PostgreSQL text cannot hold NUL; SQLite's C functions stop at it anyway.
        return str(value).replace("\x00", "")
    if kind == "real":
        return float(value)
    return value


class _PostgresWriter:
    def __init__(self, dest: str):
        from text2sql.sql.postgres import connection_error, require_psycopg

        self.psycopg = require_psycopg()
        self.url, self.schema = postgres_parts(dest)
        self.dest = dest
        try:
            self.conn = self.psycopg.connect(self.url, connect_timeout=5, autocommit=False)
        except self.psycopg.Error as exc:
            raise DataError(connection_error(dest, exc)) from None

    def write(self, report: CopyReport, tables: list[Table], rows_of, *, force: bool, on_rows) -> None:
        sql = self.psycopg.sql
        schema = sql.Identifier(self.schema)
        try:
            with self.conn, self.conn.cursor() as cur:
                cur.execute(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = %s AND c.relname = ANY(%s)",
                    (self.schema, [t.name for t in report.tables]),
                )
                existing = [r[0] for r in cur.fetchall()]
                if existing and not force:
                    raise OutputExistsError(
                        f"{redact(self.dest)} already has table(s) {', '.join(existing)}; pass --force to replace them"
                    )
                cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                for name in existing:
                    cur.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(self.schema, name)))
                for copied, table in zip(report.tables, tables):
                    ident = sql.Identifier(self.schema, copied.name)
                    columns = sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_TYPES["postgres"][k]))
                        for c, k in copied.columns.items()
                    )
                    cur.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, columns))
                    with cur.copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
                        for chunk in rows_of(copied, table):
                            for row in chunk:
                                copy.write_row(row)
                            if on_rows:
                                on_rows(len(chunk))
                    if copied.primary_key:
                        cur.execute(
                            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                                ident, sql.SQL(", ").join(map(sql.Identifier, copied.primary_key))
                            )
                        )
                for copied in report.tables:
                    for fk in copied.foreign_keys:
                        cur.execute(
                            sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({}) NOT VALID").format(
                                sql.Identifier(self.schema, copied.name),
                                sql.SQL(", ").join(map(sql.Identifier, fk.columns)),
                                sql.Identifier(self.schema, fk.ref_table),
                                sql.SQL(", ").join(map(sql.Identifier, fk.ref_columns)),
                            )
                        )
        except self.psycopg.errors.InsufficientPrivilege as exc:
            raise DataError(f"{redact(self.dest)}: {exc}; connect as a role that may create tables there") from None
        finally:
            self.conn.close()


class _DuckDBWriter:
    def __init__(self, dest: str):
        from text2sql.sql.duckdb_engine import require_duckdb

        self.duckdb = require_duckdb()
        self.path = local_path(dest)
        self.created = not self.path.exists()

    def write(self, report: CopyReport, tables: list[Table], rows_of, *, force: bool, on_rows) -> None:
        import pyarrow as pa

        arrow = {"integer": pa.int64(), "real": pa.float64(), "text": pa.string(), "blob": pa.binary()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self.duckdb.connect(str(self.path))
        ok = False
        try:
            existing = {
                r[0]
                for r in conn.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
            }
            clash = [t.name for t in report.tables if t.name in existing]
            if clash and not force:
                raise OutputExistsError(
                    f"{self.path} already has table(s) {', '.join(clash)}; pass --force to replace them"
                )
            conn.execute("BEGIN")
            for name in reversed([t.name for t in report.tables if t.name in existing]):
                conn.execute(f"DROP TABLE {q(name)}")
            for copied, table in zip(report.tables, tables):
                parts = [f"{q(c)} {_TYPES['duckdb'][k]}" for c, k in copied.columns.items()]
                if copied.primary_key:
                    parts.append(f"PRIMARY KEY ({', '.join(map(q, copied.primary_key))})")
                for fk in copied.foreign_keys:
                    parts.append(
                        f"FOREIGN KEY ({', '.join(map(q, fk.columns))}) REFERENCES {q(fk.ref_table)} "
                        f"({', '.join(map(q, fk.ref_columns))})"
                    )
                conn.execute(f"CREATE TABLE {q(copied.name)} ({', '.join(parts)})")
                names, kinds = list(copied.columns), list(copied.columns.values())
                for chunk in rows_of(copied, table):
                    batch = pa.table(
                        {n: pa.array([r[i] for r in chunk], type=arrow[kinds[i]]) for i, n in enumerate(names)}
                    )
                    conn.register("text2sql_batch", batch)
                    conn.execute(f"INSERT INTO {q(copied.name)} SELECT * FROM text2sql_batch")
                    conn.unregister("text2sql_batch")
                    if on_rows:
                        on_rows(len(chunk))
            conn.execute("COMMIT")
            ok = True
        finally:
            conn.close()
            if not ok and self.created:
                self.path.unlink(missing_ok=True)
                Path(str(self.path) + ".wal").unlink(missing_ok=True)
