"""Benchmark-compatible scoring: Spider's exact-set match, BIRD's set comparison and R-VES, SQLite
step budgets, and the gold audit, through `evaluate`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from text2sql.data import bundled
from text2sql.evaluation.efficiency import reward
from text2sql.evaluation.evaluate import evaluate, format_summary
from text2sql.sql.execution import TIMEOUT, open_database
from text2sql.sql.match import judge
from text2sql.sql.results import ExecutionResult

FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"


def test_a_step_budget_stops_the_same_query_at_the_same_point():
    with open_database(bundled.db_path("airline"), max_steps=50_000) as db:
        first = db.execute(FOREVER, timeout=30)
        again = db.execute(FOREVER, timeout=30)
        assert first.category == TIMEOUT and "50,000 SQLite steps" in first.error
        assert again.error == first.error
        assert db.execute("SELECT COUNT(*) FROM flights").ok  # ordinary queries fit easily


def test_bird_mode_compares_sets_of_rows():
    gold = ExecutionResult(columns=["a"], rows=[(1,), (2,), (2,)])
    pred = ExecutionResult(columns=["a"], rows=[(2,), (1,)])
    assert judge("SELECT a FROM t", gold, pred, "bird")[0] == 1.0  # duplicates and order ignored
    assert judge("SELECT a FROM t", gold, pred)[0] == 0.0  # the default compares multisets
    swapped = (ExecutionResult(columns=["a", "b"], rows=[(1, 2)]), ExecutionResult(columns=["b", "a"], rows=[(2, 1)]))
    assert judge("SELECT a, b FROM t", *swapped)[0] == 1.0 and judge("SELECT a, b FROM t", *swapped, "bird")[0] == 0.0


def test_r_ves_rewards_follow_birds_grading():
    assert [reward(r) for r in (3.0, 2.0, 1.5, 1.0, 0.7, 0.3, 0.1)] == [1.25, 1.25, 1.0, 1.0, 0.75, 0.5, 0.25]


@pytest.fixture(scope="module")
def gold_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gold") / "gold.sql"
    path.write_text("\n".join(r["sql"] for r in list(bundled.iter_rows("test"))[:20]) + "\n", encoding="utf-8")
    return path


def test_gold_as_predictions_in_every_mode(gold_file, tmp_path):
    out = evaluate("bundled", tmp_path / "e", predictions=gold_file, max_samples=20, max_steps=1_000_000,
                   result_match="bird", efficiency_runs=2, progress=False)  # fmt: skip
    m = out.metrics
    assert m["execution_accuracy"] == 1.0 and m["exact_set_match"] == 1.0
    assert m["efficiency"]["timed_rows"] == 20 and 0.25 <= m["r_ves"] <= 1.25
    assert m["run"]["step_budget"] == 1_000_000 and m["run"]["result_match"] == "bird"
    summary = format_summary(m)
    assert "Spider exact-set match 100.0 %" in summary and "R-VES" in summary and "virtual-machine steps" in summary
    html = (tmp_path / "e" / "report.html").read_text(encoding="utf-8")
    assert "Spider exact-set" in html and "R-VES" in html


def test_unstable_gold_is_reported_and_can_be_left_out(tmp_path):
    db = tmp_path / "db" / "scores" / "scores.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE s (name TEXT, score INTEGER)")
        conn.executemany("INSERT INTO s VALUES (?, ?)", [("a", 9), ("b", 9), ("c", 5), ("d", 1)])
    rows = [
        {"db_id": "scores", "question": "Who scored best?", "query": "SELECT name FROM s ORDER BY score DESC LIMIT 1"},
        {"db_id": "scores", "question": "How many?", "query": "SELECT COUNT(*) FROM s"},
    ]
    data = tmp_path / "dev.json"
    data.write_text(json.dumps(rows), encoding="utf-8")
    preds = tmp_path / "p.sql"
    preds.write_text("SELECT name FROM s ORDER BY score DESC LIMIT 1\nSELECT COUNT(*) FROM s\n", encoding="utf-8")
    kept = evaluate(str(data), tmp_path / "a", predictions=preds, db_dir=str(tmp_path / "db"), progress=False)
    assert kept.metrics["gold_audit"]["counts"] == {"limit_ties": 1} and kept.metrics["num_examples"] == 2
    assert any("gold audit: limit ties 1" in n for n in format_summary(kept.metrics).splitlines())
    left = evaluate(str(data), tmp_path / "b", predictions=preds, db_dir=str(tmp_path / "db"),
                    exclude_unstable_gold=True, progress=False)  # fmt: skip
    assert left.metrics["num_examples"] == 1 and left.metrics["gold_audit"]["excluded"] == 1
