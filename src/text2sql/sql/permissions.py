"""Which tables of a database, and which of their columns, a user's questions may read.

A database owner lists them per database id, on the command line or in the config:

    --allow shop:customers,orders(id,amount)            # the CLI form: ID:table,table(column,column)
    serving:
      allow:
        shop: [customers, orders.id, orders.amount]     # or "orders(id, amount)"

A table listed alone shows all its columns; a table listed with columns shows only those. A view is
a table here: it is read only when listed, whatever it reads itself. Names are matched as the
database matches them (case-insensitively on SQLite and DuckDB, and on PostgreSQL unless two names
differ only in case); a name with a comma, dot, bracket or space is written in double quotes. A
database without an entry is not restricted.

`Permissions` holds the lists of every database, `DatabasePermissions` one database's. Opening a
database with them (`execution.open_database(target, permissions=...)`) checks every name against
the database's catalog (a ConfigError names the unknown ones) and binds them into an `Access`: the
exact tables and columns that may be read. Through it:

- the schema a prompt shows has only those tables and columns (`Access.filter`, used by
  `data.schema.schema_text(..., permissions=...)`);
- SQLite's authorizer refuses every read of anything else while the statement compiles (`sqlite`);
- on PostgreSQL and DuckDB the guard resolves every column of a query to its table with sqlglot's
  `qualify` and the catalog, and refuses what it cannot resolve (`guard.check_query`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from text2sql.errors import ConfigError
from text2sql.sql.catalog import Schema, Table

__all__ = ["Access", "DatabasePermissions", "Permissions", "hidden_message"]

# Dialects whose table and column names are case-insensitive, quoted or not.
_CASE_INSENSITIVE = ("sqlite", "duckdb")
_FORM = "write ID:table,table(column,column) (serving.allow: {ID: [table, table.column, ...]})"
# Longest list of names one error line shows.
_SHOWN = 10

Columns = tuple[str, ...] | None  # None: every column of the table


@dataclass(frozen=True)
class DatabasePermissions:
    """The tables of one database a user may read, as the owner wrote them: (table, columns) pairs,
    columns None for all of them. Hashable, so that cached schema text can be keyed on it."""

    tables: tuple[tuple[str, Columns], ...]

    @classmethod
    def parse(cls, items: Iterable[str], where: str) -> DatabasePermissions:
        """The permissions that `items` (each `table`, `table.column`, `table(column, ...)` or several
        of them joined by commas) give. Raises a one-line ConfigError, naming `where`, for a list
        that does not parse, names no table, or lists a table both whole and by its columns."""
        merged: dict[str, Columns] = {}
        order: list[str] = []
        for text in items:
            for table, columns in _parse_items(str(text), where):
                if table not in merged:
                    order.append(table)
                    merged[table] = columns
                    continue
                before = merged[table]
                if (before is None) != (columns is None):
                    raise ConfigError(
                        f"{where}: {table} is listed both whole and by its columns; list it once, either way"
                    )
                if before is not None and columns is not None:
                    merged[table] = before + tuple(c for c in columns if c not in before)
        if not order:
            raise ConfigError(f"{where}: names no table; {_FORM}")
        return cls(tuple((t, merged[t]) for t in order))

    def __str__(self) -> str:
        return ",".join(t if c is None else f"{t}({','.join(c)})" for t, c in self.tables)

    def bind(self, relations: Schema, *, schema_name: str | None = None, views: Iterable[str] = ()) -> Access:
        """The exact tables and columns of `relations` (the database's catalog: its tables and views)
        these permissions allow. `schema_name`: the one schema a query may name before a table (the
        PostgreSQL schema, DuckDB's `main`); `views`: which relations are views (SQLite's authorizer
        trusts what a listed view reads). Raises a one-line ConfigError naming every unknown table
        and column."""
        dialect = relations.dialect
        by_name = {t.name: t for t in relations.tables}
        allowed: dict[str, frozenset[str] | None] = {}
        unknown: list[str] = []
        for written, columns in self.tables:
            name = _match(written, list(by_name), dialect)
            if name is None:
                unknown.append(written)
                continue
            if columns is None:
                allowed[name] = None
                continue
            table_columns = [c.name for c in by_name[name].columns]
            found = set()
            for column in columns:
                match = _match(column, table_columns, dialect)
                if match is None:
                    unknown.append(f"{written}.{column}")
                else:
                    found.add(match)
            before = allowed.get(name, frozenset())
            allowed[name] = None if before is None else before | found
        if unknown:
            where = relations.db_id or "the database"
            tables = ", ".join(t.name for t in relations.tables[:_SHOWN])
            more = f" and {len(relations.tables) - _SHOWN} more" if len(relations.tables) > _SHOWN else ""
            raise ConfigError(
                f"permissions for {where} name what it does not hold: {_list(unknown)}; list only its tables "
                f"({tables}{more}) and their columns"
            )
        return Access(
            dialect=dialect,
            relations={t.name: tuple(c.name for c in t.columns) for t in relations.tables},
            allowed=allowed,
            schema_name=schema_name,
            views=frozenset(v for v in views if v in allowed),
        )


@dataclass(frozen=True)
class Permissions:
    """The permissions of every database that has some, by database id (see the module docstring)."""

    databases: tuple[tuple[str, DatabasePermissions], ...] = ()

    @classmethod
    def from_cli(cls, values: Iterable[str]) -> Permissions:
        """From `--allow ID:table,table(column,column)` values; one database may be given several
        times (the tables add up). Raises a one-line ConfigError for a value that does not parse."""
        items: dict[str, list[str]] = {}
        for value in values:
            db_id, sep, rest = str(value).partition(":")
            if not sep or not db_id.strip():
                raise ConfigError(f"--allow {value!r}: no database id before ':'; {_FORM}")
            items.setdefault(db_id.strip(), []).append(rest)
        return cls(tuple((db, DatabasePermissions.parse(texts, f"--allow {db}")) for db, texts in items.items()))

    @classmethod
    def from_config(cls, allow: Mapping[str, Sequence[str]] | None) -> Permissions:
        """From `serving.allow` ({ID: [table, table.column, "table(column, ...)"]})."""
        out = []
        for db_id, items in (allow or {}).items():
            if isinstance(items, str):
                items = [items]
            out.append((str(db_id), DatabasePermissions.parse(items, f"serving.allow.{db_id}")))
        return cls(tuple(out))

    def get(self, db_id: str | None) -> DatabasePermissions | None:
        """The permissions of `db_id`, or None when it has none (every table may be read)."""
        return next((p for name, p in self.databases if name == db_id), None)

    def replaced_by(self, other: Permissions) -> Permissions:
        """These permissions with every database `other` lists taken from `other` (the command line
        over the config)."""
        ids = {db for db, _ in other.databases}
        return Permissions(tuple((db, p) for db, p in self.databases if db not in ids) + other.databases)

    def check_databases(self, known: Iterable[str]) -> None:
        """A one-line ConfigError when a permission names a database that is not among `known`."""
        names = set(known)
        missing = [db for db, _ in self.databases if db not in names]
        if missing:
            raise ConfigError(
                f"permissions name databases that are not served: {_list(missing)}; "
                f"use one of: {_list(sorted(names)) or '(none)'}"
            )

    def __bool__(self) -> bool:
        return bool(self.databases)


@dataclass(frozen=True, eq=False)
class Access:
    """Permissions bound to one database's catalog: `allowed` maps each readable relation (its name
    as the catalog spells it) to its readable columns, None for all of them; `relations` holds every
    relation's columns, hidden ones included, so that a query's columns resolve as the engine
    resolves them."""

    dialect: str
    relations: Mapping[str, tuple[str, ...]]
    allowed: Mapping[str, frozenset[str] | None]
    schema_name: str | None = None
    views: frozenset[str] = frozenset()
    # Relation and column names as the engine compares them (`key`): the authorizer asks per column read.
    _names: dict[str, str] = field(default_factory=dict, repr=False)
    _readable: dict[str, frozenset[str] | None] = field(default_factory=dict, repr=False)
    # What the guard derives once per database (its sqlglot schema).
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._names.update({self.key(name): name for name in self.relations})
        for name, columns in self.allowed.items():
            self._readable[self.key(name)] = None if columns is None else frozenset(self.key(c) for c in columns)

    def key(self, name: str) -> str:
        """`name` as the engine compares it (SQLite and DuckDB ignore case)."""
        return name.lower() if self.dialect in _CASE_INSENSITIVE else name

    def relation(self, name: str) -> str | None:
        """The catalog's spelling of the relation `name` names (compared as the engine compares), or None."""
        return self._names.get(self.key(name))

    def table_allowed(self, name: str) -> bool:
        return self.key(name) in self._readable

    def column_allowed(self, table: str, column: str) -> bool:
        """Whether `column` of `table` may be read (a table read whole allows any name SQLite reads
        of it, such as ROWID)."""
        key = self.key(table)
        if key not in self._readable:
            return False
        columns = self._readable[key]
        return columns is None or self.key(column) in columns

    def relation_column(self, table: str, column: str) -> str:
        """The catalog's spelling of `column` of `table` (as written when the catalog has no such column)."""
        found = self.relation(table)
        names = self.relations.get(found, ()) if found is not None else ()
        return next((c for c in names if self.key(c) == self.key(column)), column)

    def hidden_columns(self, table: str) -> list[str]:
        """The columns of `table` that may not be read, in catalog order."""
        found = self.relation(table)
        if found is None:
            return []
        return [c for c in self.relations[found] if not self.column_allowed(found, c)]

    def is_view(self, name: str) -> bool:
        found = self.relation(name)
        return found is not None and found in self.views

    def filter(self, schema: Schema) -> Schema:
        """`schema` with only what may be read: hidden tables and columns left out, a primary key
        with a hidden column dropped, and foreign keys kept only when every column on both ends
        is shown. Descriptions and value hints of the columns kept stay."""
        tables = []
        for table in schema.tables:
            if not self.table_allowed(table.name):
                continue
            shown = [c for c in table.columns if self.column_allowed(table.name, c.name)]
            key = table.primary_key if all(self.column_allowed(table.name, c) for c in table.primary_key) else []
            foreign = [fk for fk in table.foreign_keys if self._shows_reference(schema, table.name, fk)]
            tables.append(Table(table.name, shown, list(key), foreign))
        return Schema(tables, db_id=schema.db_id, db_path=schema.db_path, dialect=schema.dialect)

    def _shows_reference(self, schema: Schema, table: str, fk: Any) -> bool:
        if not self.table_allowed(fk.ref_table) or not all(self.column_allowed(table, c) for c in fk.columns):
            return False
        parent = schema.table(fk.ref_table)
        referenced = fk.ref_columns or (tuple(parent.primary_key) if parent is not None else ())
        return all(self.column_allowed(fk.ref_table, c) for c in referenced)


