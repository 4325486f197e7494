"""Result comparison for execution accuracy: values only, multisets, column order resolved fast."""

from __future__ import annotations

import random
import sqlite3

import pytest

from text2sql.sql.equivalence import gold_orders_results, results_match
from text2sql.sql.execution import ExecutionResult, execute_sql


def test_identical_rows_match():
    assert results_match([(1, "a"), (2, "b")], [(1, "a"), (2, "b")], order_matters=False)


def test_row_order_matters_only_when_gold_orders():
    gold, pred = [(1,), (2,), (3,)], [(3,), (1,), (2,)]
    assert results_match(gold, pred, order_matters=False)
    assert not results_match(gold, pred, order_matters=True)
    assert results_match(gold, list(gold), order_matters=True)


def test_duplicates_count():
    assert not results_match([(1,), (1,), (2,)], [(1,), (2,), (2,)], order_matters=False)
    assert not results_match([(1,), (1,), (2,)], [(1,), (2,)], order_matters=False)
    assert results_match([(1,), (2,), (1,)], [(1,), (1,), (2,)], order_matters=False)


def test_int_and_float_forms_of_a_number_match():
    assert results_match([(1,)], [(1.0,)], order_matters=True)
    assert results_match([(0.333333,)], [(1 / 3,)], order_matters=True)
    assert results_match([(2.5,)], [(2.5000000001,)], order_matters=True)


def test_float_tolerance_is_respected():
    assert not results_match([(0.33,)], [(1 / 3,)], order_matters=True)
    assert not results_match([(1.0,)], [(1.001,)], order_matters=True)
    assert results_match([(1.0,)], [(1.001,)], order_matters=True, float_tol=1e-2)


def test_strings_and_numbers_are_different_values():
    assert not results_match([("1",)], [(1,)], order_matters=False)
    assert not results_match([("abc",)], [("ABC",)], order_matters=False)


def test_nulls_equal_nulls_only():
    assert results_match([(None, 1)], [(None, 1)], order_matters=True)
    assert not results_match([(None,)], [(0,)], order_matters=True)
    assert not results_match([(None,)], [("",)], order_matters=True)


def test_column_names_and_aliases_are_ignored(tmp_path):
    db = tmp_path / "t.sqlite"
    conn = sqlite3.connect(db)
    conn.executescript("CREATE TABLE t (a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');")
    conn.close()
    gold = execute_sql(db, "SELECT a, b FROM t")
    pred = execute_sql(db, "SELECT a AS number, b AS label FROM t")
    assert gold.columns != pred.columns
    assert results_match(gold, pred, order_matters=False)
    assert results_match(gold, pred.rows, order_matters=False)


def test_permuted_columns_match():
    gold = [(1, "a", 10.0), (2, "b", 20.0), (3, "c", 30.0)]
    pred = [(row[2], row[0], row[1]) for row in gold]
    assert results_match(gold, pred, order_matters=True)
    random.Random(0).shuffle(pred)
    assert results_match(gold, pred, order_matters=False)
    assert not results_match(gold, pred, order_matters=True)


def test_permuted_columns_must_keep_rows_together():
    # Each column holds the same values, but the pairing of a with b differs.
    gold = [(1, 2), (2, 1), (3, 3)]
    assert results_match(gold, [(2, 1), (1, 2), (3, 3)], order_matters=False)
    assert not results_match(gold, [(1, 1), (2, 2), (3, 3)], order_matters=False)
    assert not results_match([(1, 1), (2, 2)], [(1, 2), (2, 1)], order_matters=False)


def test_columns_with_equal_values_in_every_row_context():
    # Four 0/1 columns whose value multisets are identical: only the row-projection search can
    # tell a column permutation (matches) from a different table (does not).
    gold = [(0, 0, 1, 1), (0, 1, 0, 1), (1, 0, 0, 1), (1, 1, 0, 0), (1, 0, 1, 0), (0, 1, 1, 0)]
    permuted = [(r[3], r[1], r[0], r[2]) for r in gold]
    assert results_match(gold, permuted, order_matters=False)
    other = [(0, 0, 1, 1), (0, 1, 0, 1), (1, 0, 0, 1), (1, 1, 0, 0), (1, 0, 1, 0), (1, 0, 1, 0)]
    assert not results_match(gold, other, order_matters=False)


