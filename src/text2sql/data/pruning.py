"""Schema pruning: which tables and columns a prompt keeps when the whole schema does not fit.

Every column of the schema gets a place in one priority order, and the prompt keeps the longest
prefix of that order that fits its token budget (`text2sql.data.context`). The order, most needed
first:

1. when training, what the gold SQL uses (its tables and columns, parsed with sqlglot), so a
   model never learns to answer with a column its prompt did not show;
2. tables the question names (by table or column name, exact, stemmed or fuzzy, or through a value
   the question names), best match first: their primary keys, the matching columns, the foreign
   keys between them, then their other columns;
3. tables that join two of those (a foreign key to each);
4. everything else, in definition order.

Ties keep definition order, so the same question and schema always give the same prompt. The kept
part is rendered in definition order, as the whole schema is.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable, Mapping

from text2sql.sql.catalog import Schema, Table

Item = tuple[str, str]  # (table, column)

NAME_MATCH = 85.0  # rapidfuzz ratio at which a question word names an identifier word
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


def identifier_words(name: str) -> list[str]:
    """`flight_number` -> [flight, number]; `OrderDate` -> [order, date]."""
    return [w.lower() for w in _WORD.findall(name)]


def stem(word: str) -> str:
    """A light English stemmer: enough for "airports"/"airport", "cities"/"city", "ordered"/"order"."""
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("es", ""), ("s", ""), ("ing", ""), ("ed", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + repl
    return word


def gold_items(sql: str, dialect: str = "sqlite") -> tuple[set[str], set[str]]:
    """The table names and column names (lower case) the SQL mentions; empty when it does not parse."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except Exception:  # sqlglot raises several error types; an unparsable gold keeps no extra columns
        return set(), set()
    if tree is None:
        return set(), set()
    tables = {t.name.lower() for t in tree.find_all(exp.Table) if t.name}
    columns = {c.name.lower() for c in tree.find_all(exp.Column) if c.name}
    return tables, columns


class _Matcher:
    """Scores identifiers against one question's words: 1.0 exact or same stem, else the fuzzy
    ratio / 100 when at least NAME_MATCH, else 0."""

    def __init__(self, question: str):
        self.words = [w for w in re.findall(r"[a-z0-9]+", question.lower()) if len(w) >= 2]
        self.stems = {stem(w) for w in self.words}

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one matcher per question, dropped with it
    def word(self, word: str) -> float:
        if word in self.stems or stem(word) in self.stems:
            return 1.0
        if len(word) < 4:
            return 0.0
        from rapidfuzz import fuzz, process

        found = process.extractOne(word, [w for w in self.words if len(w) >= 4], scorer=fuzz.ratio)
        return found[1] / 100 if found and found[1] >= NAME_MATCH else 0.0

    def name(self, name: str) -> float:
        """Share of the identifier's words the question names (weighted by how well)."""
        words = identifier_words(name)
        return sum(self.word(w) for w in words) / len(words) if words else 0.0


