"""The words questions are made of, shared by every shape: values as a question writes them (exactly
as stored, sometimes in quotes), articles, lists ("name, city and country"), comparison, aggregate
and sorting words, and the fields a question asks to see."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from text2sql.data.synth.build import column, shown
from text2sql.data.synth.names import plural
from text2sql.data.synth.profile import NUMBER, ColumnProfile

# How a text value is set in a question: plain, 'single' or "double" quotes (weights). The stored
# spelling is kept in each, so a model learns to copy it into the SQL literal.
QUOTES = (("{}", 5), ("'{}'", 4), ('"{}"', 2))

# Comparison words by operator; `{x}` is the value. Years and dates read as time.
COMPARE = {
    ">": ("above {x}", "greater than {x}", "more than {x}", "over {x}", "higher than {x}"),
    ">=": ("at least {x}", "{x} or more", "no less than {x}"),
    "<": ("below {x}", "less than {x}", "under {x}", "lower than {x}"),
    "<=": ("at most {x}", "{x} or less", "no more than {x}"),
}
COMPARE_TIME = {
    ">": ("after {x}", "later than {x}"),
    ">=": ("on or after {x}", "{x} or later"),
    "<": ("before {x}", "earlier than {x}"),
    "<=": ("on or before {x}", "{x} or earlier"),
}
# Aggregates: SQL function -> the words for it.
AGGREGATE_WORDS = {
    "AVG": ("average", "mean"),
    "MAX": ("maximum", "highest", "largest"),
    "MIN": ("minimum", "lowest", "smallest"),
    "SUM": ("total",),
}
# The end of a sort a question asks for: (descending, words) for numbers, and for dates.
SUPERLATIVE = {True: ("highest", "largest", "greatest"), False: ("lowest", "smallest")}
SUPERLATIVE_TIME = {True: ("most recent", "latest"), False: ("earliest", "oldest")}
# Dates (not years) also read as an order of events: "the first appointment", "the last order".
SUPERLATIVE_DATE = {True: (*SUPERLATIVE_TIME[True], "last"), False: (*SUPERLATIVE_TIME[False], "first")}
# Adjectives that name a sort, or a comparison, by themselves, by a word of the column's name:
# (words, (descending, ascending) superlatives, (greater, less) comparatives). People ask for "the
# cheapest products" and "flights longer than EK674", not for the lowest price or a greater duration,
# and a model has to learn which column each adjective reads.
IMPLIED = (
    (("duration", "length", "minutes", "hours", "distance"), ("longest", "shortest"), ("longer", "shorter")),
    (("price", "cost", "fee", "fare", "charge"), ("most expensive", "cheapest"), ("more expensive", "cheaper")),
    (("salary", "pay", "wage", "income"), ("highest paid", "lowest paid"), ("better paid", "less well paid")),
    (("experience",), ("most experienced", "least experienced"), ("more experienced", "less experienced")),
    (("birth", "born"), ("youngest", "oldest"), ("younger", "older")),
    (("age",), ("oldest", "youngest"), ("older", "younger")),
    (("population",), ("most populous", "least populous"), ("more populous", "less populous")),
    (("capacity", "seats"), ("largest", "smallest"), ("larger", "smaller")),
)

# Time columns named for an event, said with its verb: "instructors hired after 2005", "students
# enrolled in 2021", "patients born before 1970". By a word of the column's name.
EVENT_VERBS = {
    "hire": "hired",
    "hired": "hired",
    "birth": "born",
    "born": "born",
    "enrollment": "enrolled",
    "enrolment": "enrolled",
    "enrolled": "enrolled",
    "join": "joined",
    "joined": "joined",
    "start": "started",
    "started": "started",
    "founded": "founded",
    "foundation": "founded",
    "registration": "registered",
    "registered": "registered",
    "release": "released",
    "released": "released",
    "publication": "published",
    "published": "published",
    "graduation": "graduated",
    "departure": "departing",
    "arrival": "arriving",
    "order": "ordered",
    "ordered": "ordered",
    "created": "created",
    "creation": "created",
    "admission": "admitted",
    "purchase": "purchased",
    "delivery": "delivered",
    "completion": "completed",
    "completed": "completed",
}


def said(rng: random.Random, value: Any) -> str:
    """`value` as a question writes it: numbers plain, text exactly as stored, sometimes quoted."""
    text = shown(value)
    if isinstance(value, (int, float)) or not isinstance(value, str):
        return text
    form = rng.choices([q for q, _ in QUOTES], [w for _, w in QUOTES])[0]
    return form.format(text)


def article(phrase: str) -> str:
    """The phrase with "a" or "an" in front."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def listing(items: list[str], joint: str = "and") -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {joint} {items[-1]}"


def compare_words(rng: random.Random, op: str, value: str, *, time: bool) -> str:
    """The words for `column op value` after the column's name ("above 50", "after 2020-01-01")."""
    return rng.choice((COMPARE_TIME if time else COMPARE)[op]).format(x=value)


def aggregate_word(rng: random.Random, func: str) -> str:
    return rng.choice(AGGREGATE_WORDS[func])


def superlative(rng: random.Random, desc: bool, col: ColumnProfile) -> str:
    """ "highest" / "lowest" for numbers, "most recent" / "earliest" for dates and years."""
    if col.kind != NUMBER:
        return rng.choice(SUPERLATIVE_DATE[desc])
    return rng.choice((SUPERLATIVE_TIME if col.yearly else SUPERLATIVE)[desc])


def _column_words(col: ColumnProfile) -> list[str]:
    """The words of a column's name: `hire_year` -> hire, year."""
    return col.name.lower().replace("-", "_").split("_")


def _implied(col: ColumnProfile) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """The (superlatives, comparatives) a word of the column's name implies (`IMPLIED`), or None."""
    words = set(_column_words(col))
    return next(((sup, comp) for keys, sup, comp in IMPLIED if words.intersection(keys)), None)


def implied_superlative(desc: bool, col: ColumnProfile) -> str | None:
    """The adjective that alone says "sorted by `col`" ("cheapest" for price ascending), or None."""
    found = _implied(col)
    return None if found is None else found[0][0 if desc else 1]


def event_verb(col: ColumnProfile) -> str | None:
    """The verb a time column's event is said with ("hired" for hire_year), or None."""
    for word in _column_words(col):
        if word in EVENT_VERBS:
            return EVENT_VERBS[word]
    return None


def implied_comparative(greater: bool, col: ColumnProfile) -> str | None:
    """The adjective that alone says "`col` greater" ("more expensive" for price), or None."""
    found = _implied(col)
    return None if found is None else found[1][0 if greater else 1]


def name_of(rng: random.Random, col: ColumnProfile) -> str:
    """One of the column's names: its plain name half the time, else any of them."""
    return col.phrase if rng.random() < 0.5 else rng.choice(col.names)


@dataclass(frozen=True)
class Field:
    """A column a question asks to see: its SQL, the column it reads, and its name (one, several)."""

    node: exp.Expr
    read: tuple[str, str]
    one: str
    many: str


def field(rng: random.Random, col: ColumnProfile, dialect: str, alias: str | None = None, prefix: str = "") -> Field:
    """The column as a field; `prefix` names whose it is ("airline" -> "airline name")."""
    name = name_of(rng, col)
    one = f"{prefix} {name}" if prefix else name
    return Field(column(col.name, dialect, alias), (col.table, col.name), one, plural(one))


def fields_phrase(fields: list[Field], *, many: bool = True) -> str:
    return listing([f.many if many else f.one for f in fields])
