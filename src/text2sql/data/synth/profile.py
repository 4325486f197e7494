"""What sampling needs to know of a database, read through its read-only engine with a time bound
per query: each table's row count, and per column its kind (number, text, date), whether it is a
key, how many distinct values it holds, its most frequent values and values spread over its sorted
range (at most MAX_VALUES of each: a bounded read whatever the table's size).

A column whose reads fail or time out is left out; a table whose rows cannot be counted is left out.
"""

from __future__ import annotations

import datetime
import decimal
import re
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from text2sql.data.synth.build import column, ordered, render, shown, table
from text2sql.data.synth.names import column_phrase, column_phrases, humanise, plural, singular
from text2sql.sql.catalog import Schema, Table

MAX_VALUES = 50  # distinct values read per column, of each kind (most frequent, spread)
MAX_COLUMNS = 40  # per table; wider tables are read in part
MAX_VALUE_CHARS = 40  # longer texts are prose, not values a question repeats
CATEGORY_MAX_DISTINCT = 100  # a text column with more distinct values is a name or free text
SMALL_INT_CATEGORY = 20  # an integer column with at most this many values can also be grouped on
PROFILE_TIMEOUT = 10.0  # seconds per read

NUMBER, TEXT, DATE = "number", "text", "date"
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")
_NUMBER_TYPES = ("INT", "REAL", "FLOA", "DOUB", "NUMERIC", "DECIMAL", "NUMBER", "SERIAL", "MONEY")
_DATE_TYPES = ("DATE", "TIME")
_TEXT_TYPES = ("CHAR", "TEXT", "CLOB", "STRING", "VARCHAR", "NAME", "ENUM", "UUID")


@dataclass
class ColumnProfile:
    table: str
    name: str
    kind: str  # NUMBER, TEXT or DATE
    phrase: str
    key: bool
    non_null: int
    distinct: int
    top: list[tuple[Any, int]] = field(default_factory=list)  # (value, rows holding it), most frequent first
    spread: list[Any] = field(default_factory=list)  # distinct values spread over the sorted range
    variants: tuple[str, ...] = ()  # other names a question may use for it (`names.column_phrases`)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name a question may use for the column, its plain one first."""
        return self.variants or (self.phrase,)

    @property
    def yearly(self) -> bool:
        """A number that is a year (`birth_year`): compared with "after" and "before"."""
        return self.integer and "year" in self.name.lower() and all(1000 <= v <= 2999 for v in self.spread)

    @property
    def integer(self) -> bool:
        return self.kind == NUMBER and all(isinstance(v, int) for v in self.spread + [v for v, _ in self.top])


@dataclass
class TableProfile:
    name: str
    rows: int
    noun: str  # one row, as a question says it ("order item")
    nouns: str  # several ("order items")
    primary_key: list[str]
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    label: ColumnProfile | None = None  # what names a row in an answer: a name, a title, else the key

    def kinds(self, kind: str) -> list[ColumnProfile]:
        return [c for c in self.columns.values() if c.kind == kind and not c.key]

    @property
    def measures(self) -> list[ColumnProfile]:
        """Numbers worth adding up, averaging and comparing."""
        return [c for c in self.kinds(NUMBER) if c.distinct >= 3]

    @property
    def categories(self) -> list[ColumnProfile]:
        """Columns whose values many rows share: filters and groups."""
        found = []
        for c in self.columns.values():
            if c.key or c is self.label or c.distinct < 2 or not c.top:
                continue
            limit = CATEGORY_MAX_DISTINCT if c.kind == TEXT else SMALL_INT_CATEGORY if c.integer else 0
            if c.distinct <= limit and c.distinct < self.rows and c.top[0][1] > 1:
                found.append(c)
        return found

    @property
    def attributes(self) -> list[ColumnProfile]:
        """Columns a question may ask to see beside the label: every non-key column but the label."""
        return [c for c in self.columns.values() if not c.key and c is not self.label and (c.top or c.spread)]

    @property
    def texts(self) -> list[ColumnProfile]:
        """Text columns whose stored values a filter can name (the label's among them)."""
        return [c for c in self.kinds(TEXT) if c.spread or c.top]

    @property
    def dates(self) -> list[ColumnProfile]:
        return [c for c in self.kinds(DATE) if c.distinct >= 3 and c.spread]

    @property
    def unique_label(self) -> bool:
        """Whether the label names one row (a lookup by it finds one row)."""
        return self.label is not None and self.label.distinct == self.rows == self.label.non_null


