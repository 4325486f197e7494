"""Gold audit: find gold queries whose result is not well defined, before any prediction is scored.

Execution accuracy compares a prediction's result with the gold query's result. When the gold result
itself depends on choices the SQL leaves to the engine, a correct prediction can be scored wrong
(or a wrong one right) by chance. A gold query is **unstable** when its result is one of several an
engine may legitimately return, or when it has no result at all:

- `limit_ties`: `ORDER BY ... LIMIT n` (or OFFSET) cuts through rows with equal ORDER BY values that
  differ elsewhere, so which of them are kept is up to the engine;
- `order_ties`: the outermost ORDER BY makes row order part of the answer
  (`equivalence.gold_orders_results`), but rows with equal ORDER BY values differ elsewhere, so
  their order is arbitrary; or an ORDER BY key holds NULLs, which engines place first or last
  differently (SQLite and MySQL first when ascending, PostgreSQL and DuckDB last);
- `float_aggregate`: SUM or AVG over floating-point values, which engines may add up in another
  order and so differ in the last digits (info-level: results are compared rounded to 6 decimals,
  so this decides a match only at a rounding boundary);
- `gold_error` / `gold_timeout`: the gold query fails or runs past the timeout (the scorer already
  leaves such rows out of execution accuracy as `gold_error`; the audit names them up front).

An evaluator runs `audit_rows` over its rows before scoring, shows the issues per kind in the report,
and with `--exclude-unstable-gold` leaves rows whose issues include a kind in `UNSTABLE` out of
execution accuracy, so that the score counts only answers that are right or wrong for certain.

Everything runs read-only through `Database.execute` (the same guard as predictions). The checks
that need ORDER BY values run a rewritten probe of the gold query (its ORDER BY keys appended to the
select list, LIMIT and OFFSET removed); a query that sqlglot cannot parse or rewrite, or whose probe
fails, is only checked for failing and timing out: a check that cannot run flags nothing.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from text2sql.progress import progress as progress_bar
from text2sql.sql.execution import Database, ExecutionResult, open_database, try_open
from text2sql.sql.match import GoldRow
from text2sql.sql.results import TIMEOUT

LIMIT_TIES = "limit_ties"
ORDER_TIES = "order_ties"
FLOAT_AGGREGATE = "float_aggregate"
GOLD_ERROR = "gold_error"
GOLD_TIMEOUT = "gold_timeout"
KINDS = (LIMIT_TIES, ORDER_TIES, FLOAT_AGGREGATE, GOLD_ERROR, GOLD_TIMEOUT)
# Kinds that make a gold "unstable" (module docstring). A float aggregate is reported but not among
# them: execution accuracy compares floats with a tolerance, so summation order does not change a score.
UNSTABLE = frozenset(KINDS) - {FLOAT_AGGREGATE}

# Name of the ORDER BY keys appended to a probe's select list; unlikely to clash with a real column.
_KEY_ALIAS = "text2sql_audit_key"
# sqlglot fills in each ORDER BY term's NULL placement with the dialect's default, so only the text
# tells whether the query chose it; a query that spells it out is well defined on every engine.
_EXPLICIT_NULLS = re.compile(r"\bnulls\s+(first|last)\b", re.I)
_VALUE_CHARS = 60  # longest ORDER BY value shown in a detail

QueryT = TypeVar("QueryT", bound=exp.Query)


@dataclass
class GoldIssue:
    """One reason a gold query's result is not well defined."""

    kind: str  # one of KINDS
    detail: str  # one plain sentence


def audit_gold(sql: str, target: str | Path, *, dialect: str = "sqlite", timeout: float = 5.0) -> list[GoldIssue]:
    """The issues of one gold query on the database `target` (empty: none found). `dialect` is the
    one `sql` is written in. Raises as `open_database` does when the database cannot be opened;
    each query (the gold and up to two probes) gets `timeout` seconds."""
    with open_database(target) as db:
        return _audit(db, sql, dialect, timeout)