@pytest.fixture
def comparisons(monkeypatch):
    """Counts the multiset comparisons `results_match` makes: its work, whatever the machine's speed."""
    from text2sql.sql import equivalence

    calls = []
    real = equivalence._same_multiset

    def counted(a, b):
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(equivalence, "_same_multiset", counted)
    return calls


def test_wide_result_with_permuted_columns_takes_one_check_per_column(comparisons):
    rng = random.Random(12)
    gold = [tuple(rng.choice([0, 1, 2, None, 3.5]) for _ in range(30)) for _ in range(1000)]
    columns = list(range(30))
    rng.shuffle(columns)
    pred = [tuple(row[c] for c in columns) for row in gold]
    rng.shuffle(pred)
    wrong = [row[:-1] + (7,) for row in pred[:1]] + pred[1:]

    assert results_match(gold, pred, order_matters=False)
    assert len(comparisons) <= 5 + 30  # a few whole-result checks, then one forced check per column
    assert not results_match(gold, wrong, order_matters=False)
    assert not results_match(gold, pred, order_matters=True)


def test_wide_result_of_identical_columns_is_one_column(comparisons):
    # 30 interchangeable columns would be 30! permutations to a brute-force search.
    gold = [tuple([i % 2] * 30) for i in range(1000)]
    assert results_match(gold, list(reversed(gold)), order_matters=False)
    assert len(comparisons) <= 3


@pytest.mark.parametrize(
    ("gold", "pred"),
    [
        ([(1, 2)], [(1,)]),  # fewer columns
        ([(1,)], [(1,), (1,)]),  # more rows
        ([(1,)], []),  # no rows
        ([], [(1,)]),
    ],
)
def test_different_shapes_do_not_match(gold, pred):
    assert not results_match(gold, pred, order_matters=False)


def test_empty_results():
    assert results_match([], [], order_matters=True)
    one_col = ExecutionResult(columns=["a"], rows=[])
    two_cols = ExecutionResult(columns=["a", "b"], rows=[])
    assert results_match(one_col, ExecutionResult(columns=["z"], rows=[]), order_matters=False)
    assert not results_match(one_col, two_cols, order_matters=False)


def test_failed_or_truncated_execution_never_matches():
    failed = ExecutionResult(error="no such table: t", category="schema")
    assert not results_match(failed, [], order_matters=False)
    assert not results_match(ExecutionResult(columns=["a"], rows=[]), failed, order_matters=False)
    full = ExecutionResult(columns=["a"], rows=[(1,), (2,)])
    cut = ExecutionResult(columns=["a"], rows=[(1,), (2,)], truncated=True)
    assert not results_match(cut, full, order_matters=False)


@pytest.mark.parametrize(
    ("sql", "ordered"),
    [
        ("SELECT name FROM t ORDER BY name", True),
        ("select name from t order  by 1 desc limit 3;", True),
        ("SELECT name FROM t", False),
        ("SELECT name FROM (SELECT name FROM t ORDER BY name LIMIT 3)", False),
        ("WITH x AS (SELECT a FROM t ORDER BY a) SELECT a FROM x", False),
        ("SELECT a FROM t WHERE a IN (SELECT a FROM u ORDER BY a LIMIT 2)", False),
        ("SELECT a FROM t UNION SELECT b FROM u ORDER BY 1", True),
        ("SELECT 'order by' FROM t", False),
        ('SELECT "order by" FROM t', False),
        ("(SELECT a FROM t ORDER BY a)", True),
        # sqlglot cannot parse these; the regex fallback decides.
        ("SELECT a FROM t WHERE (b = ORDER BY a", True),
        ("SELECT a FROM t WHERE x = ( SELECT ORDER BY )) junk ((", False),
    ],
)
def test_gold_orders_results(sql, ordered):
    assert gold_orders_results(sql) is ordered