def profile_schema(db: Any, schema: Schema) -> dict[str, TableProfile]:
    """Every readable table of `schema`, profiled on the open database `db` (`open_database`)."""
    found = {}
    for t in schema.tables:
        profile = _profile_table(db, schema, t)
        if profile is not None and profile.rows > 0 and profile.columns:
            found[t.name] = profile
    return found


def _profile_table(db: Any, schema: Schema, t: Table) -> TableProfile | None:
    dialect = schema.dialect
    count = exp.select(exp.Count(this=exp.Star())).from_(table(t.name, dialect))
    result = db.execute(render(count, dialect), timeout=PROFILE_TIMEOUT, max_rows=1)
    if not result.ok or not result.rows or not isinstance(result.rows[0][0], int):
        return None
    noun_words = humanise(t.name)
    profile = TableProfile(t.name, result.rows[0][0], singular(noun_words), plural(noun_words), list(t.primary_key))
    keys = set(t.primary_key) | {c for fk in t.foreign_keys for c in fk.columns}
    for col in t.columns[:MAX_COLUMNS]:
        kind = _declared_kind(col.type)
        if kind is None and col.type:
            continue  # blobs, booleans, arrays, JSON: nothing a template asks about
        is_key = col.name in keys or _looks_like_key(col.name)
        read = _profile_column(db, dialect, t.name, col.name, kind)
        if read is None:
            continue
        kind, non_null, distinct, top, spread = read
        profile.columns[col.name] = ColumnProfile(
            t.name,
            col.name,
            kind,
            column_phrase(col.name, col.description),
            is_key,
            non_null,
            distinct,
            top,
            spread,
            column_phrases(col.name, col.description, profile.noun),
        )
    profile.label = _label(profile)
    return profile


def _declared_kind(declared: str) -> str | None:
    upper = declared.upper()
    if not upper:
        return None  # SQLite's untyped columns: decided by their values
    if any(t in upper for t in _DATE_TYPES):
        return DATE
    if any(t in upper for t in _NUMBER_TYPES):
        return NUMBER
    if any(t in upper for t in _TEXT_TYPES):
        return TEXT
    return None


def _looks_like_key(name: str) -> bool:
    lower = name.lower()
    return lower == "id" or lower.endswith("_id") or name.endswith(("Id", "ID"))


def _profile_column(
    db: Any, dialect: str, table_name: str, name: str, declared: str | None
) -> tuple[str, int, int, list[tuple[Any, int]], list[Any]] | None:
    """(kind, non-null rows, distinct values, most frequent values, spread values), or None when the
    column cannot be read or holds nothing a question can name."""
    col = column(name, dialect)
    stats = exp.select(exp.Count(this=col.copy()), exp.Count(this=exp.Distinct(expressions=[col.copy()]))).from_(
        table(table_name, dialect)
    )
    result = db.execute(render(stats, dialect), timeout=PROFILE_TIMEOUT, max_rows=1)
    if not result.ok or not result.rows:
        return None
    non_null, distinct = result.rows[0]
    if not non_null or not distinct:
        return None
    top = _most_frequent(db, dialect, table_name, name) if distinct <= CATEGORY_MAX_DISTINCT else []
    spread = _spread(db, dialect, table_name, name, non_null)
    values = [v for v, _ in top] + spread
    kind = _kind_of(values)
    if kind is None or (declared == NUMBER and kind != NUMBER):
        return None  # a number column holding text, or mixed values: nothing to name reliably
    usable = [(v, n) for v, n in top if _usable(v, kind)]
    return kind, non_null, distinct, usable, [v for v in spread if _usable(v, kind)]