def audit_rows(rows: Sequence[GoldRow], *, timeout: float = 5.0, progress: bool = False) -> dict[int, list[GoldIssue]]:
    """Audit the gold query of every row: {row index: issues}, only rows with issues.

    Rows without a database are skipped, and so are rows whose database cannot be opened: neither is
    the gold query's fault, and the scorer reports them as `no_database`. Each database is opened
    once, read-only, and a gold query repeated on one database is audited once.
    """
    by_db: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.db_path:
            by_db[str(row.db_path)].append(i)
    found: dict[int, list[GoldIssue]] = {}
    bar = progress_bar(sum(map(len, by_db.values())), "auditing gold", enabled=progress)
    try:
        for db_path, indices in by_db.items():
            db = try_open(db_path)
            if isinstance(db, ExecutionResult):
                bar.update(len(indices))
                continue
            with db:
                seen: dict[str, list[GoldIssue]] = {}
                for i in indices:
                    sql = rows[i].sql or ""
                    if sql not in seen:
                        seen[sql] = _audit(db, sql, db.dialect, timeout)
                    if seen[sql]:
                        found[i] = list(seen[sql])
                    bar.update(1)
    finally:
        bar.close()
    return dict(sorted(found.items()))


def _audit(db: Database, sql: str, dialect: str, timeout: float) -> list[GoldIssue]:
    gold = db.execute(sql, timeout=timeout)
    if not gold.ok:
        if gold.category == TIMEOUT:
            return [GoldIssue(GOLD_TIMEOUT, f"The gold query ran longer than {timeout:g} s and was stopped.")]
        first_line = next(iter((gold.error or "").strip().splitlines()), "unknown error")
        return [GoldIssue(GOLD_ERROR, f"The gold query fails ({gold.category}): {first_line}")]
    query = _outer_query(sql, dialect)
    if query is None:
        return []
    issues: list[GoldIssue] = []
    for check in (_ordering_issues, _float_issues):
        try:
            issues += check(db, sql, query, gold, timeout)
        except (SqlglotError, RecursionError):  # a rewrite sqlglot cannot make: skip that check
            pass
    return issues


