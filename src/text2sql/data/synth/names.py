"""Table and column names as a question says them: `order_items` -> "order items" (one: "order item"),
`unitPrice` -> "unit price", `qty` -> "quantity", `dob` -> "date of birth". A column's description
(BIRD's `database_description/`, read with the schema) names it instead when it is short."""

from __future__ import annotations

import re

# Abbreviations whose meaning is plain in a column or table name; a word not listed stays as it is.
ABBREVIATIONS = {
    "qty": "quantity",
    "num": "number",
    "no": "number",
    "nr": "number",
    "nbr": "number",
    "dob": "date of birth",
    "amt": "amount",
    "addr": "address",
    "avg": "average",
    "cnt": "count",
    "dept": "department",
    "desc": "description",
    "dt": "date",
    "emp": "employee",
    "cust": "customer",
    "prod": "product",
    "pct": "percent",
    "yr": "year",
    "yrs": "years",
    "mgr": "manager",
    "tel": "telephone",
    "nm": "name",
    "sal": "salary",
    "id": "ID",
    "ids": "IDs",
}
# Trailing words of a key column that name the link, not the thing it points at (`origin_code` -> "origin").
KEY_SUFFIXES = ("id", "code", "key", "no", "num", "fk")
MAX_DESCRIPTION_WORDS = 5  # a longer description is an explanation, not a name

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_INVARIANT = {"data", "information", "equipment", "staff", "people", "series", "species", "news", "status"}


def words(name: str) -> list[str]:
    """The words of an identifier: snake_case, camelCase, spaces and hyphens split, lower case
    (an all-capitals word such as `ID` or `GPA` kept as written)."""
    parts = re.split(r"[\s_\-.]+", _CAMEL.sub(" ", name.strip()))
    return [p if (p.isupper() and len(p) > 1) else p.lower() for p in parts if p]


def humanise(name: str) -> str:
    """An identifier as words, obvious abbreviations expanded: `cust_dob` -> "customer date of birth"."""
    return " ".join(ABBREVIATIONS.get(w.lower(), w) for w in words(name)) or name


def column_phrase(name: str, description: str = "") -> str:
    """What a question calls a column: its description when that is a short name ("average salary"
    for `A11`), else its humanised name."""
    text = " ".join(description.split())
    if text and ";" not in text and len(text.split()) <= MAX_DESCRIPTION_WORDS:
        return text[0].lower() + text[1:] if not text[:2].isupper() else text
    return humanise(name)


def singular(phrase: str) -> str:
    """The phrase with its last word in the singular (`order items` -> "order item")."""
    head, _, last = phrase.rpartition(" ")
    lower = last.lower()
    if lower in _INVARIANT or len(lower) < 3 or not lower.endswith("s") or lower.endswith(("ss", "us", "is")):
        word = last
    elif lower.endswith("ies"):
        word = last[:-3] + "y"
    elif lower.endswith(("ches", "shes", "xes", "sses", "zes")):
        word = last[:-2]
    else:
        word = last[:-1]
    return f"{head} {word}" if head else word


def plural(phrase: str) -> str:
    """The phrase with its last word in the plural (`category` -> "categories", `ID` -> "IDs")."""
    head, _, last = phrase.rpartition(" ")
    lower = last.lower()
    if lower in _INVARIANT or (lower.endswith("s") and not lower.endswith(("ss", "us", "is"))):
        word = last  # already plural
    elif last.isupper():
        word = last + "s"
    elif lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        word = last[:-1] + "ies"
    elif lower.endswith(("s", "x", "ch", "sh", "z")):
        word = last + "es"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def role_phrase(column: str, parent_noun: str) -> str:
    """What a key column says of the row it points at: `origin_code` -> "origin", `customer_id` ->
    "customer"; the parent's noun when nothing else is left (`id`, `fk`)."""
    parts = words(column)
    while parts and parts[-1].lower() in KEY_SUFFIXES:
        parts = parts[:-1]
    return humanise(" ".join(parts)) if parts else parent_noun
