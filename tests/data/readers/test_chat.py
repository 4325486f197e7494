"""Chat records: schema, question and system prompt from the turns; reasoning split from SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from readers_support import SINGER_DDL, read, write_jsonl
from text2sql.data.readers import ReadStats, split_reasoning
from text2sql.data.readers.ddl import extract_create_tables
from text2sql.errors import DataError

# --------------------------------------------------------------------------------------------- chat


def test_chat_jsonl_schema_question_and_system(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "id": "c1",
                "messages": [
                    {"role": "system", "content": "You are a SQL expert."},
                    {"role": "user", "content": f"Schema:\n{SINGER_DDL}\nQuestion: How many singers?"},
                    {"role": "assistant", "content": "SELECT count(*) FROM singer;"},
                ],
            },
            {
                "messages": [
                    {"role": "user", "content": "How old is the oldest singer?"},
                    {"role": "assistant", "content": "SELECT max(age) FROM singer"},
                ]
            },
            {"messages": [{"role": "user", "content": "unanswered"}]},
        ],
    )
    stats = ReadStats()
    first, second = read(path, stats)
    assert (first.id, first.question, first.schema, first.sql) == (
        "c1",
        "How many singers?",
        SINGER_DDL,
        "SELECT count(*) FROM singer;",
    )
    assert first.extra == {"system": "You are a SQL expert."}
    assert (second.id, second.question, second.schema, second.extra) == (
        "chat-1",
        "How old is the oldest singer?",
        "",
        {},
    )
    assert stats.dropped == {"no assistant turn": 1}


def test_chat_schema_in_system_prompt_seed_002(tmp_path: Path) -> None:
    system = "Provide only SQL for the user's query given this context --> CREATE TABLE head(age INTEGER)"
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "How many heads of the departments are older than 56?"},
                    {"role": "assistant", "content": "SELECT COUNT(*) FROM head WHERE age > 56"},
                ]
            }
        ],
    )
    [example] = read(path)
    assert example.schema == "CREATE TABLE head(age INTEGER);"
    assert example.extra["system"] == "Provide only SQL for the user's query given this context -->"
    assert example.question == "How many heads of the departments are older than 56?"


def test_chat_reasoning_and_sections_seed_001(tmp_path: Path) -> None:
    user = (
        "Database Engine:\nSQLite\n\nDatabase Schema:\n"
        "CREATE TABLE singer (\n  singer_id INTEGER PRIMARY KEY, -- the singer's id\n  age INTEGER\n)\n"
        "This schema describes the database.\n\n"
        "External Knowledge:\nold means age > 60\n\n"
        "Question:\nHow many old singers are there?\n\n"
        "Instructions:\n- Output the SQL in a ```sql block.\n"
    )
    answer = "Old singers have age > 60.\nI count them.\n```sql\nSELECT count(*)\nFROM singer WHERE age > 60;\n```"
    path = write_jsonl(
        tmp_path / "synsql.jsonl",
        [
            {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]},
            {
                "messages": [
                    {"role": "user", "content": "Names?"},
                    {"role": "assistant", "content": "SELECT name FROM singer"},
                ]
            },
        ],
    )
    stats = ReadStats()
    [example] = read(path, stats, require_reasoning=True)
    assert example.question == "How many old singers are there?"
    assert example.evidence == "old means age > 60"
    assert example.schema.startswith("CREATE TABLE singer (\n") and example.schema.endswith(");")
    assert example.reasoning == "Old singers have age > 60.\nI count them."
    assert example.sql == "SELECT count(*)\nFROM singer WHERE age > 60;"
    assert stats.dropped == {"no reasoning": 1}


@pytest.mark.parametrize(
    "target, reasoning, sql",
    [
        ("SELECT 1", None, "SELECT 1"),
        ("```sql\nSELECT 1\n```", None, "SELECT 1"),
        ("Think.\n```SQLite\nSELECT 1\n```\nDone.", "Think.", "SELECT 1"),
        (
            "Draft:\n```sql\nSELECT 0\n```\nFinal:\n```sql\nSELECT 1\n```",
            "Draft:\n```sql\nSELECT 0\n```\nFinal:",
            "SELECT 1",
        ),
        ("Plain fence.\n```\nSELECT 2\n```", "Plain fence.", "SELECT 2"),
    ],
)
def test_split_reasoning(target: str, reasoning: str | None, sql: str) -> None:
    assert split_reasoning(target) == (reasoning, sql)


@pytest.mark.parametrize(
    "text, statements, rest",
    [
        ("CREATE TABLE head(age INTEGER)", ["CREATE TABLE head(age INTEGER);"], ""),
        (
            'x CREATE TABLE IF NOT EXISTS main."my t" (a int); CREATE TABLE [b c](d) y',
            ['CREATE TABLE IF NOT EXISTS main."my t" (a int);', "CREATE TABLE [b c](d);"],
            "x  y",
        ),
        (
            "CREATE TABLE t (\n  a TEXT, -- the user's (odd) name\n  b INT\n) WITHOUT ROWID; Q?",
            ["CREATE TABLE t (\n  a TEXT, -- the user's (odd) name\n  b INT\n) WITHOUT ROWID;"],
            " Q?",
        ),
        (
            "Use the CREATE TABLE statements above (all of them).",
            [],
            "Use the CREATE TABLE statements above (all of them).",
        ),
        ("CREATE TABLE t AS SELECT 1", [], "CREATE TABLE t AS SELECT 1"),
    ],
)
def test_extract_create_tables(text: str, statements: list[str], rest: str) -> None:
    assert extract_create_tables(text) == (statements, rest)


def test_chat_bad_messages(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "human", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"c.jsonl: row c-0: message role 'human'; use system, user or assistant"):
        read(path)