def _outer_query(sql: str, dialect: str) -> exp.Select | exp.SetOperation | None:
    """The outermost query of `sql`, unwrapped from parentheses as `gold_orders_results` does."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (SqlglotError, RecursionError):
        return None
    if not statements:
        return None
    node = statements[0]
    while isinstance(node, (exp.Subquery, exp.Paren)) and not node.args.get("order"):
        node = node.this
    return node if isinstance(node, (exp.Select, exp.SetOperation)) else None


# ---------------------------------------------------------------------------------------------------
# ORDER BY: ties and NULLs


def _ordering_issues(
    db: Database, sql: str, query: exp.Select | exp.SetOperation, gold: ExecutionResult, timeout: float
) -> list[GoldIssue]:
    order = query.args.get("order")
    if not order or not order.expressions:
        return []
    window = _limit_offset(query)
    plan = _probe_plan(query, gold.columns)
    if window is None or plan is None:
        return []
    limit, offset = window
    probe_query, sources = plan
    # The whole ordered result, not only the rows LIMIT keeps: a tie group is seen on both sides of
    # the cut, and NULLs that this engine sorts past the cut (another engine would keep them) count.
    probe = db.execute(probe_query.sql(dialect=db.dialect), timeout=timeout)
    if not probe.ok:
        return []
    width = len(gold.columns)
    keys = [tuple(_hashable(row[j]) for j in sources) for row in probe.rows]
    values = [tuple(map(_hashable, row[:width])) for row in probe.rows]
    lo = offset
    hi = len(values) if limit is None else min(len(values), offset + limit)
    # Where the kept window starts and ends; a tie group that spans a cut is split by chance.
    cuts = [(lo, f"OFFSET {offset}")] if offset else []
    if limit is not None:
        cuts.append((hi, f"LIMIT {limit}"))

    issues: list[GoldIssue] = []
    for start, end in _runs(keys):
        if len(set(values[start:end])) == 1:
            continue  # equal keys, but the rows are identical too: any order gives the same result
        shown = _show(keys[start])
        for cut, label in cuts:
            if start < cut < end and not _has(issues, LIMIT_TIES):
                issues.append(
                    GoldIssue(
                        LIMIT_TIES,
                        f"{label} cuts through a tie: rows {cut} and {cut + 1} have the same ORDER BY value"
                        f" {shown}, so which rows are kept is up to the engine.",
                    )
                )
        kept = range(max(start, lo), min(end, hi))
        for i, j in zip(kept, kept[1:]):
            if values[i] != values[j] and not _has(issues, ORDER_TIES):
                issues.append(
                    GoldIssue(
                        ORDER_TIES,
                        f"Rows {i + 1} and {j + 1} have the same ORDER BY value {shown} but differ elsewhere,"
                        " so their order is arbitrary.",
                    )
                )
    if not (gold.truncated or probe.truncated or _has(issues, LIMIT_TIES)):
        # The probe's kept rows must be the gold's rows; if they are not, the rewrite changed the
        # query (a sqlglot round trip that does not hold, say) and its findings mean nothing.
        if Counter(values[lo:hi]) != Counter(tuple(map(_hashable, row)) for row in gold.rows):
            return []
    null_key = None if _EXPLICIT_NULLS.search(sql) else _null_key(keys)
    if null_key is not None:
        term = order.expressions[null_key].this.sql(dialect=db.dialect)
        issues.append(
            GoldIssue(
                ORDER_TIES,
                f"ORDER BY {term} sorts NULL values, which engines place differently (first or last),"
                " so the row order depends on the engine.",
            )
        )
    return issues


def _limit_offset(query: exp.Expression) -> tuple[int | None, int] | None:
    """(LIMIT or None, OFFSET or 0) when both are plain numbers; None for any other form (an
    expression, a negative LIMIT, FETCH FIRST), whose window the audit does not work out."""
    limit_node, offset_node = query.args.get("limit"), query.args.get("offset")
    limit: int | None = None
    offset = 0
    if limit_node is not None:
        if not isinstance(limit_node, exp.Limit) or any(v for k, v in limit_node.args.items() if k != "expression"):
            return None
        limit = _int_literal(limit_node.expression)
        if limit is None:
            return None
    if offset_node is not None:
        value = _int_literal(offset_node.expression) if isinstance(offset_node, exp.Offset) else None
        if value is None:
            return None
        offset = value
    return limit, offset


def _int_literal(node: exp.Expression | None) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


def _probe_plan(query: exp.Select | exp.SetOperation, columns: list[str]) -> tuple[exp.Expression, list[int]] | None:
    """The probe query (the gold query without LIMIT and OFFSET, with the ORDER BY keys that are not
    already result columns appended to its select list) and, per ORDER BY term, the probe column that
    holds its value. None when a key cannot be placed without changing the result."""
    width = len(columns)
    sources: list[int] = []
    appended: list[exp.Expression] = []
    if isinstance(query, exp.SetOperation):
        # ORDER BY of a UNION names result columns, by position or by name; nothing is appended.
        names = [name.lower() for name in columns]
        for ordered in query.args["order"].expressions:
            position = _int_literal(ordered.this)
            if position is not None and 1 <= position <= width:
                sources.append(position - 1)
            elif isinstance(ordered.this, exp.Column) and ordered.this.name.lower() in names:
                sources.append(names.index(ordered.this.name.lower()))
            else:
                return None
        return _without_window(query), sources
    projections = query.expressions
    has_star = any(p.is_star for p in projections)
    items = [p.unalias() for p in projections]
    aliases = {p.alias.lower(): i for i, p in enumerate(projections) if isinstance(p, exp.Alias)}
    for ordered in query.args["order"].expressions:
        key = ordered.this
        position = _int_literal(key)
        if position is not None:  # ORDER BY 2: the second result column
            if not 1 <= position <= width:
                return None
            sources.append(position - 1)
            continue
        if isinstance(key, exp.Column) and not key.table and key.name.lower() in aliases:
            key = items[aliases[key.name.lower()]]  # ORDER BY an alias: SQLite resolves it first
        if not has_star and key in items:  # already a result column (a star shifts the positions)
            sources.append(items.index(key))
            continue
        if query.args.get("distinct"):
            return None  # another select item would change which rows DISTINCT keeps
        sources.append(width + len(appended))
        appended.append(key.copy())
    probe = _without_window(query)
    if appended:  # appended after the gold's own columns, so those keep their positions
        probe.select(*(exp.alias_(key, f"{_KEY_ALIAS}{i}") for i, key in enumerate(appended)), copy=False)
    return probe, sources


def _without_window(query: QueryT) -> QueryT:
    """A copy of `query` without its LIMIT and OFFSET: every row, in the same order."""
    probe = query.copy()
    probe.set("limit", None)
    probe.set("offset", None)
    return probe


def _runs(keys: list[tuple]) -> list[tuple[int, int]]:
    """[start, end) of each maximal run of equal adjacent keys longer than one row. Python equality:
    NULL ties with NULL, as ORDER BY treats it."""
    runs = []
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            if i - start > 1:
                runs.append((start, i))
            start = i
    return runs


def _null_key(keys: list[tuple]) -> int | None:
    """The first ORDER BY term whose NULL placement changes the order: among rows equal on the terms
    before it, some are NULL on it and some are not."""
    for k in range(len(keys[0]) if keys else 0):
        groups: dict[tuple, set[bool]] = defaultdict(set)
        for key in keys:
            groups[key[:k]].add(key[k] is None)
        if any(len(nulls) == 2 for nulls in groups.values()):
            return k
    return None


# ---------------------------------------------------------------------------------------------------
# SUM / AVG over floats


def _float_issues(
    db: Database, sql: str, query: exp.Select | exp.SetOperation, gold: ExecutionResult, timeout: float
) -> list[GoldIssue]:
    """Select items that are SUM or AVG and come back as floats, and whose input is float: a SUM of
    integers is an integer and of decimals a Decimal on every engine, so a float SUM means float
    input. AVG returns a float for any input; an AVG over integers divides an exact sum once and is
    stable, so its input is checked by running the query with SUM in its place."""
    if not isinstance(query, exp.Select) or not gold.rows:
        return []
    projections = query.expressions
    if any(p.is_star for p in projections) or len(projections) != len(gold.columns):
        return []  # a star shifts result columns away from select items
    floats = [
        i
        for i, p in enumerate(projections)
        if isinstance(p.unalias(), (exp.Sum, exp.Avg)) and any(isinstance(row[i], float) for row in gold.rows)
    ]
    for i in floats:
        if isinstance(projections[i].unalias(), exp.Sum):
            return [_float_issue("SUM", projections[i])]
    if not floats:
        return []
    probe = _without_window(query)
    probe.set("order", None)
    for i in floats:
        avg = probe.expressions[i].unalias()
        avg.replace(exp.Sum(this=avg.this))
    result = db.execute(probe.sql(dialect=db.dialect), timeout=timeout)
    for i in floats:
        if result.ok and any(isinstance(row[i], float) for row in result.rows):
            return [_float_issue("AVG", projections[i])]
    return []


def _float_issue(function: str, item: exp.Expression) -> GoldIssue:
    return GoldIssue(
        FLOAT_AGGREGATE,
        f"{item.unalias().sql()} adds up floating-point values, so engines that add in another order can"
        f" differ in the last digits (info only: {function} results are compared rounded to 6 decimals).",
    )


def _has(issues: list[GoldIssue], kind: str) -> bool:
    return any(issue.kind == kind for issue in issues)


def _hashable(value: Any) -> Any:
    """`value`, or its repr when it cannot be hashed (an array or JSON value of PostgreSQL or DuckDB)."""
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _show(key: tuple[Any, ...]) -> str:
    text = repr(key[0]) if len(key) == 1 else repr(key)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


__all__ = [
    "FLOAT_AGGREGATE",
    "GOLD_ERROR",
    "GOLD_TIMEOUT",
    "KINDS",
    "LIMIT_TIES",
    "ORDER_TIES",
    "UNSTABLE",
    "GoldIssue",
    "audit_gold",
    "audit_rows",
]


def audit_summary(
    audit: dict[int, list[GoldIssue]], unstable: set[int], ids: list[str], *, excluded: bool
) -> dict[str, Any]:
    """Gold queries whose result is not well defined: counts by kind, a few examples, and whether
    they were left out of the scores (--exclude-unstable-gold)."""
    counts: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for i, issues in audit.items():
        for issue in issues:
            counts[issue.kind] = counts.get(issue.kind, 0) + 1
            if len(examples) < 10:
                examples.append({"id": ids[i], "kind": issue.kind, "detail": issue.detail})
    return {
        "counts": counts,
        "unstable_rows": len(unstable),
        "excluded": len(unstable) if excluded else 0,
        "examples": examples,
    }
