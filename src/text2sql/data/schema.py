"""Database schemas as prompt text.

A `Schema` (`text2sql.sql.catalog`) is read from the database the SQL will actually run on (a
SQLite or DuckDB file, a PostgreSQL URL: `text2sql.sql.execution.open_database`) or, when the
database is not available, from a Spider/BIRD `tables.json` entry. `render_schema` turns it into the
text a prompt shows: CREATE TABLE statements (`fmt="sql"`) or one line per table
(`fmt="compact"`, shorter prompts, faster training), identifiers quoted as the database's dialect
requires. Output is deterministic (tables and columns in definition order, sample rows in a fixed
order) so the same database always yields the same prompt, byte for byte.

A user who may read only some tables and columns (`text2sql.sql.permissions`) is shown only those:

    schema_text("shop.duckdb", "sql", sample_rows=3, permissions=Permissions.from_cli(["shop:orders"]).get("shop"))

Hidden tables and columns are left out of every rendering, with their sample values, the foreign
keys that lead to them and a primary key that holds one (`read_schema`, `cached_schema` and
`schema_text` take `permissions=`); value hints are read only from the columns shown.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlglot.dialects.dialect import Dialect

from text2sql.data.descriptions import read_descriptions, with_descriptions
from text2sql.errors import ConfigError, DataError
from text2sql.sql.catalog import Column, ForeignKey, Schema, Table
from text2sql.sql.execution import open_database
from text2sql.sql.permissions import DatabasePermissions
from text2sql.sql.targets import DISPLAY_NAMES, dialect_of, is_url, local_path, redact

__all__ = [
    "SCHEMA_FORMATS",
    "Column",
    "ForeignKey",
    "Schema",
    "Table",
    "quote_identifier",
    "read_schema",
    "render_schema",
    "schema_from_tables_json",
    "schema_text",
]

SCHEMA_FORMATS = ("sql", "compact", "tables")

# Sample values longer than this are cut: one long text cell can otherwise dominate a prompt.
MAX_SAMPLE_CHARS = 80

_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@functools.lru_cache(maxsize=8)
def _keywords(dialect: str) -> frozenset[str]:
    """Words a dialect reserves. sqlglot lists multi-word keywords ("ORDER BY", "PRIMARY KEY"); each
    word must be quoted on its own (a column named `order` or `primary` breaks a naive CREATE TABLE)."""
    tokenizer = Dialect.get_or_raise(dialect).tokenizer_class
    return frozenset(
        word for keyword in tokenizer.KEYWORDS for word in keyword.upper().split() if _PLAIN_IDENTIFIER.match(word)
    )


def quote_identifier(name: str, dialect: str = "sqlite") -> str:
    """`name` as written when it is a plain, non-keyword identifier, else quoted as `dialect` quotes
    (double quotes, doubled inside). PostgreSQL folds unquoted names to lower case, so a name with
    capitals is quoted there too."""
    plain = _PLAIN_IDENTIFIER.match(name) and name.upper() not in _keywords(dialect)
    if plain and not (dialect == "postgres" and name != name.lower()):
        return name
    return '"' + name.replace('"', '""') + '"'


# ---------------------------------------------------------------------------------------- reading


def read_schema(target: str | Path, permissions: DatabasePermissions | None = None) -> Schema:
    """What the database at `target` holds: tables, columns, primary and foreign keys, and the
    column descriptions of a BIRD-style `database_description/` folder beside a database file.
    `permissions`: only the tables and columns they allow (a ConfigError names those the database
    does not have)."""
    with _opened(target, permissions) as db:
        try:
            schema = db.catalog()
        except Exception as exc:
            raise _unreadable(target, exc) from None
        access = db.access
    descriptions = read_descriptions(target)
    schema = with_descriptions(schema, descriptions) if descriptions else schema
    return access.filter(schema) if access is not None else schema


def _opened(target: str | Path, permissions: DatabasePermissions | None = None) -> Any:
    """The open database, or a DataError naming the target and the fix."""
    shown = redact(str(target))
    if not is_url(str(target)) and not local_path(target).is_file():
        raise DataError(f"{shown}: database file not found; check the path, data.db or data.db_dir")
    try:
        return open_database(target, permissions=permissions)
    except ConnectionError as exc:
        raise DataError(str(exc)) from None
    except FileNotFoundError:
        raise DataError(f"{shown}: database file not found; check the path, data.db or data.db_dir") from None
    except Exception as exc:
        raise _unreadable(target, exc) from None


def _unreadable(target: str | Path, exc: Exception) -> Exception:
    """A DataError for an engine's own error (a file that is no database, a catalog it cannot
    read); any other exception is a bug and is returned as it is."""
    if type(exc).__module__.split(".")[0] not in ("sqlite3", "duckdb", "_duckdb", "psycopg"):
        return exc
    name = DISPLAY_NAMES.get(dialect_of(str(target)), "SQL")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return DataError(f"{redact(str(target))}: not a readable {name} database ({reason}); check or re-download it")


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
    # Some Spider entries list sqlite_sequence; SQLite's internal tables are left out, as in SQLiteDatabase.catalog.
    kept = [t for t in tables if not _is_internal(t.name)]
    for table in kept:
        table.foreign_keys = [fk for fk in table.foreign_keys if not _is_internal(fk.ref_table)]
    return Schema(kept, db_id=db_id)


def _is_internal(table_name: str) -> bool:
    return table_name.lower().startswith("sqlite_")


# ---------------------------------------------------------------------------------------- rendering


def render_schema(schema: Schema, fmt: str = "sql", sample_rows: int = 0, db_path: str | Path | None = None) -> str:
    """Schema text for a prompt, identifiers quoted as `schema.dialect` requires.

    `fmt="sql"`: CREATE TABLE statements with types, PRIMARY KEY and FOREIGN KEY clauses.
    `fmt="compact"`: one line per table, e.g. `employee(id PK, name, dept_id -> department.id)`.
    `fmt="tables"`: the table names only, on one line; for a model trained on a fixed set of
    databases (it learns the columns), where every prompt token is training time.
    `sample_rows=N` appends the first N rows of each table as a comment; rows come from `db_path`
    (default: the database the schema was read from), so a schema from tables.json alone has none.
    """
    if fmt not in SCHEMA_FORMATS:
        raise ConfigError(
            f"schema format {fmt!r} is unknown; set data.schema_format to one of: {', '.join(SCHEMA_FORMATS)}"
        )
    db_path = db_path or schema.db_path
    samples: dict[str, list[tuple]] = {}
    if sample_rows > 0 and db_path is not None:
        samples = _projected(_samples(_target(db_path), _version(db_path), sample_rows), schema)
    q = functools.partial(quote_identifier, dialect=schema.dialect)
    if fmt == "tables":
        text = "tables: " + ", ".join(q(t.name) for t in schema.tables)
        notes = [f"-- {q(t.name)}.{q(c.name)}: {_note(c)}" for t in schema.tables for c in t.columns if _note(c)]
        return "\n".join([text, *notes])
    render = _render_sql_table if fmt == "sql" else _render_compact_table
    return "\n".join(render(table, samples.get(table.name, []), q) for table in schema.tables)


def _projected(samples: dict[str, tuple[list[str], list[tuple]]], schema: Schema) -> dict[str, list[tuple]]:
    """Sample rows cut to the columns `schema` keeps of each table (all of them unless pruned)."""
    by_name = {name.lower(): found for name, found in samples.items()}
    out = {}
    for table in schema.tables:
        columns, rows = by_name.get(table.name.lower(), ([], []))
        where = {n.lower(): i for i, n in enumerate(columns)}
        picks = [where.get(c.name.lower()) for c in table.columns]
        if rows and all(i is not None for i in picks):
            out[table.name] = [tuple(row[i] for i in picks if i is not None) for row in rows]
    return out


def _note(column: Column) -> str:
    """What a prompt says beside a column: its description, and the stored values the question names."""
    parts = []
    if column.description:
        parts.append(column.description.replace("*/", "* /"))
    if column.values:
        parts.append("values: " + ", ".join(_value_literal(v) for v in column.values))
    return "; ".join(parts)


def _render_sql_table(table: Table, rows: list[tuple], q: Callable[[str], str]) -> str:
    single_pk = table.primary_key[0] if len(table.primary_key) == 1 else None
    lines: list[tuple[str, str]] = []  # (definition, note shown as a -- comment after it)
    for col in table.columns:
        parts = [q(col.name)] + ([col.type] if col.type else [])
        if col.name == single_pk:
            parts.append("PRIMARY KEY")
        lines.append((" ".join(parts), _note(col)))
    if len(table.primary_key) > 1:
        lines.append((f"PRIMARY KEY ({_names(table.primary_key, q)})", ""))
    for fk in table.foreign_keys:
        ref = q(fk.ref_table) + (f" ({_names(fk.ref_columns, q)})" if fk.ref_columns else "")
        lines.append((f"FOREIGN KEY ({_names(fk.columns, q)}) REFERENCES {ref}", ""))
    definitions = []
    for i, (line, note) in enumerate(lines):
        comma = "," if i < len(lines) - 1 else ""
        definitions.append(f"  {line}{comma}" + (f" -- {_one_line(note)}" if note else ""))
    text = f"CREATE TABLE {q(table.name)} (\n" + "\n".join(definitions) + "\n);"
    if rows:
        # '*/' inside a value would end the comment early.
        body = "\n".join(_row_literal(r).replace("*/", "* /") for r in rows)
        text += f"\n/* {len(rows)} example rows from {q(table.name)}:\n{body}\n*/"
    return text


def _render_compact_table(table: Table, rows: list[tuple], q: Callable[[str], str]) -> str:
    refs: dict[str, list[str]] = {}
    for fk in table.foreign_keys:
        for i, name in enumerate(fk.columns):
            target = q(fk.ref_table)
            if i < len(fk.ref_columns):
                target += "." + q(fk.ref_columns[i])
            refs.setdefault(name, []).append(target)
    parts = []
    for col in table.columns:
        text = q(col.name)
        if col.name in table.primary_key:
            text += " PK"
        for target in refs.get(col.name, []):
            text += f" -> {target}"
        parts.append(text)
    line = f"{q(table.name)}({', '.join(parts)})"
    notes = [f"  -- {q(c.name)}: {_one_line(_note(c))}" for c in table.columns if _note(c)]
    return "\n".join([line] + notes + [f"  -- {_row_literal(r)}" for r in rows])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _names(names: tuple[str, ...] | list[str], q: Callable[[str], str]) -> str:
    return ", ".join(q(n) for n in names)


def _row_literal(row: tuple) -> str:
    return "(" + ", ".join(_value_literal(v) for v in row) + ")"


def _value_literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<blob {len(bytes(value))} bytes>"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)  # dates, Decimals, UUIDs as their SQL literal text
    if len(text) > MAX_SAMPLE_CHARS:
        text = text[:MAX_SAMPLE_CHARS] + "..."
    # One row per line: show line breaks inside values as \n.
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return "'" + text.replace("'", "''") + "'"


def schema_text(
    db_path: str | Path, fmt: str = "sql", sample_rows: int = 0, permissions: DatabasePermissions | None = None
) -> str:
    """`render_schema` of the database at `db_path` (a file or URL), cached per (database, file
    modification time, fmt, sample_rows, permissions): readers call this once per row, the cache
    makes it once per database. A server's schema is read once per process. `permissions`: only
    the tables and columns they allow are shown."""
    if is_url(str(db_path)) and dialect_of(str(db_path)) == "postgres":
        return _schema_text_cached(str(db_path), 0, fmt, sample_rows, permissions)
    path = local_path(db_path).resolve()
    if not path.is_file():
        raise DataError(f"{db_path}: database file not found; check the path, data.db or data.db_dir")
    target = str(path) if not is_url(str(db_path)) else str(db_path)
    return _schema_text_cached(target, path.stat().st_mtime_ns, fmt, sample_rows, permissions)


@functools.lru_cache(maxsize=512)
def _schema_text_cached(
    target: str, mtime_ns: int, fmt: str, sample_rows: int, permissions: DatabasePermissions | None = None
) -> str:
    return render_schema(_shown(target, mtime_ns, permissions), fmt=fmt, sample_rows=sample_rows)


def cached_schema(db_path: str | Path, permissions: DatabasePermissions | None = None) -> Schema:
    """`read_schema`, cached like `schema_text`. The result is shared: copy before changing it."""
    return _shown(_target(db_path), _version(db_path), permissions)


def _shown(target: str, mtime_ns: int, permissions: DatabasePermissions | None) -> Schema:
    return _schema_cached(target, mtime_ns) if permissions is None else _restricted(target, mtime_ns, permissions)


@functools.lru_cache(maxsize=64)
def _restricted(target: str, mtime_ns: int, permissions: DatabasePermissions) -> Schema:
    """The cached schema cut to what `permissions` allow, bound on the database itself (the names
    are checked against everything it holds, SQLite's views included)."""
    with _opened(target, permissions) as db:
        access = db.access
    assert access is not None  # open_database restricted it
    return access.filter(_schema_cached(target, mtime_ns))


def _target(db_path: str | Path) -> str:
    return str(db_path) if is_url(str(db_path)) else str(local_path(db_path).resolve())


def _version(db_path: str | Path) -> int:
    """A file's modification time (an edited database is read again); 0 for a server."""
    if is_url(str(db_path)) and dialect_of(str(db_path)) == "postgres":
        return 0
    try:
        return local_path(db_path).stat().st_mtime_ns
    except OSError:
        raise DataError(f"{db_path}: database file not found; check the path, data.db or data.db_dir") from None


@functools.lru_cache(maxsize=512)
def _schema_cached(target: str, mtime_ns: int) -> Schema:
    del mtime_ns  # part of the cache key only
    return read_schema(target)


@functools.lru_cache(maxsize=64)
def _samples(target: str, mtime_ns: int, limit: int) -> dict[str, tuple[list[str], list[tuple]]]:
    """The first `limit` rows of every table, with the column names they are in."""
    schema = _schema_cached(target, mtime_ns)
    with _opened(target) as db:
        rows = db.sample_rows([t.name for t in schema.tables], limit)
    return {t.name: ([c.name for c in t.columns], rows.get(t.name, [])) for t in schema.tables}