def _most_frequent(db: Any, dialect: str, table_name: str, name: str) -> list[tuple[Any, int]]:
    col = column(name, dialect)
    n = exp.Count(this=exp.Star())
    query = (
        exp.select(col.copy(), n.copy())
        .from_(table(table_name, dialect))
        .where(exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null())))
        .group_by(col.copy())
        .order_by(ordered(n.copy(), dialect, desc=True), ordered(col.copy(), dialect))
        .limit(MAX_VALUES)
    )
    result = db.execute(render(query, dialect), timeout=PROFILE_TIMEOUT, max_rows=MAX_VALUES)
    return [(row[0], row[1]) for row in result.rows] if result.ok else []


def _spread(db: Any, dialect: str, table_name: str, name: str, non_null: int) -> list[Any]:
    """Up to MAX_VALUES values at evenly spaced positions of the column's sorted values (its
    quantiles), read in one query with ROW_NUMBER so that a large table costs one sort."""
    step = max(1, non_null // MAX_VALUES)
    col = column(name, dialect)
    position = exp.alias_(
        exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[ordered(col.copy(), dialect)])), "rn"
    )
    inner = (
        exp.select(exp.alias_(col.copy(), "v"), position)
        .from_(table(table_name, dialect))
        .where(exp.Not(this=exp.Is(this=col.copy(), expression=exp.Null())))
    )
    rn = exp.column("rn")
    query = (
        exp.select(exp.column("v"))
        .from_(inner.subquery("spread"))
        .where(
            exp.EQ(this=exp.Mod(this=rn.copy(), expression=exp.Literal.number(step)), expression=exp.Literal.number(0))
        )
        .order_by(rn.copy())
        .limit(MAX_VALUES + 1)
    )
    result = db.execute(render(query, dialect), timeout=PROFILE_TIMEOUT, max_rows=MAX_VALUES + 1)
    if not result.ok:
        return []
    return list(dict.fromkeys(row[0] for row in result.rows if row[0] is not None))[:MAX_VALUES]


def _kind_of(values: list[Any]) -> str | None:
    """The kind the values are: numbers, dates (date objects, or ISO text), or text."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool) for v in values):
        return NUMBER
    if all(isinstance(v, (datetime.date, datetime.datetime)) for v in values):
        return DATE
    if all(isinstance(v, str) for v in values):
        return DATE if all(_ISO_DATE.match(v) for v in values) else TEXT
    return None  # mixed or binary values: nothing a question can name reliably


def _usable(value: Any, kind: str) -> bool:
    if kind == NUMBER:
        return isinstance(value, (int, decimal.Decimal)) or (isinstance(value, float) and value == value)
    text = shown(value)
    # Braces would read as template slots; line breaks and padding do not survive a question.
    return 0 < len(text) <= MAX_VALUE_CHARS and text == text.strip() and not any(ch in text for ch in "{}\n\r")


def _label(profile: TableProfile) -> ColumnProfile | None:
    """The column that names a row: a text column called name or title, else the text column with
    the most distinct values when most rows differ in it, else the single-column primary key."""
    texts = [c for c in profile.columns.values() if c.kind == TEXT and not c.key]
    named = [c for c in texts if c.name.lower() in ("name", "title") or c.name.lower().endswith(("_name", "name"))]
    for c in named + sorted(texts, key=lambda c: -c.distinct):
        if c.distinct >= max(2, 0.8 * profile.rows):
            return c
    if len(profile.primary_key) == 1 and profile.primary_key[0] in profile.columns:
        return profile.columns[profile.primary_key[0]]
    return None


__all__ = ["DATE", "NUMBER", "TEXT", "ColumnProfile", "TableProfile", "profile_schema"]
