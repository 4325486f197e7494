"""Decide whether a predicted query's result equals the gold query's result (execution accuracy).

Only values count: column names and aliases are ignored, and the predicted query may list the gold
columns in another order. Rows are compared as multisets (duplicates count) unless the gold query
orders its result, in which case the sequence must match too.

Column order is resolved without trying every permutation, which is what makes test-suite-sql-eval
hang on wide results (its issue #12): each column gets a signature that does not depend on column
order, only columns with equal signatures may be paired, and the remaining ambiguity is searched
with pruning (see `_match_unordered_permuted`).
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import uuid
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from text2sql.sql.results import ExecutionResult

Rows = Sequence[Sequence[Any]]

# Most projection checks the column-permutation search may make before it gives up and reports a
# mismatch. Real results resolve in one check per column; only adversarial results (many columns
# whose values are interchangeable in every row-context) get near this.
_SEARCH_BUDGET = 10_000


def results_match(
    gold: ExecutionResult | Rows,
    pred: ExecutionResult | Rows,
    *,
    order_matters: bool,
    float_tol: float = 1e-6,
) -> bool:
    """True when `pred` holds the same values as `gold`, up to column order.

    Floats are compared after rounding to the decimal places that `float_tol` implies (1e-6 → 6
    places), so 1 equals 1.0 and 0.333333 equals 1/3; two values straddling a rounding boundary
    can differ by less than `float_tol` and still be unequal. NULL equals NULL. A failed execution
    on either side never matches. When both results were cut at a row limit only the kept rows can
    be compared; when only one was, they differ.
    """
    gold_rows, gold_width, gold_truncated = _unwrap(gold)
    pred_rows, pred_width, pred_truncated = _unwrap(pred)
    if gold_rows is None or pred_rows is None:
        return False
    if gold_truncated != pred_truncated or len(gold_rows) != len(pred_rows):
        return False
    if gold_width is not None and pred_width is not None and gold_width != pred_width:
        return False
    if not gold_rows:
        return True

    ndigits = _decimal_places(float_tol)
    g = _normalize_rows(gold_rows, ndigits)
    p = _normalize_rows(pred_rows, ndigits)
    if order_matters:
        if g == p:
            return True
        # Same sequence of rows up to column order ⇔ same multiset of whole columns.
        return _same_multiset(zip(*g), zip(*p))
    if _same_multiset(g, p):
        return True
    return _match_unordered_permuted(g, p)


def _same_multiset(a: Iterable[Hashable], b: Iterable[Hashable]) -> bool:
    # dict's equality runs in C; Counter's own __eq__ loops in Python (3.10+) and was the slowest
    # step on results of a few thousand rows. Counts here are never zero, so the two agree.
    return dict.__eq__(Counter(a), Counter(b))


def _unwrap(result: ExecutionResult | Rows) -> tuple[list | None, int | None, bool]:
    """(rows or None when execution failed, column count when known, truncated)."""
    if isinstance(result, ExecutionResult):
        if not result.ok:
            return None, None, False
        rows = [tuple(row) for row in result.rows]
        width = len(rows[0]) if rows else len(result.columns)
        return rows, width, result.truncated
    rows = [tuple(row) for row in result]
    widths = {len(row) for row in rows}
    if len(widths) > 1:
        return None, None, False  # not a table; nothing sensible to compare
    return rows, (widths.pop() if widths else None), False


def _decimal_places(float_tol: float) -> int:
    if not float_tol > 0:
        raise ValueError(f"float_tol must be positive, got {float_tol}")
    return max(0, round(-math.log10(float_tol)))


# Types that compare correctly as they are; a column holding only these is left untouched, which
# spares a Python call per value on the large all-text/all-integer results that are most common.
_PLAIN_TYPES = frozenset({int, str, bytes, type(None)})


def _normalize_rows(rows: list[tuple], ndigits: int) -> list[tuple]:
    if set(map(type, chain.from_iterable(rows))) <= _PLAIN_TYPES:
        return rows
    columns = list(zip(*rows))
    for i, column in enumerate(columns):
        if not set(map(type, column)) <= _PLAIN_TYPES:
            columns[i] = tuple(_normalize(v, ndigits) for v in column)
    return list(zip(*columns))


def _normalize(value: Any, ndigits: int) -> Hashable:
    """A hashable value equal for results that should compare equal, whatever engine returned it:
    whole floats become ints, Decimals (PostgreSQL's numeric, DuckDB's DECIMAL) numbers, dates and
    times their ISO text (as SQLite stores them), UUIDs their text, arrays tuples."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return float(value)
        value = float(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return value
        value = round(value, ndigits)
        return int(value) if value.is_integer() else value
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time, uuid.UUID)):
        return value.isoformat() if not isinstance(value, uuid.UUID) else str(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normalize(v, ndigits) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _normalize(v, ndigits)) for k, v in value.items()))
    return value


