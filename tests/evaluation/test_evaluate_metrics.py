"""Per-example scoring and aggregation on hand-made cases: every error category, every denominator,
the per-complexity and per-length views, BLEU and ROUGE-L."""

import math
import sqlite3

import pytest

from text2sql.evaluation.aggregate import aggregate, length_bucket, notes, summarize
from text2sql.evaluation.evalset import EvalRow, derive_complexity
from text2sql.evaluation.scoring import score_predictions
from text2sql.evaluation.text_metrics import corpus_bleu, rouge_l, sentence_bleu


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a INTEGER, b TEXT, f REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(1, "x", 0.1 + 0.2), (2, "y", 1.5), (3, "z", None)])
        conn.execute("CREATE TABLE wide (" + ", ".join(f"c{i} INTEGER" for i in range(60)) + ")")
        conn.executemany("INSERT INTO wide VALUES (" + ", ".join("?" * 60) + ")", [[i % 2] * 60 for i in range(50)])
    return str(path)


# (gold, prediction, complexity, expected error, expected execution_match, expected valid_sql)
CASES = [
    ("SELECT a FROM t ORDER BY a", "select a from t order by a", "ordering", "", 1.0, True),
    ("SELECT a, b FROM t", "SELECT b, a FROM t", "basic", "", 1.0, True),  # column order is free
    ("SELECT a FROM t", "SELECT a FROM t ORDER BY a DESC", "basic", "", 1.0, True),  # gold unordered
    ("SELECT a FROM t ORDER BY a", "SELECT a FROM t ORDER BY a DESC", "ordering", "wrong_result", 0.0, True),
    ("SELECT f FROM t WHERE a = 1", "SELECT 0.3", "basic", "", 1.0, True),  # float tolerance
    ("SELECT COUNT(*) FROM t", "SELECT COUNT(*) FROM t WHERE a > 1", "aggregation", "wrong_result", 0.0, True),
    ("SELECT a FROM t", "SELEC a FROM t", "basic", "syntax", 0.0, False),
    ("SELECT a FROM t", "", "basic", "syntax", 0.0, False),
    ("SELECT a FROM t", "SELECT nope FROM t", "basic", "schema", 0.0, False),
    ("SELECT a FROM t", "SELECT a FROM missing_table", "basic", "schema", 0.0, False),
    ("SELECT a FROM t", "SELECT abs(-9223372036854775808)", "basic", "runtime", 0.0, False),
    ("SELECT a FROM t", "DELETE FROM t", "basic", "forbidden", 0.0, False),
    (
        "SELECT a FROM t",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r",
        "nested",
        "timeout",
        0.0,
        False,
    ),
    ("SELECT * FROM wide", "SELECT * FROM wide", "basic", "", 1.0, True),  # wide result, same text
    (
        "SELECT * FROM wide",
        "SELECT " + ", ".join(f"c{59 - i}" for i in range(60)) + " FROM wide",
        "basic",
        "",
        1.0,
        True,
    ),
]


def _rows(db, cases):
    return [
        EvalRow(id=f"r{i}", question=f"q{i}", sql=g, db_path=db, complexity=c) for i, (g, _, c, *_r) in enumerate(cases)
    ]


def test_every_error_category_on_hand_made_cases(db):
    rows = _rows(db, CASES)
    scored = score_predictions(rows, [c[1] for c in CASES], timeout=0.3)
    for case, s in zip(CASES, scored):
        _, pred, _, error, match, valid = case
        assert (s.error, s.execution_match, s.valid_sql) == (error, match, valid), (pred, s.error_detail)
    # The database file is never changed by a prediction.
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 3


def test_rows_without_database_and_failing_gold_are_counted_not_dropped(db, tmp_path):
    rows = _rows(db, CASES[:3]) + [
        EvalRow(id="nodb", question="q", sql="SELECT 1", db_path=None, complexity="basic"),
        EvalRow(id="gone", question="q", sql="SELECT 1", db_path=str(tmp_path / "gone.sqlite"), complexity="basic"),
        EvalRow(id="badgold", question="q", sql="SELECT nope FROM t", db_path=db, complexity="join"),
    ]
    preds = [c[1] for c in CASES[:3]] + ["SELECT 1", "SELECT 1", "SELECT a FROM t"]
    scored = score_predictions(rows, preds)
    assert [s.error for s in scored[3:]] == ["no_database", "no_database", "gold_error"]
    assert scored[3].execution_match is None and scored[3].valid_sql is None
    assert scored[5].execution_match is None and scored[5].valid_sql is True  # prediction itself runs

    m = aggregate(scored)
    assert m["num_examples"] == 6
    assert m["num_executable"] == 4 and m["num_not_executable"] == 2
    assert m["gold_errors"] == 1 and m["num_execution_scored"] == 3
    assert m["execution_accuracy"] == 1.0  # 3 of 3 scored rows; the others are reported, not counted
    assert m["valid_sql_rate"] == 1.0  # 4 of 4 rows with a database
    assert m["exact_match"] == pytest.approx(3 / 6)  # EM over every row: r0, nodb, gone
    assert m["error_counts"] == {"no_database": 2, "gold_error": 1}
    assert m["by_complexity"]["join"]["execution_accuracy"] is None
    assert m["by_complexity"]["join"]["gold_errors"] == 1
    text = " ".join(notes(m))
    assert "2 of 6 rows could not be executed" in text and "1 rows were left out" in text


