"""What a destination engine accepts as names and tables, checked on a copy's plan before anything is
written, so that `text2sql db copy` refuses in one line instead of failing half-way or changing a
name on its own.

    PostgreSQL   names of 1 to 63 bytes (NAMEDATALEN - 1), compared as written (the copy writes them
                 in lower case), at most 1,600 columns a table, no `pg_` table or schema (its own
                 catalogs, searched before any other schema), no column named like a system column
    DuckDB       names compared case-insensitively (ASCII letters only), no table named like its
                 own catalogs (`duckdb_`, `pragma_`, `sqlite_`, `pg_`), which untrusted SQL may not read

Both: no empty name and no NUL in a name. The prefixes are those the guard refuses to read
(`guard.SYSTEM_PREFIXES`): a table copied under such a name could never be queried.
"""

from __future__ import annotations

from collections.abc import Iterable

from text2sql.errors import DataError
from text2sql.sql.catalog import Table
from text2sql.sql.guard import SYSTEM_PREFIXES
from text2sql.sql.targets import DISPLAY_NAMES
from text2sql.sql.transpile import target_identifier

PG_MAX_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL cuts longer names, which the copy never lets happen
PG_MAX_COLUMNS = 1600  # MaxHeapAttributeNumber
PG_MAX_KEY_COLUMNS = 32  # INDEX_MAX_KEYS: columns of one primary key (its index)
_RENAME = "rename it in the SQLite file (ALTER TABLE ... RENAME ...)"
_PG_SYSTEM_COLUMNS = {"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str, dialect: str) -> str:
    """The form under which `dialect` tells names apart: two names with the same fold are one name.
    PostgreSQL compares quoted names exactly (the copy has already lower-cased them); DuckDB ignores
    the case of ASCII letters only ("Ä" and "ä" stay two names there)."""
    if dialect == "duckdb":
        return name.translate(_ASCII_LOWER)
    return name


def q(name: str) -> str:
    """`name` as SQL quotes it: how the messages show a name, empty or with spaces as it is."""
    return '"' + name.replace('"', '""') + '"'


def check_tables(tables: Iterable[Table], dialect: str, source: str) -> None:
    """Raise DataError, naming the table or column and the fix, when a table of the SQLite `source`
    cannot be copied onto `dialect` under its own name: an empty name, a name too long or reserved
    there, two names that become one there, or more columns than a table may have."""
    engine = DISPLAY_NAMES.get(dialect, dialect)
    seen: dict[str, str] = {}
    for table in tables:
        name = target_identifier(table.name, dialect)
        shown = f"{source}: table {q(table.name)}"
        _check_name(name, table.name, shown, dialect)
        if name.lower().startswith(SYSTEM_PREFIXES.get(dialect, ())):
            raise DataError(
                f"{shown}: {engine} keeps names starting with {name.split('_')[0]}_ for its own catalogs, so "
                "queries could not read it; rename the table in the SQLite file (ALTER TABLE ... RENAME TO ...)"
            )
        other = seen.setdefault(fold(name, dialect), table.name)
        if other != table.name:
            raise DataError(
                f"{shown} and table {q(other)} become one name in {engine} ({name!r}); rename one of them in the "
                "SQLite file (ALTER TABLE ... RENAME TO ...)"
            )
        if dialect == "postgres" and len(table.columns) > PG_MAX_COLUMNS:
            raise DataError(
                f"{shown} has {len(table.columns)} columns, more than the {PG_MAX_COLUMNS} a PostgreSQL table can "
                "hold; split it in the SQLite file, or copy into DuckDB"
            )
        columns: dict[str, str] = {}
        for column in table.columns:
            cname = target_identifier(column.name, dialect)
            cshown = f"{source}: column {q(table.name)}.{q(column.name)}"
            _check_name(cname, column.name, cshown, dialect)
            if dialect == "postgres" and cname in _PG_SYSTEM_COLUMNS:
                raise DataError(
                    f"{cshown}: PostgreSQL gives every table a system column {cname}; rename the column in the "
                    "SQLite file (ALTER TABLE ... RENAME COLUMN ...)"
                )
            first = columns.setdefault(fold(cname, dialect), column.name)
            if first != column.name:
                raise DataError(
                    f"{cshown} and column {q(first)} become one name in {engine} ({cname!r}); rename one of them in "
                    "the SQLite file (ALTER TABLE ... RENAME COLUMN ...)"
                )


def check_schema(schema: str, dest: str) -> None:
    """Raise DataError when a PostgreSQL schema cannot be created as `schema` (`?schema=` of `dest`)."""
    shown = f"{dest}: schema {q(schema)}"
    _check_name(schema, schema, shown, "postgres", "choose another ?schema=")
    if schema.lower().startswith("pg_") or schema.lower() == "information_schema":
        raise DataError(f"{shown} is a name PostgreSQL keeps for its own catalogs; choose another ?schema=")


def _check_name(name: str, original: str, shown: str, dialect: str, fix: str = _RENAME) -> None:
    if not original:
        raise DataError(f"{shown}: an empty name, which {DISPLAY_NAMES[dialect]} cannot hold; {fix}")
    if "\x00" in name:
        raise DataError(f"{shown} holds a NUL character, which no name can hold; {fix}")
    size = len(name.encode("utf-8"))
    if dialect == "postgres" and size > PG_MAX_NAME_BYTES:
        raise DataError(
            f"{shown} is {size} bytes long; PostgreSQL names hold at most {PG_MAX_NAME_BYTES} bytes and the copy "
            f"never cuts one: {fix}"
        )
