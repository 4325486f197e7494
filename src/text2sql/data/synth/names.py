"""Table and column names as a question says them: `order_items` -> "order items" (one: "order item"),
`unitPrice` -> "unit price", `qty` -> "quantity", `dob` -> "date of birth". A column's description
(BIRD's `database_description/`, read with the schema) names it instead when it is short.

A column also has other names people use for it (`column_phrases`): `duration_minutes` is "duration
in minutes" or "duration", `years_experience` "years of experience", `birth_year` "year of birth",
`gpa` "GPA" or "grade point average", `order_date` of the table `orders` plainly "date". Questions
pick among them, so that a model learns to find the column a question means, not only its spelling."""

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
# Acronyms written in capitals, and what they stand for where that is a common way to say them.
ACRONYMS = {
    "gpa": "grade point average",
    "ssn": "social security number",
    "gdp": "gross domestic product",
    "bmi": "body mass index",
    "mpg": "miles per gallon",
    "iata": "",
    "icao": "",
    "isbn": "",
    "sku": "",
    "vat": "",
    "url": "",
    "vin": "",
}
# Trailing unit words: `duration_minutes` -> "duration in minutes", and plainly "duration".
UNITS = {
    "minutes": "minutes",
    "mins": "minutes",
    "min": "minutes",
    "hours": "hours",
    "hrs": "hours",
    "seconds": "seconds",
    "secs": "seconds",
    "sec": "seconds",
    "days": "days",
    "months": "months",
    "mg": "mg",
    "kg": "kg",
    "km": "km",
    "cm": "cm",
    "mm": "mm",
    "ml": "ml",
    "usd": "dollars",
    "eur": "euros",
    "pct": "percent",
    "percent": "percent",
}
COUNTED = {"years", "months", "days", "hours", "number"}  # `years_experience` -> "years of experience"
WHEN = {"year", "date", "time", "day", "month"}  # `birth_year` -> "year of birth"
VAGUE = {"id", "number", "name", "code", "count", "type", "no", "key"}  # too vague alone: kept with their noun
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
    """An identifier as words, obvious abbreviations expanded and acronyms in capitals: `cust_dob` ->
    "customer date of birth", `gpa` -> "GPA"."""
    return " ".join(_word(w) for w in words(name)) or name


def _word(word: str) -> str:
    lower = word.lower()
    return lower.upper() if lower in ACRONYMS else ABBREVIATIONS.get(lower, word)


def column_phrases(name: str, description: str = "", noun: str = "") -> tuple[str, ...]:
    """Every way a question may name a column, `column_phrase` first: a unit said with "in", a count
    said with "of", a date or year said with "of" (or after a participle: "date joined"), an acronym
    spelled out, and without the table's own noun in front (`order_date` of an order: "date")."""
    first = column_phrase(name, description)
    found = [first]
    parts = [_word(w) for w in words(name)]
    if first != humanise(name) or not parts:
        return tuple(found)  # a description names the column; its words are not the name's
    lower = [p.lower() for p in parts]
    if len(parts) > 1 and lower[-1] in UNITS:
        rest = " ".join(parts[:-1])
        found += [f"{rest} in {UNITS[lower[-1]]}", rest]
    if len(parts) == 2 and lower[0] in COUNTED and lower[1] not in VAGUE:
        found += [f"{parts[0]} of {parts[1]}", parts[1]]
    if len(parts) == 2 and lower[1] in WHEN and lower[0] not in VAGUE:
        found.append(f"{parts[1]} {parts[0]}" if lower[0].endswith("ed") else f"{parts[1]} of {parts[0]}")
    spelled = [ACRONYMS.get(w, "") or p for w, p in zip(lower, parts)]
    if spelled != parts:
        found.append(" ".join(spelled))
    own = [w.lower() for w in noun.split()]
    if own and lower[: len(own)] == own and len(parts) > len(own) and " ".join(lower[len(own) :]) not in VAGUE:
        found.append(" ".join(parts[len(own) :]))
    return tuple(dict.fromkeys(found))


def column_phrase(name: str, description: str = "") -> str:
    """What a question calls a column: its description when that is a short name ("average salary"
    for `A11`), else its humanised name."""
    text = " ".join(description.split())
    if text and ";" not in text and len(text.split()) <= MAX_DESCRIPTION_WORDS:
        return text[0].lower() + text[1:] if not text[:2].isupper() else text
    return humanise(name)


def _split_head(phrase: str) -> tuple[str, str]:
    """("year", " of birth") for "year of birth": the word that takes the number, and the rest."""
    for joint in (" of ", " in ", " per "):
        if joint in phrase:
            head, _, tail = phrase.partition(joint)
            return head, joint + tail
    return phrase, ""


def singular(phrase: str) -> str:
    """The phrase with its last word in the singular (`order items` -> "order item"; the word before
    "of" or "in" when there is one: "years of experience" -> "year of experience")."""
    phrase, tail = _split_head(phrase)
    return _singular(phrase) + tail


def _singular(phrase: str) -> str:
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
    """The phrase with its last word in the plural (`category` -> "categories", `ID` -> "IDs"; the
    word before "of" or "in" when there is one: "year of birth" -> "years of birth")."""
    phrase, tail = _split_head(phrase)
    return _plural(phrase) + tail


def _plural(phrase: str) -> str:
    head, _, last = phrase.rpartition(" ")
    lower = last.lower()
    if head and (lower in UNITS or head.split()[0].lower() in COUNTED):
        return phrase  # "dosage mg", "years experience": a unit or a count already says how many
    if head and lower.endswith("ed"):
        return f"{_plural(head)} {last}"  # "date joined" -> "dates joined"
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
