"""What a request asks: the question, the schema and an optional hint, read the way training read chat
records (`text2sql.data.readers.chat`), so a served model sees its training format.

A chat request's last user message holds the question; CREATE TABLE statements anywhere in the
system (or developer) messages and user messages become the schema. A user message structured with
labels ("Question:", "External Knowledge:") is split as the chat reader splits it. The earlier user
messages that an assistant message answered, with the SQL of those answers, are the question's
history, read as the chat reader reads a conversation (`answered_turns`). A completion prompt is
read like one user message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from text2sql.data.example import Turn
from text2sql.data.readers.chat import answered_turns, split_user_turn
from text2sql.data.readers.ddl import extract_create_tables

_SYSTEM_ROLES = ("system", "developer")


@dataclass
class Question:
    question: str
    schema: str = ""  # CREATE TABLE statements, one per line; "" when the request gave none
    evidence: str | None = None
    history: list[Turn] = field(default_factory=list)  # earlier questions and their SQL, oldest first


def from_messages(messages: Iterable[tuple[str, str]]) -> Question:
    """(role, text) pairs of a chat request → the question of its last user message."""
    turns = list(messages)
    statements: list[str] = []
    for role, text in turns:
        if role in _SYSTEM_ROLES:
            statements.extend(extract_create_tables(text)[0])
    users = [text for role, text in turns if role == "user"]
    for text in users[:-1]:  # a schema sent in an earlier user turn still counts
        statements.extend(extract_create_tables(text)[0])
    if not users:
        return Question("", "\n".join(statements))
    user_statements, question, evidence = split_user_turn(users[-1])
    last = max(i for i, (role, _) in enumerate(turns) if role == "user")
    history = answered_turns([(role, text) for role, text in turns[:last] if role in ("user", "assistant")])
    return Question(question, "\n".join(statements + user_statements), evidence, history)


def from_prompt(prompt: str) -> Question:
    """A completion prompt: the question, optionally with CREATE TABLE statements and labels."""
    statements, question, evidence = split_user_turn(prompt)
    return Question(question, "\n".join(statements), evidence)


def schema_from_text(text: str) -> str:
    """The CREATE TABLE statements in `text`, one per line; the text itself when it holds none
    (a schema in another notation is passed to the model as written)."""
    statements, _ = extract_create_tables(text)
    return "\n".join(statements) if statements else text.strip()
