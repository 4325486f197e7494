"""Chat records (OpenAI-style JSONL): {"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}.

The last assistant turn is the target (reasoning + ```sql block is split by `finish`); the
last user turn before it holds the question. CREATE TABLE statements found in the system or user
turn become `schema`. A user turn structured with labels ("Question:", "External Knowledge:",
"Instructions:", ...) yields the "Question:" section as the question and an "External Knowledge:" /
"Evidence:" section as `evidence`; other sections (instructions, output format) are prompt
boilerplate and are dropped, since the prompt builder writes its own. A user turn without a
"Question:" label is, apart from its CREATE TABLE statements, all question. The system prompt (less
its CREATE TABLE statements) is kept in `extra["system"]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from text2sql.data.example import Example
from text2sql.data.readers.base import (
    NO_ASSISTANT_TURN,
    ReadOptions,
    RowFunction,
    SkipRow,
    missing_field,
    optional_text,
    row_id,
)
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.ddl import extract_create_tables
from text2sql.errors import DataError

_SECTION_GROUPS = {
    "question": "question",
    "database schema": "schema",
    "schema": "schema",
    "tables": "schema",
    "context": "schema",
    "external knowledge": "evidence",
    "evidence": "evidence",
    "hint": "evidence",
    "hints": "evidence",
    "instructions": "other",
    "instruction": "other",
    "output format": "other",
    "database engine": "other",
}
# A label at the start of a line, optionally in markdown (## Question:, **Question:**).
_LABEL = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?\**[ \t]*(?P<label>"
    + "|".join(sorted(_SECTION_GROUPS, key=len, reverse=True))
    + r")[ \t]*\**[ \t]*:[ \t]*\**[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
# A line that only introduces the schema ("Schema:"), left behind once the statements are cut out.
_SCHEMA_LABEL_LINE = re.compile(
    r"^[ \t]*(?:#+[ \t]*)?\**[ \t]*(?:database schema|schema|tables|context)[ \t]*\**[ \t]*:[ \t]*\**[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)


def split_user_turn(text: str) -> tuple[list[str], str, str | None]:
    """(CREATE TABLE statements, question, evidence or None) from the user turn of a chat record."""
    statements, rest = extract_create_tables(text)
    matches = list(_LABEL.finditer(rest))
    groups = [_SECTION_GROUPS[m.group("label").lower()] for m in matches]
    if "question" not in groups:
        question = _SCHEMA_LABEL_LINE.sub("", rest)
        return statements, question.strip(), None
    sections: dict[str, str] = {}
    for i, (match, group) in enumerate(zip(matches, groups)):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(rest)
        body = rest[match.end() : end].strip()
        if body:  # a later section of the same kind wins: the question comes last in most prompts
            sections[group] = body
    if not statements and sections.get("schema"):
        statements = [sections["schema"]]
    return statements, sections.get("question", ""), sections.get("evidence")


def chat_row_function(opts: ReadOptions, label: str, databases: Databases) -> RowFunction:
    def to_example(row: Mapping[str, Any], default_id: str) -> Example:
        messages = row.get("messages")
        if messages is None:
            raise missing_field(label, "messages", row)
        turns = _turns(messages, label, default_id)
        target_at = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
        if target_at is None:
            raise SkipRow(NO_ASSISTANT_TURN)
        user = next((c for role, c in reversed(turns[:target_at]) if role == "user"), "")
        system = "\n\n".join(c for role, c in turns[:target_at] if role == "system")
        system_statements, system_rest = extract_create_tables(system)
        user_statements, question, evidence = split_user_turn(user)
        schema = "\n".join(system_statements + user_statements)
        db_id = optional_text(row, "db_id")
        db_path = None
        if db_id and opts.db_dir:
            db_path, db_schema = databases.resolve(db_id)
            schema = schema or db_schema  # the prompt's own schema is what the data's author chose
        extra = {"system": system_rest.strip()} if system_rest.strip() else {}
        return Example(
            question=question,
            sql=turns[target_at][1],
            schema=schema,
            db_id=db_id,
            db_path=db_path,
            evidence=evidence,
            id=row_id(row, default_id),
            extra=extra,
        )

    return to_example


def _turns(messages: Any, label: str, row: str) -> list[tuple[str, str]]:
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise DataError(f"{label}: row {row}: 'messages' must be a list of {{role, content}} objects")
    turns = []
    for message in messages:
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise DataError(f"{label}: row {row}: message role {role!r}; use system, user or assistant")
        turns.append((role, "" if content is None else str(content)))
    return turns
