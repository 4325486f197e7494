"""Where `text2sql db copy` writes: every database of one copy lands, or none does.

    PostgreSQL   one connection and one transaction over every schema of the copy, committed after
                 the last table; any failure rolls all of it back.
    DuckDB       each file is written in a staging folder beside its destination (an existing file is
                 copied there first, so its other tables stay); only when every file is written are
                 they renamed into place. A failure deletes the staging folders and any folder the
                 copy made, and leaves existing files as they were.

A writer is used as: `prepare` every destination (reads only: tables that would be replaced are
refused without `force`), `write` each database, then `commit`, or `abort` on any failure. Engine
errors become one DataError naming the destination, the table and the engine's reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from text2sql.atomic import staging_dir
from text2sql.errors import DataError, OutputExistsError, first_line
from text2sql.sql.catalog import Table
from text2sql.sql.copy_limits import check_schema, fold
from text2sql.sql.copy_plan import CopiedTable, CopyReport, q
from text2sql.sql.targets import local_path, postgres_parts, redact

RowsOf = Callable[[CopiedTable, Table], Iterator[list[tuple]]]
OnRows = Callable[[int], Any]

_TYPES = {
    "postgres": {"integer": "BIGINT", "real": "DOUBLE PRECISION", "text": 'TEXT COLLATE "C"', "blob": "BYTEA"},
    "duckdb": {"integer": "BIGINT", "real": "DOUBLE", "text": "VARCHAR", "blob": "BLOB"},
}
_LOCK_TIMEOUT = "30s"  # waiting for a table another connection holds: then refuse, never hang
_DUCKDB_MAGIC = b"DUCK"  # bytes 8-11 of every DuckDB database file
# The copy's own connection: no extension fetched or loaded (a SQLite file given as DEST would
# otherwise pull in sqlite_scanner), memory held to a bound, and checkpoints only where the copy asks
# for them (`_ROW_GROUP`): an automatic one every 16 MB of log rewrites the unfinished row group each
# time, which for large values costs time and memory that grow with the table.
_DUCKDB_MEMORY = "1GB"  # DuckDB's own memory: it holds the large values of one row group at once while writing them
_DUCKDB_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "threads": 1,
    "memory_limit": _DUCKDB_MEMORY,
    "checkpoint_threshold": "64GB",
}
_ROW_GROUP = 122_880  # rows of one DuckDB row group (its default): written out once it is full


class PostgresWriter:
    """Every database of a copy into one PostgreSQL database, one schema each, in one transaction."""

    def __init__(self, dests: list[str]):
        from text2sql.sql.postgres import require_psycopg

        self.psycopg = require_psycopg()
        parts = [postgres_parts(d) for d in dests]
        if len({url for url, _ in parts}) > 1:
            raise DataError(
                f"{redact(dests[0])}: the databases of one copy go into one PostgreSQL database, a schema each, so "
                "that the copy is one transaction; put {db_id} only in ?schema="
            )
        seen: dict[str, str] = {}
        for dest, (_, schema) in zip(dests, parts):
            check_schema(schema, redact(dest))
            if seen.setdefault(schema, dest) != dest:
                raise DataError(f"{redact(dest)}: two databases of this copy would go into schema {schema!r}")
        self.url, self.first = parts[0][0], dests[0]
        self.conn: Any = None
        self.replaced: dict[str, list[str]] = {}

    def open(self) -> None:
        from text2sql.sql.postgres import CONNECT_TIMEOUT, connection_error

        try:
            self.conn = self.psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT, autocommit=False)
        except self.psycopg.Error as exc:
            raise DataError(connection_error(self.first, exc)) from None
        with self._refused(self.first, "the copy"):
            self.conn.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")

    def prepare(self, dest: str, report: CopyReport, force: bool) -> None:
        """Refuse (before anything is written) tables of `dest` that the copy would replace, unless `force`."""
        schema = postgres_parts(dest)[1]
        with self._refused(dest, "reading its tables"):
            found = self.conn.execute(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = ANY(%s) ORDER BY c.relname",
                (schema, [t.name for t in report.tables]),
            ).fetchall()
        for name, kind in found:
            if kind not in ("r", "p"):  # ordinary or partitioned table
                raise DataError(
                    f"{redact(dest)}: {name} already exists there and is not a table; drop it or copy into another schema"
                )
        existing = [name for name, _ in found]
        if existing and not force:
            raise OutputExistsError(
                f"{redact(dest)} already has table(s) {', '.join(existing)}; pass --force to replace them"
            )
        self.replaced[dest] = existing

    def write(self, dest: str, report: CopyReport, tables: list[Table], rows_of: RowsOf, on_rows: OnRows) -> None:
        """Create `dest`'s schema and tables and load the rows, inside the copy's transaction."""
        sql = self.psycopg.sql
        schema = postgres_parts(dest)[1]
        with self._refused(dest, f"schema {schema}"):
            self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        if self.replaced.get(dest):  # all in one statement: keys among them need no order; others' block it
            names = sql.SQL(", ").join(sql.Identifier(schema, n) for n in self.replaced[dest])
            with self._refused(dest, f"replacing {', '.join(self.replaced[dest])}"):
                self.conn.execute(sql.SQL("DROP TABLE {}").format(names))
        # Every table before any key: an index PostgreSQL names for a key never takes a table's name.
        for copied in report.tables:
            columns = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_TYPES["postgres"][k]))
                for c, k in copied.columns.items()
            )
            with self._refused(dest, f"table {copied.name}"):
                self.conn.execute(sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(schema, copied.name), columns))
        for copied, table in zip(report.tables, tables):
            ident = sql.Identifier(schema, copied.name)
            with self._refused(dest, f"the rows of table {copied.name}"), self.conn.cursor() as cur:
                with cur.copy(sql.SQL("COPY {} FROM STDIN").format(ident)) as copy:
                    for batch in rows_of(copied, table):
                        for row in batch:
                            copy.write_row(row)
                        on_rows(len(batch))
            if copied.primary_key:
                keys = sql.SQL(", ").join(map(sql.Identifier, copied.primary_key))
                with self._refused(dest, f"the primary key of table {copied.name}"):
                    self.conn.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(ident, keys))
        for copied in report.tables:
            for fk in copied.foreign_keys:
                with self._refused(dest, f"a foreign key of table {copied.name}"):
                    self.conn.execute(
                        sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({}) NOT VALID").format(
                            sql.Identifier(schema, copied.name),
                            sql.SQL(", ").join(map(sql.Identifier, fk.columns)),
                            sql.Identifier(schema, fk.ref_table),
                            sql.SQL(", ").join(map(sql.Identifier, fk.ref_columns)),
                        )
                    )

    def commit(self) -> None:
        with self._refused(self.first, "the copy"):
            self.conn.commit()
        self.conn.close()

    def abort(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # a connection already lost has nothing to roll back
                self.conn.rollback()
            self.conn.close()

    @contextlib.contextmanager
    def _refused(self, dest: str, what: str) -> Iterator[None]:
        errors = self.psycopg.errors
        try:
            yield
        except errors.InsufficientPrivilege as exc:
            raise DataError(
                f"{redact(dest)}: {first_line(exc)}; connect as a role that may create tables there"
            ) from None
        except errors.DependentObjectsStillExist as exc:
            raise DataError(
                f"{redact(dest)}: cannot replace {what.removeprefix('replacing ')}: {first_line(exc)}; drop what "
                "depends on them first, or copy into another schema"
            ) from None
        except errors.LockNotAvailable:
            raise DataError(
                f"{redact(dest)}: {what}: another connection holds a lock on it; try again when it is done"
            ) from None
        except self.psycopg.Error as exc:
            raise DataError(
                f"{redact(dest)}: PostgreSQL refused {what} ({first_line(exc)}); nothing was copied: change the "
                "table in the SQLite file, or copy the database into DuckDB"
            ) from None


class DuckDBWriter:
    """Every database of a copy into DuckDB files, staged beside them and renamed into place together."""

    def __init__(self, dests: list[str]):
        from text2sql.sql.duckdb_engine import require_duckdb

        self.duckdb = require_duckdb()
        seen: dict[Path, str] = {}
        for dest in dests:
            if seen.setdefault(local_path(dest).expanduser().resolve(), dest) != dest:
                raise DataError(f"{dest}: two databases of this copy would go into this one file")
        self.replaced: dict[str, list[str]] = {}
        self.staged: dict[str, Path] = {}  # dest -> its staging folder, holding the new file
        self.made: list[Path] = []  # folders the copy created, deepest last

    def open(self) -> None:
        pass

    def prepare(self, dest: str, report: CopyReport, force: bool) -> None:
        """Refuse a DEST that is not a DuckDB file, and (before anything is written) tables of it that
        the copy would replace, unless `force`."""
        path = local_path(dest).expanduser()
        if path.exists() and not path.is_file():
            raise DataError(f"{path}: not a file; give a .duckdb file to write")
        if not path.exists():
            self.replaced[dest] = []
            return
        with path.open("rb") as f:
            if f.read(12)[8:12] != _DUCKDB_MAGIC:
                raise DataError(
                    f"{path}: exists and is not a DuckDB database; give a new .duckdb path, or a DuckDB file to add "
                    "the tables to"
                )
        if Path(f"{path}.wal").exists():
            raise DataError(
                f"{path}: {path.name}.wal lies beside it, so it is open elsewhere or was not closed; close it (or "
                "open and close it once in DuckDB) and copy again"
            )
        with self._refused(path, "reading its tables"):
            conn = self.duckdb.connect(str(path), read_only=True, config=dict(_DUCKDB_CONFIG))
            try:
                found = conn.execute(
                    "SELECT table_name, 'table' FROM duckdb_tables() WHERE schema_name = 'main' "
                    "AND database_name = current_database() UNION ALL "
                    "SELECT view_name, 'view' FROM duckdb_views() WHERE schema_name = 'main' AND NOT internal "
                    "AND database_name = current_database()"
                ).fetchall()
            finally:
                conn.close()
        existing = {fold(name, "duckdb"): (name, kind) for name, kind in found}
        clash = [existing[fold(t.name, "duckdb")] for t in report.tables if fold(t.name, "duckdb") in existing]
        views = [name for name, kind in clash if kind != "table"]
        if views:
            raise DataError(
                f"{path}: {', '.join(views)} already exist(s) there as view(s); drop them or copy elsewhere"
            )
        if clash and not force:
            names = ", ".join(name for name, _ in clash)
            raise OutputExistsError(f"{path} already has table(s) {names}; pass --force to replace them")
        self.replaced[dest] = [name for name, _ in clash]

    def write(self, dest: str, report: CopyReport, tables: list[Table], rows_of: RowsOf, on_rows: OnRows) -> None:
        """Write the new file for `dest` in a staging folder beside it (from a copy of the old one)."""
        import pyarrow as pa

        arrow = {"integer": pa.int64(), "real": pa.float64(), "text": pa.string(), "blob": pa.binary()}
        path = local_path(dest).expanduser()
        self._make_parents(path.parent)
        staging = self.staged[dest] = staging_dir(path)
        new = staging / path.name
        if path.exists():
            shutil.copyfile(path, new)
            shutil.copymode(path, new)
        with self._refused(path, "the copy"):
            conn = self.duckdb.connect(str(new), config=dict(_DUCKDB_CONFIG))
        try:
            # Children first: DuckDB refuses to drop a table another one's key points at.
            for name in reversed(self.replaced.get(dest, [])):
                with self._refused(path, f"replacing table {name}"):
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
                with self._refused(path, f"table {copied.name}"):
                    conn.execute(f"CREATE TABLE {q(copied.name)} ({', '.join(parts)})")
                names, kinds = list(copied.columns), list(copied.columns.values())
                pending = 0  # rows since the last checkpoint
                for batch in rows_of(copied, table):
                    data = pa.table(
                        {n: pa.array([r[i] for r in batch], type=arrow[kinds[i]]) for i, n in enumerate(names)}
                    )
                    # A relation of the batch, inserted by the table's quoted name: no name is registered
                    # that a copied table could share.
                    with self._refused(path, f"the rows of table {copied.name}"):
                        conn.from_arrow(data).insert_into(q(copied.name))
                    del data
                    on_rows(len(batch))
                    pending += len(batch)
                    if pending >= _ROW_GROUP:
                        with self._refused(path, f"the rows of table {copied.name}"):
                            conn.execute("CHECKPOINT")
                        pending = 0
                with self._refused(path, f"the rows of table {copied.name}"):
                    conn.execute("CHECKPOINT")
        finally:
            conn.close()
        if Path(f"{new}.wal").exists():  # close checkpoints; a WAL left over would be lost with the staging folder
            raise DataError(f"{path}: DuckDB did not finish writing the file; nothing was copied")

    def commit(self) -> None:
        """Rename every new file into place; should one rename fail, put back what was renamed."""
        done: list[tuple[Path, Path, Path | None]] = []  # (new, dest, the old file moved aside)
        try:
            for dest, staging in self.staged.items():
                path = local_path(dest).expanduser()
                old = staging / f"{path.name}.old" if path.exists() else None
                if old is not None:
                    os.replace(path, old)
                try:
                    os.replace(staging / path.name, path)
                except OSError:
                    if old is not None:
                        os.replace(old, path)
                    raise
                done.append((staging / path.name, path, old))
        except OSError:
            for new, path, old in reversed(done):
                os.replace(path, new)
                if old is not None:
                    os.replace(old, path)
            self.abort()
            raise
        for staging in self.staged.values():
            shutil.rmtree(staging, ignore_errors=True)

    def abort(self) -> None:
        for staging in self.staged.values():
            shutil.rmtree(staging, ignore_errors=True)
        for folder in reversed(self.made):
            with contextlib.suppress(OSError):  # not empty: something else was put there meanwhile
                folder.rmdir()

    def _make_parents(self, folder: Path) -> None:
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir()
            self.made.append(made)

    @contextlib.contextmanager
    def _refused(self, path: Path, what: str) -> Iterator[None]:
        try:
            yield
        except self.duckdb.Error as exc:
            if isinstance(exc, self.duckdb.OutOfMemoryException) or "failed to pin block" in str(exc):
                raise DataError(
                    f"{path}: {what}: DuckDB needs more than {_DUCKDB_MEMORY} to write it (it holds the large values "
                    "of a row group, up to 122,880 rows, at once); copy this database into PostgreSQL instead"
                ) from None
            raise DataError(
                f"{path}: DuckDB refused {what} ({first_line(exc)}); nothing was copied: change the table in the "
                "SQLite file, or copy the database into PostgreSQL"
            ) from None
