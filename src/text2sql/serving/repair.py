"""How an answer's SQL is checked, and what the model is asked when the check fails.

The check is the strongest one available without side effects: with a database and `execute`, the
query runs (read-only, with a timeout, through the engine `open_database` gives); with a database and
no `execute`, the database only compiles it (`compile_sql`: nothing runs, but every table and column
is resolved and the read-only rules apply); without a database, sqlglot parses it.

When the check fails and repairs are allowed, the model is asked again with the question rewritten
as `REPAIR_TEMPLATE` (the loop is `answering.Answerer.answer`). Best-effort: no model was trained on
this prompt, so a model that ignores it simply spends the extra attempts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from text2sql.sql.execution import FORBIDDEN, SYNTAX, ExecutionResult, compile_sql, execute_sql, try_open
from text2sql.sql.extract import looks_like_sql
from text2sql.sql.permissions import DatabasePermissions

# The question of a repair attempt. Fixed and documented (README): what the model sees on retry.
REPAIR_TEMPLATE = "{question}\n\nThe previous SQL failed: {sql}\nError: {error}"


def repair_question(question: str, sql: str, error: str) -> str:
    return REPAIR_TEMPLATE.format(question=question.strip(), sql=sql.strip() or "(empty)", error=error.strip())


def check_sql(
    sql: str,
    db_path: str | Path | None,
    *,
    execute: bool,
    timeout: float,
    max_rows: int,
    permissions: DatabasePermissions | None = None,
) -> ExecutionResult:
    """Run, compile or parse `sql` (see module docstring); never raises. `permissions`: the tables
    and columns it may read (None: all)."""
    refused = not_sql(sql)
    if refused is not None:
        return refused
    if db_path is not None:
        if execute:
            return execute_sql(db_path, sql, timeout=timeout, max_rows=max_rows, permissions=permissions)
        return compile_sql(db_path, sql, timeout=timeout, permissions=permissions)
    return _parse_check(sql)


def check_each(
    sqls: Sequence[str],
    db_path: str | Path | None,
    *,
    execute: bool,
    timeout: float,
    max_rows: int,
    permissions: DatabasePermissions | None = None,
) -> list[ExecutionResult]:
    """`check_sql` of every SQL in `sqls`, in order, each distinct text checked once (run over one
    connection with `execute`); equal texts share one result. Never raises."""
    distinct = list(dict.fromkeys(sqls))
    if not (execute and db_path is not None):
        done = {
            q: check_sql(q, db_path, execute=False, timeout=timeout, max_rows=max_rows, permissions=permissions)
            for q in distinct
        }
        return [done[q] for q in sqls]
    db = try_open(db_path, permissions=permissions)
    if isinstance(db, ExecutionResult):  # the database is away: every candidate says so
        return [not_sql(q) or db for q in sqls]
    with db:
        done = {q: not_sql(q) or db.execute(q, timeout=timeout, max_rows=max_rows) for q in distinct}
    return [done[q] for q in sqls]


def not_sql(sql: str) -> ExecutionResult | None:
    """The error of an answer that holds no SQL at all (nothing, or prose); None when it looks like SQL."""
    if not sql.strip():
        return ExecutionResult(error="the model produced no SQL", category=SYNTAX)
    if not looks_like_sql(sql):
        shown = " ".join(sql.split())
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        return ExecutionResult(error=f"the model answered without SQL: {shown!r}", category=SYNTAX)
    return None


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
