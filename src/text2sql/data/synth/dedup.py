"""When two sampled pairs are the same pair: the same normalised question on one database, or the
same result read from the same columns (two spellings of one query: `x > 4` and `x >= 5` over
integers, a UNION and an OR). A count that happens to equal another count over other columns is
not a duplicate, hence the columns in the signature."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalised_question(question: str) -> str:
    """Lower case, accents, punctuation and repeated spaces dropped: "Which  customers...?" and
    "which customers..." are one question."""
    text = unicodedata.normalize("NFKD", question)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def result_signature(db_id: str, columns: Iterable[str], rows: list[tuple], ordered: bool) -> str:
    """A digest of a result and the columns it was read from; row order counts only when `ordered`."""
    shown = [tuple(_canonical(v) for v in row) for row in rows]
    if not ordered:
        shown.sort(key=repr)
    blob = repr((db_id, sorted(columns), ordered, shown)).encode()
    return hashlib.blake2b(blob, digest_size=16).hexdigest()


def _canonical(value: Any) -> Any:
    """Values as every engine agrees on them: 2 and 2.0 alike, floats to 6 places, dates as text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        number = float(value)
        return int(number) if number.is_integer() else round(number, 6)
    return str(value)
