"""What a database holds, as every engine describes it: tables in definition order, their columns
and types, primary and foreign keys. Engines read it from the database (`Database.catalog()`); a
Spider/BIRD `tables.json` entry gives the same structure without a database
(`data.schema.schema_from_tables_json`); `data.schema.render_schema` turns it into prompt text."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    type: str = ""
    # What the database's documentation says of it (BIRD's database_description/*.csv), and values
    # that match the question being asked (value retrieval); both are shown beside it in a prompt.
    description: str = ""
    values: tuple[str, ...] = ()


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
    # The database it was read from (a file or URL); sample rows can only come from there.
    db_path: str | None = None
    dialect: str = "sqlite"

    def table(self, name: str) -> Table | None:
        lowered = name.lower()  # unquoted table names are case-insensitive in every engine here
        return next((t for t in self.tables if t.name.lower() == lowered), None)


def resolve_implicit_references(schema: Schema) -> None:
    """`REFERENCES parent` without columns means the parent's primary key; spell it out for the prompt."""
    for table in schema.tables:
        for i, fk in enumerate(table.foreign_keys):
            parent = schema.table(fk.ref_table)
            if not fk.ref_columns and parent is not None and len(parent.primary_key) == len(fk.columns):
                table.foreign_keys[i] = ForeignKey(fk.columns, fk.ref_table, tuple(parent.primary_key))
