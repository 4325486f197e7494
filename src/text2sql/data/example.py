"""The one record every reader produces; nothing downstream knows which format a row came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# One earlier turn of a conversation: its question and its SQL.
Turn = tuple[str, str]


@dataclass
class Example:
    """One text-to-SQL pair with the context a prompt needs.

    `schema` is the schema text shown to the model (CREATE TABLE statements, possibly empty when the
    source has none, as in CSVs of question and SQL only). `db_path` is the SQLite file the SQL runs on, or None when
    the row cannot be executed (no database available). `history` holds the earlier turns of the row's
    conversation, oldest first, as (question, SQL) pairs: empty for a question that stands alone. A row
    of a conversation names it in `extra["interaction"]` and its 1-based place in `extra["turn"]`.
    """

    question: str
    sql: str
    schema: str = ""
    db_id: str | None = None
    db_path: str | None = None
    complexity: str | None = None
    reasoning: str | None = None
    evidence: str | None = None
    id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    history: list[Turn] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Example:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in row.items() if k in known}
        if values.get("history"):
            values["history"] = [(str(q), str(s)) for q, s in values["history"]]  # JSON gives lists
        return cls(**values)

    @property
    def executable(self) -> bool:
        return self.db_path is not None
