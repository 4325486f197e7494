"""Database schemas as prompt text.

A `Schema` is built from a SQLite file (what the SQL will actually run on) or, when the database is
not available, from a Spider/BIRD `tables.json` entry. `render_schema` turns it into the text a
prompt shows: CREATE TABLE statements (`fmt="sql"`) or one line per table (`fmt="compact"`, shorter
prompts, faster training). Output is deterministic (tables and columns in definition order, sample
rows in rowid order) so the same database always yields the same prompt, byte for byte.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot.dialects.sqlite import SQLite

from text2sql.errors import ConfigError, DataError

SCHEMA_FORMATS = ("sql", "compact", "tables")

# Sample values longer than this are cut: one long text cell can otherwise dominate a prompt.
MAX_SAMPLE_CHARS = 80

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# sqlglot lists multi-word keywords ("ORDER BY", "PRIMARY KEY"); each word must be quoted on its own
# (a column named `order` or `primary` breaks a naive CREATE TABLE).
_KEYWORDS = frozenset(
    word for keyword in SQLite.Tokenizer.KEYWORDS for word in keyword.upper().split() if _PLAIN_IDENTIFIER.match(word)
)


def quote_identifier(name: str) -> str:
    """`name` as written when it is a plain, non-keyword identifier, else double-quoted (quotes doubled)."""
    if _PLAIN_IDENTIFIER.match(name) and name.upper() not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""


@dataclass(frozen=True)
class ForeignKey:
    """`columns` of the owning table reference `ref_columns` of `ref_table` (empty: its primary key)."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...] = ()


@dataclass
class Table:
    name: str
    columns: list[Column] = field(default_factory=list)
    primary_key: list[str] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)


@dataclass
class Schema:
    tables: list[Table]
    db_id: str | None = None
    # The SQLite file it was read from; sample rows can only come from there.
    db_path: str | None = None

    def table(self, name: str) -> Table | None:
        lowered = name.lower()  # SQLite table names are case-insensitive
        return next((t for t in self.tables if t.name.lower() == lowered), None)


# ---------------------------------------------------------------------------------------- reading


def connect_readonly(db_path: str | Path) -> sqlite3.Connection:
    """A read-only connection: building prompts must never modify (or create) a database."""
    path = Path(db_path).resolve()
    if not path.is_file():
        raise DataError(f"{db_path}: database file not found; check the path or data.db_dir")
    # as_uri() percent-encodes '?', '#' and spaces, which would otherwise break the URI.
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)


def read_sqlite_schema(db_path: str | Path) -> Schema:
    """Tables (in sqlite_master order), columns, primary and foreign keys of a SQLite database."""
    path = Path(db_path)
    conn = connect_readonly(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 7) != 'sqlite_' ORDER BY rowid"
            )
        ]
        tables = []
        for name in names:
            info = conn.execute("SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid", (name,)).fetchall()
            table = Table(name, [Column(col, ctype or "") for col, ctype, _ in info])
            table.primary_key = [col for col, _, pk in sorted((r for r in info if r[2]), key=lambda r: r[2])]
            fk_rows = conn.execute(
                'SELECT id, seq, "table", "from", "to" FROM pragma_foreign_key_list(?) ORDER BY id, seq', (name,)
            ).fetchall()
            groups: dict[int, list[tuple]] = {}
            for row in fk_rows:
                groups.setdefault(row[0], []).append(row)
            for rows in groups.values():
                to = tuple(r[4] for r in rows if r[4] is not None)
                table.foreign_keys.append(ForeignKey(tuple(r[3] for r in rows), rows[0][2], to))
            tables.append(table)
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{db_path}: not a readable SQLite database ({exc}); check or re-download the file") from None
    finally:
        conn.close()
    schema = Schema(tables, db_id=path.stem, db_path=str(path))
    _resolve_implicit_references(schema)
    return schema


