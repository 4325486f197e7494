"""A teacher model that words the questions: it reads the schema and a sampled SQL query and writes
the question the query answers; then, asked the other way round, it writes SQL for its own question,
and the pair is kept only when that SQL returns the same result (a round trip on the database).

Any chat model plugs in through `Teacher` (one method: chat messages in, the reply's text out).
`inference.openai_model.OpenAIModel` is one: `--teacher openai:NAME` (and `data.synth.teacher`) is an
OpenAI-compatible endpoint, OPENAI_BASE_URL and OPENAI_API_KEY. A teacher raises a `Text2SQLError`
when it cannot answer at all (unreachable, a refused key, an unknown model): the run stops with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from text2sql.config import DEFAULT_SYSTEM_PROMPT
from text2sql.sql.targets import DISPLAY_NAMES

Messages = Sequence[dict[str, str]]

QUESTION_SYSTEM = (
    "You write the question a person would ask of a database that the given SQL query answers. "
    "Reply with the question only: one sentence in plain English, naming values exactly as the query "
    "writes them, and no SQL."
)
SQL_SYSTEM = DEFAULT_SYSTEM_PROMPT  # the round trip asks as a fine-tuned model is asked
MAX_QUESTION_CHARS = 400  # a longer answer is not one question


class Teacher(Protocol):
    """A chat model: `ask(messages)` returns the text of its reply to the messages
    ([{"role": "system" | "user" | "assistant", "content": ...}, ...])."""

    def ask(self, messages: Messages) -> str: ...


def question_messages(schema_text: str, sql: str, dialect: str, draft: str) -> list[dict[str, str]]:
    """Messages asking for the question that `sql` answers; `draft` is the templated wording."""
    user = (
        f"Database schema:\n{schema_text}\n\n{DISPLAY_NAMES.get(dialect, dialect)} query:\n{sql}\n\n"
        f"A plain template wording of it: {draft}\n\nQuestion:"
    )
    return [{"role": "system", "content": QUESTION_SYSTEM}, {"role": "user", "content": user}]


def sql_messages(schema_text: str, question: str, dialect: str) -> list[dict[str, str]]:
    """Messages asking for the SQL of `question` (the round trip's second half)."""
    system = SQL_SYSTEM.replace("{dialect}", DISPLAY_NAMES.get(dialect, dialect))
    user = f"Database schema:\n{schema_text}\n\nQuestion: {question}"
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def clean_question(text: str) -> str:
    """The teacher's reply as one question: the first non-empty line, without quotes or a label."""
    for line in (text or "").splitlines():
        line = line.strip().strip('"').strip()
        if line.lower().startswith("question:"):
            line = line[len("question:") :].strip()
        if line:
            return line if len(line) <= MAX_QUESTION_CHARS else ""
    return ""
