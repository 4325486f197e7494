"""Chat records (OpenAI-style JSONL): {"messages": [{"role": "system"|"user"|"assistant", "content": ...}]}.

The last assistant turn is the target (reasoning + ```sql block is split by `finish`); the
last user turn before it holds the question. CREATE TABLE statements found in the system or user
turn become `schema`. A user turn structured with labels ("Question:", "External Knowledge:",
"Instructions:", ...) yields the "Question:" section as the question and an "External Knowledge:" /
"Evidence:" section as `evidence`; other sections (instructions, output format) are prompt
boilerplate and are dropped, since the prompt builder writes its own. A user turn without a
"Question:" label is, apart from its CREATE TABLE statements, all question. The system prompt (less
its CREATE TABLE statements) is kept in `extra["system"]`.

A record with several user questions, each answered by an assistant turn, is a conversation: it gives one
example per answer, whose `history` holds the earlier questions with their answers' SQL, and whose schema
holds the CREATE TABLE statements of the system turn and of every user turn up to its own (a schema sent
with the first question serves them all). Its ids are `<record id>-t<turn>`, and `extra` names the
conversation (`interaction`, `turn`). A record with one answered question is read as before.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from text2sql.data.example import Example, Turn
from text2sql.data.readers.base import (
    NO_ASSISTANT_TURN,
    ReadOptions,
    RowFunction,
    SkipRow,
    conversation,
    missing_field,
    optional_text,
    row_id,
)
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.ddl import extract_create_tables
from text2sql.data.readers.reasoning import split_reasoning
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
    def to_example(row: Mapping[str, Any], default_id: str) -> Example | list[Example]:
        messages = row.get("messages")
        if messages is None:
            raise missing_field(label, "messages", row)
        turns = _turns(messages, label, default_id)
        answered = _answered(turns)
        if len(answered) <= 1:
            target_at = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
            if target_at is None:
                raise SkipRow(NO_ASSISTANT_TURN)
            return one_turn(row, turns, target_at, row_id(row, default_id), None)
        base = row_id(row, default_id)
        earlier = answered_turns(turns)
        examples = []
        for number, (_, target_at) in enumerate(answered, start=1):
            example = one_turn(row, turns, target_at, f"{base}-t{number}", earlier[: number - 1])
            example.extra.update(conversation(base, number))
            examples.append(example)
        return examples

    def one_turn(
        row: Mapping[str, Any], turns: list[tuple[str, str]], target_at: int, id_: str, history: list[Turn] | None
    ) -> Example:
        """The example whose answer is the assistant turn at `target_at`; `history` None: not part of a
        conversation (only the last user turn's statements join the system turn's)."""
        users = [c for role, c in turns[:target_at] if role == "user"]
        system = "\n\n".join(c for role, c in turns[:target_at] if role == "system")
        system_statements, system_rest = extract_create_tables(system)
        user_statements, question, evidence = split_user_turn(users[-1] if users else "")
        earlier = [s for text in users[:-1] for s in extract_create_tables(text)[0]] if history is not None else []
        earlier = [s for s in dict.fromkeys(earlier) if s not in system_statements and s not in user_statements]
        schema = "\n".join(system_statements + earlier + user_statements)
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
            id=id_,
            extra=extra,
            history=history or [],
        )

    return to_example


def answered_turns(turns: list[tuple[str, str]]) -> list[Turn]:
    """(question, SQL) of each question a chat answered, in order: the question as `split_user_turn`
    reads its user message, the SQL as the assistant's answer holds it (after any reasoning). The
    history of a conversation's next question, in training data and in a chat request alike."""
    return [(split_user_turn(turns[u][1])[1], split_reasoning(turns[a][1])[1]) for u, a in _answered(turns)]


def _answered(turns: list[tuple[str, str]]) -> list[tuple[int, int]]:
    """(user turn, assistant turn) of each question answered: an assistant turn after a user turn, the
    last user turn since the previous answer being the question."""
    pairs = []
    asked = None
    for i, (role, _) in enumerate(turns):
        if role == "user":
            asked = i
        elif role == "assistant" and asked is not None:
            pairs.append((asked, i))
            asked = None
    return pairs


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