def _resolve_implicit_references(schema: Schema) -> None:
    # `REFERENCES parent` without columns means the parent's primary key; spell it out for the prompt.
    for table in schema.tables:
        for i, fk in enumerate(table.foreign_keys):
            parent = schema.table(fk.ref_table)
            if not fk.ref_columns and parent is not None and len(parent.primary_key) == len(fk.columns):
                table.foreign_keys[i] = ForeignKey(fk.columns, fk.ref_table, tuple(parent.primary_key))


def schema_from_tables_json(entry: Mapping[str, Any]) -> Schema:
    """A schema from one Spider/BIRD `tables.json` entry (original, not normalized, names)."""
    db_id = entry.get("db_id")
    try:
        table_names = list(entry["table_names_original"])
        columns = entry["column_names_original"]
        types = entry.get("column_types") or [""] * len(columns)
        tables = [Table(name) for name in table_names]
        owner: dict[int, Table] = {}
        for index, (table_index, name) in enumerate(columns):
            if table_index < 0:  # column 0 is Spider's '*'
                continue
            table = tables[table_index]
            ctype = str(types[index]).upper()
            # Spider's catch-all type "others" says nothing; a bare column reads better in a prompt.
            table.columns.append(Column(name, "" if ctype == "OTHERS" else ctype))
            owner[index] = table
        for key in entry.get("primary_keys", []):
            # Composite keys are lists of column indexes, single keys a bare index.
            for index in key if isinstance(key, list) else [key]:
                owner[index].primary_key.append(columns[index][1])
        seen = set()
        for col, ref in entry.get("foreign_keys", []):
            if (col, ref) in seen:  # Spider repeats some pairs
                continue
            seen.add((col, ref))
            owner[col].foreign_keys.append(ForeignKey((columns[col][1],), owner[ref].name, (columns[ref][1],)))
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DataError(
            f"tables.json entry {db_id!r}: malformed ({type(exc).__name__}: {exc}); "
            "use Spider's tables.json format (table_names_original, column_names_original, ...)"
        ) from None
    # Some Spider entries list sqlite_sequence; SQLite's internal tables are left out, as in read_sqlite_schema.
    kept = [t for t in tables if not _is_internal(t.name)]
    for table in kept:
        table.foreign_keys = [fk for fk in table.foreign_keys if not _is_internal(fk.ref_table)]
    return Schema(kept, db_id=db_id)


def _is_internal(table_name: str) -> bool:
    return table_name.lower().startswith("sqlite_")


# ---------------------------------------------------------------------------------------- rendering


def render_schema(schema: Schema, fmt: str = "sql", sample_rows: int = 0, db_path: str | Path | None = None) -> str:
    """Schema text for a prompt.

    `fmt="sql"`: CREATE TABLE statements with types, PRIMARY KEY and FOREIGN KEY clauses.
    `fmt="compact"`: one line per table, e.g. `employee(id PK, name, dept_id -> department.id)`.
    `fmt="tables"`: the table names only, on one line; for a model trained on a fixed set of
    databases (it learns the columns), where every prompt token is training time.
    `sample_rows=N` appends the first N rows of each table as a comment; rows come from `db_path`
    (default: the file the schema was read from), so a schema from tables.json alone has none.
    """
    if fmt not in SCHEMA_FORMATS:
        raise ConfigError(
            f"schema format {fmt!r} is unknown; set data.schema_format to one of: {', '.join(SCHEMA_FORMATS)}"
        )
    db_path = db_path or schema.db_path
    samples: dict[str, list[tuple]] = {}
    if sample_rows > 0 and db_path is not None:
        samples = _sample_rows(db_path, [t.name for t in schema.tables], sample_rows)
    if fmt == "tables":
        return "tables: " + ", ".join(quote_identifier(t.name) for t in schema.tables)
    render = _render_sql_table if fmt == "sql" else _render_compact_table
    return "\n".join(render(table, samples.get(table.name, [])) for table in schema.tables)


