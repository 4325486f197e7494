"""Pull the one SQL statement out of whatever a model generated.

Models wrap their answer in many ways: chat-template tokens (`<|assistant|>`, `</s>`, `[/INST]`),
reasoning followed by a ```sql block (SynSQL-style data), a preamble such as "Here is the SQL query:" and
an explanation after it (an untuned chat model). `extract_sql` removes all of that and
returns a single statement without its `;`, so that the string scored and executed is the SQL the
model meant, and nothing else.

What is SQL and what is prose is decided with sqlglot (its tokenizer finds the `;` that ends the
statement; its parser says whether a candidate is a complete query); regexes only locate
candidates.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

_SQLITE = Dialect.get_or_raise("sqlite")

# Where the answer begins when the decoded text still holds the prompt: after the last of these.
_ASSISTANT_TURN = re.compile(
    r"<\|assistant\|>|<\|im_start\|>\s*assistant\b"
    r"|<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>"
    r"|\[/INST\]|<start_of_turn>\s*model\b|^### Response:",
    re.I | re.M,
)
# Where the answer ends: an end-of-turn token or the start of another turn.
_END_OF_TURN = re.compile(
    r"</s>|<\|im_end\|>|<\|eot_id\|>|<\|endoftext\|>|<\|end\|>|<end_of_turn>|<eos>"
    r"|<\|im_start\|>|<\|user\|>|<\|system\|>|\[INST\]",
    re.I,
)
_OTHER_SPECIAL_TOKENS = re.compile(r"<\|[\w.-]+\|>|<s>|<pad>|<unk>", re.I)
_THINKING = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.I | re.S)
_FENCE = re.compile(r"```")

# The first words of a statement; WITH must look like a CTE so that "With this query..." is not one.
_STATEMENT_START = re.compile(
    r"""\b(?:
        SELECT\b
      | WITH\s+(?:RECURSIVE\s+)?[\w"`\[\]]+\s*(?:\([^)]*\)\s*)?AS\s*(?:(?:NOT\s+)?MATERIALIZED\s*)?\(
      | VALUES\s*\(
      | (?:INSERT|REPLACE)\s+(?:OR\s+\w+\s+)?INTO\b
      | UPDATE\s+\S+\s+SET\b
      | DELETE\s+FROM\b
      | (?:CREATE|DROP)\s+(?:(?:TEMP|TEMPORARY|UNIQUE|VIRTUAL)\s+)?(?:TABLE|VIEW|INDEX|TRIGGER)\b
      | ALTER\s+TABLE\b
      | PRAGMA\s+\w
      | VACUUM\b
      | (?:ATTACH|DETACH)\s+(?:DATABASE\s+)?\S
      | EXPLAIN\s+(?:QUERY\s+PLAN\s+)?(?:SELECT|WITH)\b
    )""",
    re.I | re.X,
)
# An uppercase SELECT anywhere: the last resort for "The query is SELECT ...".
_BARE_SELECT = re.compile(r"\bSELECT\b")

# A prose line: starts with a capitalised word ("This query...", "In the above...", "Note:").
_TITLE_WORD = re.compile(r"([A-Z][a-z]+)\b(?![(.])")
_SQL_WORDS = frozenset({key.split()[0] for key in _SQLITE.tokenizer_class.KEYWORDS if key[:1].isalpha()} | {"BY"})


def looks_like_sql(text: str) -> bool:
    """Whether an extracted answer starts as a SQL statement does: False for prose a model wrote
    instead of SQL (which `extract_sql` returns as it is, having found no statement in it)."""
    match = _STATEMENT_START.match(text.lstrip(" \t\r\n(;"))
    return match is not None


def extract_sql(text: str) -> str:
    """The single SQL statement in a model's output, without chat tokens, prose or trailing `;`.

    Prefers the last ```sql fenced block (else the last fenced block of any kind); otherwise finds
    where the statement starts (a line beginning with a statement keyword, possibly after a label
    such as "SQL:"), cuts it at the first `;` outside literals and drops commentary after it.
    Returns "" for empty output; returns the cleaned text unchanged when no statement is found, so
    that executing it reports why it is not SQL.
    """
    if not text or not text.strip():
        return ""
    text = _strip_chat_tokens(text)
    text = _THINKING.sub("\n", text)
    block = _last_fenced_block(text)
    if block is not None:
        text = block
    start, end = _statement_span(text, fenced=block is not None)
    sql = text[start:end]
    sql = _cut_at_semicolon(sql)
    sql = _cut_commentary(sql)
    return sql.strip().rstrip(";").strip()


def _strip_chat_tokens(text: str) -> str:
    turns = list(_ASSISTANT_TURN.finditer(text))
    if turns:
        text = text[turns[-1].end() :]
    # An end-of-turn token before any answer text (a stray `</s>` right after the role) is skipped.
    while match := _END_OF_TURN.match(text.lstrip()):
        text = text.lstrip()[match.end() :]
    end = _END_OF_TURN.search(text)
    if end:
        text = text[: end.start()]
    return _OTHER_SPECIAL_TOKENS.sub("", text)


def _last_fenced_block(text: str) -> str | None:
    """Content of the last ```sql block, else of the last ``` block, else None. A final fence that
    is never closed (generation stopped mid-block) counts as running to the end."""
    fences = [m.start() for m in _FENCE.finditer(text)]
    if not fences:
        return None
    blocks: list[tuple[str, str]] = []
    for i in range(0, len(fences), 2):
        opening = fences[i] + 3
        closing = fences[i + 1] if i + 1 < len(fences) else len(text)
        body = text[opening:closing]
        first_line, newline, rest = body.partition("\n")
        if newline and re.fullmatch(r"[\w+-]*", first_line.strip()):
            language, content = first_line.strip().lower(), rest
        else:
            language, content = "", body
        blocks.append((language, content))
    sql_blocks = [content for language, content in blocks if "sql" in language]
    return (sql_blocks or [content for _, content in blocks])[-1]


def _statement_span(text: str, *, fenced: bool) -> tuple[int, int]:
    """Where the statement starts, and where it must end at the latest (a closing backtick when it
    was quoted inline). The start is the first statement keyword that begins a line (opening
    parentheses allowed before it) or follows a label (text ending in ':'), a backtick or a tag
    ('>'). Outside a fenced block, an uppercase SELECT anywhere is the last resort."""
    for match in _STATEMENT_START.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        before = text[line_start : match.start()]
        if not before.strip("( \t"):
            return line_start + len(before) - len(before.lstrip()), len(text)
        before = before.rstrip()
        if before.endswith((":", ">")):
            return match.start(), len(text)
        if before.endswith("`"):
            closing = text.find("`", match.end())
            return match.start(), closing if closing >= 0 else len(text)
    bare = None if fenced else _BARE_SELECT.search(text)
    return (bare.start() if bare else 0), len(text)


def _cut_at_semicolon(sql: str) -> str:
    """`sql` up to the first `;` that ends a statement, i.e. not inside a literal, quoted
    identifier or comment. Each `;` is checked by tokenizing only the text before it, so prose with
    unbalanced quotes after the statement cannot confuse the tokenizer."""
    for match in re.finditer(";", sql):
        position = match.start()
        try:
            tokens = _SQLITE.tokenize(sql[: position + 1])
        except SqlglotError:
            continue  # the `;` sits inside an unterminated literal or identifier
        if tokens and tokens[-1].token_type == TokenType.SEMICOLON and tokens[-1].start == position:
            return sql[:position]
    return sql


def _cut_commentary(sql: str) -> str:
    """Drop an explanation that follows the statement without a `;` between them.

    Only when the whole text does not parse as one statement: it is cut before the first line that
    reads as prose (a capitalised word that is not a SQL keyword, or any capitalised word after a
    blank line) provided the lines before it parse. Requiring that keeps a broken query broken
    rather than shortening it into a different, valid one.
    """
    lines = sql.split("\n")
    if len(lines) == 1 or _parses(sql):  # one line has no line to cut before
        return sql
    for i in range(1, len(lines)):
        stripped = lines[i].strip()
        word = _TITLE_WORD.match(stripped)
        if not word:
            continue
        after_blank = not lines[i - 1].strip()
        if (after_blank or word.group(1).upper() not in _SQL_WORDS) and _parses("\n".join(lines[:i])):
            return "\n".join(lines[:i])
    return sql


def _parses(sql: str) -> bool:
    """True when `sql` is exactly one statement that sqlglot parses as SQLite."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except (SqlglotError, RecursionError):
        return False
    return len(statements) == 1
