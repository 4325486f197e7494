"""String metrics for one (predicted, gold) SQL pair: exact match, normalised exact match, token
F1 and token Jaccard.

These compare text, not behaviour; execution accuracy (`compare.results_match`) is the metric that
says whether a query is right. They are kept because fine-tuning scripts report EM and token F1 and users
compare runs against those numbers.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError


def exact_match(pred: str, gold: str) -> float:
    """1.0 when the strings are equal ignoring case and surrounding whitespace (the scripts' plain EM)."""
    return 1.0 if pred.strip().lower() == gold.strip().lower() else 0.0


def normalized_exact_match(pred: str, gold: str) -> float:
    """1.0 when both queries are the same after sqlglot normalisation.

    Both are parsed as SQLite and regenerated: keyword case, whitespace, optional `AS`, `!=`/`<>`,
    trailing `;` and identifier quoting stop mattering, and identifiers compare case-insensitively
    as SQLite does (`select name from "T"` equals `SELECT name FROM t`). String literals keep their
    case. When either query fails to parse, both are compared with case and whitespace runs
    normalised instead.
    """
    pred_norm, gold_norm = normalize_sql(pred), normalize_sql(gold)
    if pred_norm is None or gold_norm is None:
        pred_norm, gold_norm = _normalize_text(pred), _normalize_text(gold)
    return 1.0 if pred_norm == gold_norm else 0.0


@lru_cache(maxsize=65_536)  # gold queries repeat across runs and checkpoints; parsing is ~0.3 ms
def normalize_sql(sql: str) -> str | None:
    """Canonical SQLite text of `sql` (every statement, joined by "; "), or None if unparsable."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="sqlite") if s is not None]
    except (SqlglotError, RecursionError):
        return None
    if not statements:
        return None
    for statement in statements:
        for identifier in statement.find_all(exp.Identifier):
            # SQLite identifiers are case-insensitive even when quoted; quoting every one makes
            # `"t"`, `[t]`, `` `t` `` and `t` generate the same text.
            identifier.set("this", identifier.this.lower())
            identifier.set("quoted", True)
    try:
        return "; ".join(s.sql(dialect="sqlite", normalize_functions="upper") for s in statements)
    except (SqlglotError, RecursionError):
        return None


def wrong_values(pred: str, gold: str) -> bool:
    """True when the two queries are the same but for their literal values (`country = 'japan'`
    for `country = 'Japan'`): the model had the query right and copied a value wrongly."""
    if not pred.strip() or " ".join(pred.split()) == " ".join(gold.split()):
        return False
    masked_pred, values_pred = _masked(pred)
    masked_gold, values_gold = _masked(gold)
    return masked_pred == masked_gold and values_pred != values_gold


_LITERAL = re.compile(r"'(?:[^']|'')*'|\b\d+(?:\.\d+)?\b")


def _masked(sql: str) -> tuple[str, list[str]]:
    """The query with each string and number literal replaced by ?, and the literals in order."""
    values = _LITERAL.findall(sql)
    return _normalize_text(_LITERAL.sub("?", sql)), values


def _normalize_text(sql: str) -> str:
    return " ".join(sql.lower().split()).rstrip(" ;")


def sql_tokenize(sql: str) -> list[str]:
    """SQL tokens for the string metrics: lowercase, split on whitespace, with `( ) , ;` as tokens of their own."""
    text = sql.lower().strip()
    for punct in ("(", ")", ",", ";"):
        text = text.replace(punct, f" {punct} ")
    return text.split()


def token_f1(pred: str, gold: str) -> float:
    """F1 of the predicted token set against the gold token set: 2|P∩G| / (|P| + |G|).

    Tokens come from `sql_tokenize` and are compared as sets, so reordering the select list keeps
    the score at 1.0. Both empty scores 1.0. Some scripts report a different number under the same
    name: see `token_jaccard`.
    """
    p, g = set(sql_tokenize(pred)), set(sql_tokenize(gold))
    if not p and not g:
        return 1.0
    return 2 * len(p & g) / (len(p) + len(g))


def token_jaccard(pred: str, gold: str) -> float:
    """|P∩G| / |P∪G| over token sets: the number set-based scripts report as "F1".

    Such scripts build 0/1 presence vectors over the union of both token sets and called
    `sklearn.metrics.f1_score(gold_vec, pred_vec, average="micro")`. Micro-averaged F1 over all
    classes equals accuracy, and since no position of the union is 0 in both vectors, accuracy is
    the share of union tokens present in both: the Jaccard index. Always <= `token_f1`. Both empty
    scores 1.0 (sklearn would warn and return 0.0 on empty vectors).
    """
    p, g = set(sql_tokenize(pred)), set(sql_tokenize(gold))
    if not p and not g:
        return 1.0
    return len(p & g) / len(p | g)