def test_aggregate_by_complexity_and_length(db):
    rows = _rows(db, CASES)
    m = aggregate(score_predictions(rows, [c[1] for c in CASES], timeout=0.3))
    assert list(m["by_complexity"]) == ["basic", "aggregation", "ordering", "nested"]  # known order
    ordering = m["by_complexity"]["ordering"]
    assert ordering["num_examples"] == 2 and ordering["execution_accuracy"] == 0.5
    assert m["by_complexity"]["aggregation"]["execution_accuracy"] == 0.0
    total = sum(g["num_examples"] for g in m["by_complexity"].values())
    assert total == sum(g["num_examples"] for g in m["by_length"].values()) == len(CASES)
    assert set(m["by_length"]) <= {"1-10", "11-20", "21-40", "41-80", "81+"}
    correct = sum(1 for c in CASES if c[4] == 1.0)
    assert m["execution_accuracy"] == pytest.approx(correct / len(CASES))
    assert m["valid_sql_rate"] == pytest.approx(sum(1 for c in CASES if c[5]) / len(CASES))
    for key in ("exact_match", "f1_score", "execution_accuracy", "valid_sql_rate", "num_examples", "by_complexity"):
        assert key in m


def test_string_metrics_per_example(db):
    [s] = score_predictions(
        [EvalRow(id="a", question="q", sql="SELECT name, salary FROM employees WHERE salary > 50000")],
        ["SELECT salary, name FROM employees WHERE salary > 50000"],
    )
    assert s.exact_match == 0.0 and s.f1_score == 1.0 and s.token_jaccard == 1.0  # seed 000's example
    assert s.error == "no_database" and s.gold_length == 10


def test_empty_group_rates_are_none_not_zero():
    m = summarize([])
    assert m["num_examples"] == 0 and m["execution_accuracy"] is None and m["exact_match"] is None


def test_length_buckets():
    assert [length_bucket(n) for n in (0, 1, 10, 11, 40, 41, 80, 81, 500)] == [
        "1-10",
        "1-10",
        "1-10",
        "11-20",
        "21-40",
        "41-80",
        "41-80",
        "81+",
        "81+",
    ]


@pytest.mark.parametrize(
    "sql, label",
    [
        ("select a from t", "basic"),
        ("SELECT count(*) FROM t", "aggregation"),
        ("SELECT a FROM t ORDER BY a", "ordering"),
        ("SELECT a FROM t JOIN u ON t.a = u.a", "join"),
        ("SELECT a FROM t WHERE a IN (SELECT a FROM u)", "nested"),
        ("SELECT a FROM t UNION SELECT a FROM u", "set operation"),
    ],
)
def test_derived_complexity(sql, label):
    assert derive_complexity(sql) == label


# Reference values computed with sacrebleu 2.6 (tokenize="none"; sentence: smooth_method="add-k",
# smooth_value=1) and rouge-score 0.1.2 (rougeL, whitespace tokenizer) on sql_tokenize'd text.
PREDS = [
    "SELECT name FROM airports WHERE country = 'UK'",
    "SELECT COUNT(*) FROM flights",
    "SELECT a , b FROM t ORDER BY a DESC LIMIT 3",
]
GOLDS = [
    "SELECT name FROM airports WHERE country = 'United Kingdom'",
    "SELECT COUNT(*) FROM flights WHERE x > 3",
    "SELECT a , b FROM t ORDER BY b DESC LIMIT 3",
]


def test_bleu_matches_sacrebleu():
    assert corpus_bleu(PREDS, GOLDS) == pytest.approx(0.6893603315131788)
    expected = [0.7589011437426233, 0.5647181220077595, 0.7598356856515927]
    assert [sentence_bleu(p, g) for p, g in zip(PREDS, GOLDS)] == pytest.approx(expected)


def test_rouge_l_matches_rouge_score():
    expected = [0.823529411764706, 0.7777777777777778, 0.9166666666666666]
    assert [rouge_l(p, g) for p, g in zip(PREDS, GOLDS)] == pytest.approx(expected)


def test_text_metric_edge_cases():
    assert sentence_bleu("SELECT a FROM t", "SELECT a FROM t") == pytest.approx(1.0)
    assert rouge_l("SELECT a FROM t", "select a from t") == 1.0  # same tokens after lowercasing
    assert sentence_bleu("", "SELECT 1") == 0.0 and rouge_l("", "SELECT 1") == 0.0
    assert rouge_l("", "") == 1.0
    assert corpus_bleu(["x y"], ["a b c d e"]) == 0.0
    assert 0 < sentence_bleu("SELECT a", "SELECT a FROM t WHERE b = 1") < 1
    assert math.isclose(rouge_l("a b c d", "a c"), 2 * (2 / 4) * (2 / 2) / (2 / 4 + 1))


def test_text_metrics_in_aggregate(db):
    rows = [EvalRow(id=str(i), question="q", sql=g, complexity="basic") for i, g in enumerate(GOLDS)]
    m = aggregate(score_predictions(rows, PREDS, text_metrics=True), text_metrics=True)
    assert m["bleu"] == pytest.approx(0.6893603315131788)
    assert m["rouge_l"] == pytest.approx(sum([0.823529411764706, 0.7777777777777778, 0.9166666666666666]) / 3)
