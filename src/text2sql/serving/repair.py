"""Ask, check the SQL, and (optionally) ask again with the error: the `/v1/sql` and `predict` loop.

The check is the strongest one available without side effects: with a database and `execute`, the
query runs (read-only, with a timeout, through `execute_sql`); with a database and no `execute`,
the database only compiles it (`compile_sql`: nothing runs, but every table and column is resolved
and the read-only rules apply); without a database, sqlglot parses it.

When the check fails and repairs are allowed, the model is asked again with the question rewritten
as `REPAIR_TEMPLATE`. Best-effort: no model was trained on this prompt, so a model that ignores it
simply spends the extra attempts. The answer says how many attempts it took.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from text2sql.serving.engine import Generation
from text2sql.sql.execution import FORBIDDEN, NO_DATABASE, SYNTAX, ExecutionResult, compile_sql, execute_sql
from text2sql.sql.extract import extract_sql, looks_like_sql
from text2sql.sql.match import TRUNCATED

# The question of a repair attempt. Fixed and documented (README): what the model sees on retry.
REPAIR_TEMPLATE = "{question}\n\nThe previous SQL failed: {sql}\nError: {error}"


def repair_question(question: str, sql: str, error: str) -> str:
    return REPAIR_TEMPLATE.format(question=question.strip(), sql=sql.strip() or "(empty)", error=error.strip())


@dataclass
class SqlAnswer:
    """The final SQL and what checking (or running) it gave, after `attempts` model calls."""

    sql: str
    attempts: int
    result: ExecutionResult | None = None  # rows when executed; the check's error otherwise
    executed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # every attempt's sql and error

    @property
    def error(self) -> str | None:
        return self.result.error if self.result is not None else None

    @property
    def category(self) -> str | None:
        return self.result.category if self.result is not None else None


def check_sql(sql: str, db_path: str | Path | None, *, execute: bool, timeout: float, max_rows: int) -> ExecutionResult:
    """Run, compile or parse `sql` (see module docstring); never raises."""
    if not sql.strip():
        return ExecutionResult(error="the model produced no SQL", category=SYNTAX)
    if not looks_like_sql(sql):
        shown = " ".join(sql.split())
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return ExecutionResult(error=f"the model answered without SQL: {shown!r}", category=SYNTAX)
    if db_path is not None:
        if execute:
            return execute_sql(db_path, sql, timeout=timeout, max_rows=max_rows)
        return compile_sql(db_path, sql, timeout=timeout)
    return _parse_check(sql)


def _parse_check(sql: str) -> ExecutionResult:
    try:
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first.get("line") else ""
        return ExecutionResult(error=f"{first.get('description') or 'syntax error'}{where}", category=SYNTAX)
    except (SqlglotError, RecursionError) as exc:
        return ExecutionResult(error=str(exc).splitlines()[0] if str(exc) else "syntax error", category=SYNTAX)
    if len(statements) != 1:
        return ExecutionResult(error=f"expected one statement, got {len(statements)}", category=SYNTAX)
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return ExecutionResult(
            error=f"a {statement.key.upper()} statement; only queries are allowed", category=FORBIDDEN
        )
    if isinstance(statement, exp.Select) and not statement.expressions:
        return ExecutionResult(error="incomplete input: SELECT without columns", category=SYNTAX)
    return ExecutionResult()


# ask(question) → the model's answer, with its token counts and why it ended
Ask = Callable[[str], Awaitable[Generation]]


async def answer(
    ask: Ask,
    question: str,
    *,
    db_path: str | Path | None,
    execute: bool,
    max_repairs: int = 0,
    timeout: float = 5.0,
    max_rows: int = 1000,
) -> SqlAnswer:
    """The model's SQL for `question`, checked, re-asked up to `max_repairs` times while it fails.

    The check runs in a worker thread (a query may take up to `timeout` seconds), so an event loop
    serving other requests is never blocked by it.
    """
    result = SqlAnswer(sql="", attempts=0)
    asked = question
    for attempt in range(max_repairs + 1):
        generation = await ask(asked)
        sql = extract_sql(generation.text)
        checked = await asyncio.to_thread(check_sql, sql, db_path, execute=execute, timeout=timeout, max_rows=max_rows)
        if not checked.ok and generation.finish_reason == "length":
            # Unfinished, not wrong: the fix is a larger max_tokens.
            checked.error = f"the answer reached the token limit before it ended ({checked.error})"
            checked.category = TRUNCATED
        result.sql, result.result, result.attempts = sql, checked, attempt + 1
        result.executed = execute and db_path is not None
        result.prompt_tokens += generation.prompt_tokens
        result.completion_tokens += generation.completion_tokens
        result.history.append({"sql": sql, "error": checked.error})
        if checked.ok or checked.category == NO_DATABASE:  # no answer fixes a database that is away
            break
        asked = repair_question(question, sql, checked.error or "")
    return result