def _match_unordered_permuted(g: list[tuple], p: list[tuple]) -> bool:
    """Is there a column bijection under which `p` and `g` are the same multiset of rows?

    1. Rows are keyed by their multiset of values, which no column order changes; the two results
       must hold the same multiset of row keys.
    2. Identical columns are merged (kept with their count), so a result with many equal columns
       (all NULL, say) adds nothing to the search.
    3. Each column's signature is the multiset of (row key, value) pairs plus its count. A gold
       column can only map to a predicted column with the same signature; usually that leaves one
       candidate per column and the mapping is forced.
    4. Whatever ambiguity remains is searched column by column, checking after each choice that the
       rows projected onto the columns chosen so far form the same multiset on both sides, and
       giving up (no match) after `_SEARCH_BUDGET` checks, so time stays bounded on any input.
    """
    row_keys: dict[frozenset, int] = {}
    g_row_ids = [row_keys.setdefault(frozenset(Counter(row).items()), len(row_keys)) for row in g]
    p_row_ids = [row_keys.get(frozenset(Counter(row).items()), -1) for row in p]
    if not _same_multiset(g_row_ids, p_row_ids):
        return False

    g_cols, g_counts = _distinct_columns(g)
    p_cols, p_counts = _distinct_columns(p)
    if len(g_cols) != len(p_cols):
        return False
    g_sigs = [_column_signature(c, n, g_row_ids) for c, n in zip(g_cols, g_counts)]
    p_sigs = [_column_signature(c, n, p_row_ids) for c, n in zip(p_cols, p_counts)]
    if not _same_multiset(g_sigs, p_sigs):
        return False
    by_sig: dict[frozenset, list[int]] = {}
    for index, sig in enumerate(p_sigs):
        by_sig.setdefault(sig, []).append(index)
    candidates = [by_sig[sig] for sig in g_sigs]
    # Forced columns first: they narrow the projections that the ambiguous ones are checked under.
    order = sorted(range(len(g_cols)), key=lambda j: len(candidates[j]))
    return _search(order, candidates, g_cols, p_cols, len(g))


def _distinct_columns(rows: list[tuple]) -> tuple[list[tuple], list[int]]:
    counts = Counter(zip(*rows))
    return list(counts), list(counts.values())


def _column_signature(column: tuple, count: int, row_ids: list[int]) -> frozenset:
    return frozenset(Counter(zip(row_ids, column)).items()) | {("count", count)}


def _search(
    order: list[int],
    candidates: list[list[int]],
    g_cols: list[tuple],
    p_cols: list[tuple],
    n_rows: int,
) -> bool:
    """Depth-first search for a column mapping, iterative so that wide results cannot hit the
    recursion limit. A row's projection onto the chosen columns is interned to an int, so each
    check costs O(rows) however many columns are chosen."""
    interned: dict[tuple, int] = {}

    def extend(prefix_ids: list[int], column: tuple) -> list[int]:
        return [interned.setdefault(pair, len(interned)) for pair in zip(prefix_ids, column)]

    g_stack, p_stack = [[0] * n_rows], [[0] * n_rows]
    choice = [-1] * len(order)
    used: set[int] = set()
    checks, level = 0, 0
    while level >= 0:
        if level == len(order):
            return True
        gold_col = order[level]
        options = candidates[gold_col]
        if choice[level] >= 0:  # back here after the deeper levels failed: undo this choice
            used.discard(options[choice[level]])
            g_stack.pop()
            p_stack.pop()
        for i in range(choice[level] + 1, len(options)):
            if options[i] in used:
                continue
            checks += 1
            if checks > _SEARCH_BUDGET:
                return False
            g_ids = extend(g_stack[-1], g_cols[gold_col])
            p_ids = extend(p_stack[-1], p_cols[options[i]])
            if _same_multiset(g_ids, p_ids):
                choice[level] = i
                used.add(options[i])
                g_stack.append(g_ids)
                p_stack.append(p_ids)
                level += 1
                break
        else:
            choice[level] = -1
            level -= 1
    return False


@lru_cache(maxsize=65_536)  # the same gold queries are checked for every run being scored
def gold_orders_results(sql: str) -> bool:
    """True when the outermost query of `sql` has ORDER BY, so row order is part of the answer.

    An ORDER BY inside a subquery or CTE does not count. Parsed with sqlglot; a regex over the SQL
    with literals and parenthesised parts removed is used only when sqlglot cannot parse it.
    """
    try:
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except (SqlglotError, RecursionError):
        return _orders_by_regex(sql)
    if not statements:
        return False
    node = statements[0]
    while isinstance(node, (exp.Subquery, exp.Paren)) and not node.args.get("order"):
        node = node.this
    return bool(node.args.get("order"))


# String literals, quoted identifiers and comments, whose text could spell "order by".
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?\*/", re.S)
_INNERMOST_PARENS = re.compile(r"\([^()]*\)")
_ORDER_BY = re.compile(r"\border\s+by\b", re.I)


def _orders_by_regex(sql: str) -> bool:
    text = _QUOTED.sub(" ", sql)
    while True:
        stripped = _INNERMOST_PARENS.sub(" ", text)
        if stripped == text:
            break
        text = stripped
    return bool(_ORDER_BY.search(text))