def _render_sql_table(table: Table, rows: list[tuple]) -> str:
    single_pk = table.primary_key[0] if len(table.primary_key) == 1 else None
    lines = []
    for col in table.columns:
        parts = [quote_identifier(col.name)] + ([col.type] if col.type else [])
        if col.name == single_pk:
            parts.append("PRIMARY KEY")
        lines.append(" ".join(parts))
    if len(table.primary_key) > 1:
        lines.append(f"PRIMARY KEY ({_names(table.primary_key)})")
    for fk in table.foreign_keys:
        ref = quote_identifier(fk.ref_table) + (f" ({_names(fk.ref_columns)})" if fk.ref_columns else "")
        lines.append(f"FOREIGN KEY ({_names(fk.columns)}) REFERENCES {ref}")
    text = f"CREATE TABLE {quote_identifier(table.name)} (\n" + ",\n".join("  " + line for line in lines) + "\n);"
    if rows:
        # '*/' inside a value would end the comment early.
        body = "\n".join(_row_literal(r).replace("*/", "* /") for r in rows)
        text += f"\n/* {len(rows)} example rows from {quote_identifier(table.name)}:\n{body}\n*/"
    return text


def _render_compact_table(table: Table, rows: list[tuple]) -> str:
    refs: dict[str, list[str]] = {}
    for fk in table.foreign_keys:
        for i, name in enumerate(fk.columns):
            target = quote_identifier(fk.ref_table)
            if i < len(fk.ref_columns):
                target += "." + quote_identifier(fk.ref_columns[i])
            refs.setdefault(name, []).append(target)
    parts = []
    for col in table.columns:
        text = quote_identifier(col.name)
        if col.name in table.primary_key:
            text += " PK"
        for target in refs.get(col.name, []):
            text += f" -> {target}"
        parts.append(text)
    line = f"{quote_identifier(table.name)}({', '.join(parts)})"
    return "\n".join([line] + [f"  -- {_row_literal(r)}" for r in rows])


def _names(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(quote_identifier(n) for n in names)


def _row_literal(row: tuple) -> str:
    return "(" + ", ".join(_value_literal(v) for v in row) + ")"


def _value_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"<blob {len(value)} bytes>"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if len(text) > MAX_SAMPLE_CHARS:
        text = text[:MAX_SAMPLE_CHARS] + "..."
    # One row per line: show line breaks inside values as \n.
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return "'" + text.replace("'", "''") + "'"


def _sample_rows(db_path: str | Path, tables: list[str], limit: int) -> dict[str, list[tuple]]:
    conn = connect_readonly(db_path)
    try:
        out = {}
        for name in tables:
            quoted = quote_identifier(name)
            try:
                # rowid order is insertion order for ordinary tables: the same rows every time.
                rows = conn.execute(f"SELECT * FROM {quoted} ORDER BY rowid LIMIT ?", (limit,)).fetchall()
            except sqlite3.OperationalError:
                # WITHOUT ROWID tables (and views) have no rowid; order by every column instead.
                width = len(conn.execute(f"SELECT * FROM {quoted} LIMIT 0").description)
                order = ", ".join(str(i + 1) for i in range(width))
                rows = conn.execute(f"SELECT * FROM {quoted} ORDER BY {order} LIMIT ?", (limit,)).fetchall()
            out[name] = rows
        return out
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{db_path}: cannot read sample rows ({exc}); check or re-download the database") from None
    finally:
        conn.close()


def schema_text(db_path: str | Path, fmt: str = "sql", sample_rows: int = 0) -> str:
    """`render_schema` of a SQLite database, cached per (file, modification time, fmt, sample_rows).

    Readers call this once per row; the cache makes it once per database.
    """
    path = Path(db_path).resolve()
    if not path.is_file():
        raise DataError(f"{db_path}: database file not found; check the path or data.db_dir")
    return _schema_text_cached(str(path), path.stat().st_mtime_ns, fmt, sample_rows)


@functools.lru_cache(maxsize=512)
def _schema_text_cached(path: str, mtime_ns: int, fmt: str, sample_rows: int) -> str:
    del mtime_ns  # part of the cache key only: an edited database is read again
    return render_schema(read_sqlite_schema(path), fmt=fmt, sample_rows=sample_rows)