def priority(
    schema: Schema,
    question: str,
    *,
    gold_sql: str | None = None,
    hinted: Iterable[Item] = (),
) -> list[Item]:
    """Every (table, column) of `schema`, most needed first (see the module docstring)."""
    order: dict[Item, None] = {}

    def take(items: Iterable[Item]) -> None:
        for item in items:
            order.setdefault(item, None)

    if gold_sql:
        take(gold_part(schema, gold_sql))

    matcher = _Matcher(question)
    hinted_set = {(t.lower(), c.lower()) for t, c in hinted}
    column_score: dict[Item, float] = {}
    table_score: dict[str, float] = {}
    for table in schema.tables:
        # A foreign key column (`order_id` in payments) names the table it points to, not its own.
        keys = {c.lower() for fk in table.foreign_keys for c in fk.columns}
        best_column = 0.0
        for col in table.columns:
            score = max(matcher.name(col.name), 1.0 if (table.name.lower(), col.name.lower()) in hinted_set else 0.0)
            column_score[(table.name, col.name)] = score
            if col.name.lower() not in keys:
                best_column = max(best_column, score)
        table_score[table.name] = max(matcher.name(table.name), 0.75 * best_column)
    relevant = sorted(
        (t for t in schema.tables if table_score[t.name] > 0),
        key=lambda t: -table_score[t.name],  # sorted() is stable: ties keep definition order
    )
    relevant_names = {t.name.lower() for t in relevant}
    for table in relevant:
        take((table.name, c) for c in table.primary_key)
        take((table.name, c.name) for c in table.columns if column_score[(table.name, c.name)] > 0)
        take(_join_columns(table, relevant_names))
    for table in _bridges(schema, relevant_names):
        take((table.name, c) for c in table.primary_key)
        take(_join_columns(table, relevant_names))
    for table in relevant:
        take((table.name, c.name) for c in table.columns)
    for table in schema.tables:
        take((table.name, c) for c in table.primary_key)
        take((table.name, c.name) for c in table.columns)
    return list(order)


def gold_part(schema: Schema, gold_sql: str) -> list[Item]:
    """What the gold SQL uses: its tables' primary keys, the columns it names, the keys joining them."""
    tables, columns = gold_items(gold_sql, schema.dialect)
    items: dict[Item, None] = {}
    for table in schema.tables:
        if table.name.lower() in tables:
            items.update(dict.fromkeys((table.name, c) for c in table.primary_key))
            items.update(dict.fromkeys((table.name, c.name) for c in table.columns if c.name.lower() in columns))
            items.update(dict.fromkeys(_join_columns(table, tables)))
    return list(items)


def _join_columns(table: Table, others: set[str]) -> list[Item]:
    """Columns of `table` in a foreign key to one of `others` (lower-case names)."""
    return [(table.name, c) for fk in table.foreign_keys if fk.ref_table.lower() in others for c in fk.columns]


def _bridges(schema: Schema, relevant: set[str]) -> list[Table]:
    """Tables outside `relevant` with foreign keys to two or more relevant tables (a link table)."""
    out = []
    for table in schema.tables:
        if table.name.lower() in relevant:
            continue
        targets = {fk.ref_table.lower() for fk in table.foreign_keys} & relevant
        if len(targets) >= 2:
            out.append(table)
    return out


def subset(schema: Schema, items: Iterable[Item], values: Mapping[Item, list[str]] | None = None) -> Schema:
    """A copy of `schema` holding only `items`, in definition order, with foreign keys whose columns
    and referenced table survive, and `values` attached to their columns."""
    # Engines treat unquoted names case-insensitively, and tables.json spells references its own way.
    keep: dict[str, set[str]] = {}
    for table_name, column_name in items:
        keep.setdefault(table_name.lower(), set()).add(column_name.lower())
    values = {(t.lower(), c.lower()): v for (t, c), v in (values or {}).items()}
    tables = []
    for table in schema.tables:
        name = table.name.lower()
        names = keep.get(name)
        if not names:
            continue
        columns = [
            dataclasses.replace(c, values=tuple(values.get((name, c.name.lower()), ())))
            for c in table.columns
            if c.name.lower() in names
        ]
        fks = [
            fk
            for fk in table.foreign_keys
            if fk.ref_table.lower() in keep
            and all(c.lower() in names for c in fk.columns)
            and all(c.lower() in keep[fk.ref_table.lower()] for c in fk.ref_columns)
        ]
        pk = [c for c in table.primary_key if c.lower() in names]
        tables.append(Table(table.name, columns, pk, fks))
    return Schema(tables, db_id=schema.db_id, db_path=schema.db_path, dialect=schema.dialect)


def all_items(schema: Schema) -> list[Item]:
    return [(t.name, c.name) for t in schema.tables for c in t.columns]
