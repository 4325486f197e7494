"""SParC and CoSQL: conversations of follow-up questions over Spider's databases.

    sparc/train.json, sparc/dev.json   [{"database_id", "interaction": [{"utterance", "query", ...}, ...],
                                         "final": {"utterance", "query"}}, ...]
    sparc/tables.json                  schemas of every database_id (Spider's format)
    sparc/database/<db_id>/<db_id>.sqlite

CoSQL's sql_state_tracking/cosql_{train,dev}.json have the same shape (its databases are one folder up:
set data.db_dir). Each interaction gives one example per turn: the turn's utterance is the question, its
query the SQL, and the earlier turns (utterance and gold query) its `history`. A turn's id is
`<interaction>-t<turn>` (turns count from 1), where the interaction is the record's `interaction_id`
when it has one, else `<file stem>-<index>`; `extra` holds `interaction` and `turn`, by which
evaluation scores question and interaction match. `final` (the conversation as one question) is not a
turn and is not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from text2sql.data.example import Example, Turn
from text2sql.data.readers.base import (
    NO_DB_ID,
    ReadOptions,
    RowFunction,
    SkipRow,
    conversation,
    missing_field,
    text_field,
)
from text2sql.data.readers.databases import Databases
from text2sql.errors import DataError

# The fields that mark a record as one SParC/CoSQL interaction.
SPARC_FIELDS = ("interaction", "database_id")


def is_interaction(record: Mapping[str, Any] | None) -> bool:
    """Whether a record is a SParC/CoSQL interaction."""
    return record is not None and all(name in record for name in SPARC_FIELDS)


def sparc_row_function(opts: ReadOptions, label: str, databases: Databases) -> RowFunction:
    """Interaction → one Example per turn (see the module docstring)."""

    def to_example(row: Mapping[str, Any], default_id: str) -> list[Example]:
        for name in reversed(SPARC_FIELDS):
            if name not in row:
                raise missing_field(label, name, row)
        turns = row["interaction"]
        if not isinstance(turns, list) or not all(isinstance(t, Mapping) for t in turns):
            raise DataError(
                f"{label}: interaction {default_id}: 'interaction' must be a list of {{utterance, query}} objects"
            )
        db_id = text_field(row, "database_id")
        if not db_id:
            raise SkipRow(NO_DB_ID)
        db_path, schema = databases.resolve(db_id)
        base = text_field(row, "interaction_id") or default_id
        history: list[Turn] = []
        examples = []
        for number, turn in enumerate(turns, start=1):
            question, sql = text_field(turn, "utterance"), text_field(turn, "query")
            examples.append(
                Example(
                    question=question,
                    sql=sql,
                    schema=schema,
                    db_id=db_id,
                    db_path=db_path,
                    id=f"{base}-t{number}",
                    extra=conversation(base, number),
                    history=list(history),
                )
            )
            if question and sql:  # a turn without both is dropped, and no later prompt shows it
                history.append((question, sql))
        return examples

    return to_example
