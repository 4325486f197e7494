"""String metrics: seed 000's EM and token scores, and sqlglot-normalised EM."""

from __future__ import annotations

import pytest

from text2sql.evaluation.metrics import (
    exact_match,
    normalize_sql,
    normalized_exact_match,
    sql_tokenize,
    token_f1,
    token_jaccard,
)

GOLD = "SELECT * FROM employees WHERE salary > 50000"


def test_exact_match_seed_000_examples():
    assert exact_match(GOLD, GOLD) == 1.0
    assert exact_match("SELECT * FROM employees WHERE salary >= 50000", GOLD) == 0.0


def test_exact_match_ignores_case_and_surrounding_whitespace_only():
    assert exact_match("  select * from EMPLOYEES where salary > 50000\n", GOLD) == 1.0
    # Inner whitespace still counts, as in seed 000.
    assert exact_match("SELECT *  FROM employees WHERE salary > 50000", GOLD) == 0.0
    assert exact_match(GOLD + ";", GOLD) == 0.0


def test_sql_tokenize_matches_seed_000():
    assert sql_tokenize("SELECT name, salary FROM employees WHERE salary > 50000") == [
        "select",
        "name",
        ",",
        "salary",
        "from",
        "employees",
        "where",
        "salary",
        ">",
        "50000",
    ]
    assert sql_tokenize("COUNT(*);") == ["count", "(", "*", ")", ";"]


def test_token_f1_seed_000_reordered_select_list():
    gold = "SELECT name, salary FROM employees WHERE salary > 50000"
    pred = "SELECT salary, name FROM employees WHERE salary > 50000"
    assert token_f1(pred, gold) == 1.0
    assert token_jaccard(pred, gold) == 1.0


@pytest.mark.parametrize(
    ("pred", "gold", "f1", "jaccard"),
    [
        # P = {select, name, from, t}, G = P + {where, a, =, 1}: |P∩G| = 4, |P| = 4, |G| = 8.
        ("SELECT name FROM t", "SELECT name FROM t WHERE a = 1", 8 / 12, 4 / 8),
        # P = {select, id, from, t}, G = {select, name, from, t}: |P∩G| = 3, |P∪G| = 5.
        ("SELECT id FROM t", "SELECT name FROM t", 6 / 8, 3 / 5),
        # Repeated tokens count once: sets, not bags.
        ("SELECT a , a , a FROM t", "SELECT a FROM t", 2 * 4 / (5 + 4), 4 / 5),
        ("DROP TABLE x", "SELECT name FROM t", 0.0, 0.0),
        ("", "", 1.0, 1.0),
        ("", "SELECT 1", 0.0, 0.0),
    ],
)
def test_partial_overlap_by_hand(pred, gold, f1, jaccard):
    assert token_f1(pred, gold) == pytest.approx(f1)
    assert token_jaccard(pred, gold) == pytest.approx(jaccard)
    assert token_f1(gold, pred) == pytest.approx(f1)  # both are symmetric


def _seed_000_sklearn_micro_f1(pred: str, gold: str) -> float:
    """Seed 000's computation, with sklearn's micro-averaged F1 written out: pool true positives,
    false positives and false negatives over both classes (0 and 1) of the presence vectors."""
    pred_tokens, gold_tokens = sql_tokenize(pred), sql_tokenize(gold)
    vocabulary = set(pred_tokens + gold_tokens)
    pred_vec = [1 if t in pred_tokens else 0 for t in vocabulary]
    gold_vec = [1 if t in gold_tokens else 0 for t in vocabulary]
    tp = fp = fn = 0
    for cls in (0, 1):
        tp += sum(p == cls and g == cls for p, g in zip(pred_vec, gold_vec))
        fp += sum(p == cls and g != cls for p, g in zip(pred_vec, gold_vec))
        fn += sum(p != cls and g == cls for p, g in zip(pred_vec, gold_vec))
    return 2 * tp / (2 * tp + fp + fn)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("SELECT name FROM t", "SELECT name FROM t WHERE a = 1"),
        ("SELECT COUNT(*) FROM head WHERE age > 56", "SELECT COUNT(*) FROM departments WHERE age > 56"),
        ("SELECT a, b FROM x JOIN y ON x.id = y.id", "SELECT b FROM y"),
    ],
)
def test_jaccard_is_what_seed_000_reported_and_f1_is_not(pred, gold):
    seed_number = _seed_000_sklearn_micro_f1(pred, gold)
    assert token_jaccard(pred, gold) == pytest.approx(seed_number)
    assert token_f1(pred, gold) > token_jaccard(pred, gold)


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ('select  name from "T" ;', "SELECT name FROM t"),
        ("SELECT [Name] FROM `Employees`", "select name from employees"),
        ("SELECT a b FROM t", "SELECT a AS b FROM t"),
        ("SELECT * FROM t WHERE a != 1", "select *\nfrom t\nwhere a <> 1"),
        ("select count(*) from t", "SELECT COUNT(*) FROM t;"),
    ],
)
def test_normalized_exact_match_equal(pred, gold):
    assert normalized_exact_match(pred, gold) == 1.0
    assert exact_match(pred, gold) == 0.0  # the plain EM would have missed it


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("SELECT name FROM t WHERE x = 'Abc'", "SELECT name FROM t WHERE x = 'abc'"),
        ("SELECT * FROM employees WHERE salary >= 50000", GOLD),
        ("SELECT a FROM t", "SELECT b FROM t"),
    ],
)
def test_normalized_exact_match_different(pred, gold):
    assert normalized_exact_match(pred, gold) == 0.0


def test_unparsable_sql_falls_back_to_whitespace_and_case():
    assert normalize_sql("SELECT FROM WHERE (") is None
    assert normalized_exact_match("SELECT  FROM WHERE (", "select from where (;") == 1.0
    assert normalized_exact_match("SELECT FROM WHERE (", "SELECT FROM WHERE )") == 0.0
    # A broken prediction never equals a valid gold query.
    assert normalized_exact_match("SELECT name FROM t WHERE", "SELECT name FROM t") == 0.0
