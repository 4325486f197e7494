"""Finding CREATE TABLE statements inside free text (chat prompts, sql-create-context `context`).

Statements are delimited by balanced parentheses, not by semicolons: real data often omits the
semicolon (`CREATE TABLE head (age INTEGER)`) or separates statements with ', ' or a newline.
"""

from __future__ import annotations

import re

_CREATE = re.compile(r"\bCREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TABLE\b", re.IGNORECASE)
_TAIL = re.compile(r"[ \t]*(?:WITHOUT\s+ROWID|STRICT)?[ \t]*;?", re.IGNORECASE)
_QUOTES = {"'": "'", '"': '"', "`": "`", "[": "]"}
_IDENT = r"""(?:"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\]|[^\s().;,'"`\[]+)"""
# What may stand between CREATE TABLE and the column list: [IF NOT EXISTS] [schema.]name.
_HEAD = re.compile(rf"\s+(?:IF\s+NOT\s+EXISTS\s+)?{_IDENT}(?:\s*\.\s*{_IDENT})?\s*\(", re.IGNORECASE)
_SIGNIFICANT = re.compile(r"--|/\*|[()'\"`\[]")


def extract_create_tables(text: str) -> tuple[list[str], str]:
    """(statements, the text with them cut out). Each statement ends with ';'."""
    statements: list[str] = []
    rest: list[str] = []
    pos = 0
    for match in _CREATE.finditer(text):
        if match.start() < pos:  # inside a statement already taken
            continue
        end = _statement_end(text, match.end())
        if end is None:
            continue
        statement = text[match.start() : end].strip()
        statements.append(statement if statement.endswith(";") else statement + ";")
        rest.append(text[pos : match.start()])
        pos = end
    rest.append(text[pos:])
    return statements, "".join(rest)


def _statement_end(text: str, start: int) -> int | None:
    """End of the statement whose column list opens after `start`, or None if it has none."""
    head = _HEAD.match(text, start)
    if head is None:
        return None  # CREATE TABLE ... AS SELECT, or "CREATE TABLE statements (...)" in prose
    depth = 0
    i = head.end() - 1  # at the "(" opening the column list
    # Jump from one significant token to the next (a SynSQL schema runs to thousands of characters).
    while (token := _SIGNIFICANT.search(text, i)) is not None:
        mark, i = token.group(), token.end()
        if mark == "--":  # SynSQL-style column comments may hold apostrophes
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
        elif mark == "/*":
            close = text.find("*/", i)
            i = len(text) if close < 0 else close + 2
        elif mark in _QUOTES:
            close = text.find(_QUOTES[mark], i)
            if close < 0:
                return None
            i = close + 1
        elif mark == "(":
            depth += 1
        else:  # ")"
            depth -= 1
            if depth == 0:
                tail = _TAIL.match(text, i)
                return tail.end() if tail else i + 1
    return None