def hidden_message(tables: Iterable[str], columns: Iterable[str]) -> str:
    """The one line that refuses a query for reading `tables` and `columns` (`table.column`) the
    permissions hide."""
    tables, columns = list(dict.fromkeys(tables)), list(dict.fromkeys(columns))
    parts = []
    if tables:
        parts.append(f"table{'s' if len(tables) > 1 else ''} {_list(tables)}")
    if columns:
        parts.append(f"column{'s' if len(columns) > 1 else ''} {_list(columns)}")
    return f"this user may not read the {' or the '.join(parts)}; query only the tables and columns the schema shows"


def _list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _match(written: str, names: list[str], dialect: str) -> str | None:
    """The one name of `names` that `written` names: the same text, else the only one that differs
    in case alone (on PostgreSQL, two names that differ only in case must be written exactly)."""
    if dialect not in _CASE_INSENSITIVE and written in names:
        return written
    folded = [n for n in names if n.lower() == written.lower()]
    return folded[0] if len(folded) == 1 else None


# ------------------------------------------------------------------------------------------ parsing

# A name: double-quoted ("" inside for a quote), or a run of anything but separators and spaces.
_NAME = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([^\s,().":]+))\s*')


def _parse_items(text: str, where: str) -> list[tuple[str, Columns]]:
    """`table`, `table.column` and `table(column, ...)` items joined by commas."""
    items: list[tuple[str, Columns]] = []
    pos = 0
    if not text.strip():
        return items
    while True:
        table, pos = _name(text, pos, where)
        columns: Columns = None
        if text.startswith(".", pos):
            column, pos = _name(text, pos + 1, where)
            columns = (column,)
        elif text.startswith("(", pos):
            names = []
            pos += 1
            while True:
                column, pos = _name(text, pos, where)
                names.append(column)
                if text.startswith(")", pos):
                    pos += 1
                    break
                if not text.startswith(",", pos):
                    raise _syntax(text, pos, where, "',' or ')'")
                pos += 1
            columns = tuple(dict.fromkeys(names))
        items.append((table, columns))
        pos = _skip_spaces(text, pos)
        if pos >= len(text):
            return items
        if not text.startswith(",", pos):
            raise _syntax(text, pos, where, "','")
        pos += 1


def _name(text: str, pos: int, where: str) -> tuple[str, int]:
    match = _NAME.match(text, pos)
    if match is None:
        raise _syntax(text, pos, where, "a table or column name")
    quoted, plain = match.groups()
    return (quoted.replace('""', '"') if quoted is not None else plain), match.end()


def _skip_spaces(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _syntax(text: str, pos: int, where: str, expected: str) -> ConfigError:
    found = repr(text[pos : pos + 10]) if pos < len(text) else "the end"
    return ConfigError(f"{where}: expected {expected} at {found} in {text!r}; {_FORM}")
