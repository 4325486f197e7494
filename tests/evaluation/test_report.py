"""report.html: self-contained (no scripts, no remote resources), escaped, with every section, and
the loss curve only when a training log is beside the model."""

import json

import pytest

from html_support import check_html
from text2sql.evaluation import charts
from text2sql.evaluation.aggregate import aggregate
from text2sql.evaluation.report import find_training_log, loss_chart, render_report
from text2sql.evaluation.scoring import ScoredExample


def example(i, *, error="", match=1.0, f1=1.0, complexity="basic", pred="SELECT 1", gold="SELECT 1", length=4):
    return ScoredExample(
        id=f"ex{i}",
        question=f"question {i}",
        gold_sql=gold,
        predicted_sql=pred,
        complexity=complexity,
        db_id="shop",
        exact_match=1.0 if pred == gold else 0.0,
        normalized_exact_match=0.0,
        f1_score=f1,
        token_jaccard=f1,
        execution_match=match,
        valid_sql=error not in ("syntax", "schema"),
        error=error,
        error_detail='near "SELEC": syntax error' if error == "syntax" else "",
        gold_length=length,
    )


@pytest.fixture
def scored():
    rows = [example(i) for i in range(6)]
    rows += [
        example(
            10,
            error="syntax",
            match=0.0,
            f1=0.2,
            complexity="join",
            pred="SELEC <script>alert('x')</script> FROM t",
            length=25,
        )
    ]
    rows += [example(11, error="wrong_result", match=0.0, f1=0.7, complexity="nested", pred="SELECT 2", length=50)]
    rows += [example(12, error="no_database", match=None, f1=0.5, complexity="join", pred="SELECT 3")]
    return rows


def test_report_is_self_contained_escaped_and_complete(tmp_path, scored):
    metrics = aggregate(scored)
    path = render_report(
        metrics,
        scored,
        tmp_path / "report.html",
        info={"subject_label": "model", "subject": "runs/<x>", "data": "bundled", "split": "test"},
    )
    text = path.read_text(encoding="utf-8")
    checker = check_html(text)
    assert "&lt;script&gt;alert(" in text  # predicted SQL is shown as text, never run as markup
    assert "runs/&lt;x&gt;" in text
    assert checker.tags.count("svg") == 3  # complexity, errors, length; no loss curve without a log
    for needle in (
        "Execution accuracy",
        "Exact match",
        "Token F1",
        "Valid SQL",
        "Accuracy by complexity",
        "Error categories",
        "Accuracy by gold query length",
        "Worst examples",
        "wrong_result",
        "1 of 9 rows could not be executed",
    ):
        assert needle in text, needle
    ex = 6 / 8
    assert f"{ex * 100:.1f}%" in text
    # worst examples: wrong ones only, lowest F1 first
    assert text.index("question 10") < text.index("question 12") < text.index("question 11")
    assert "question 3<" not in text


def test_loss_curve_from_training_log(tmp_path, scored):
    model = tmp_path / "run" / "adapter"
    model.mkdir(parents=True)
    log = [
        {
            "step": s,
            "loss": 3.0 / s,
            "learning_rate": 1e-4,
            "resources/rss_mb": 700.0 + s,
            "throughput/tokens_per_second": 2e3,
        }
        for s in range(1, 30)
    ] + [{"step": 20, "eval_loss": 0.4}]
    (model / "training_log.json").write_text(json.dumps(log))
    found, source = find_training_log(model)
    assert len(found) == 30 and source.endswith("training_log.json")
    text = render_report(
        aggregate(scored), scored, tmp_path / "r.html", info={"subject": "m", "data": "d", "model_path": str(model)}
    ).read_text()
    check_html(text)
    assert "Training loss" in text and "polyline" in text and "eval loss" in text
    assert "Training resources and speed" in text
    assert 'resources/rss_mb</td><td class="num">715.0</td><td class="num">729.0</td>' in text  # mean, peak
    assert 'throughput/tokens_per_second</td><td class="num">2,000.0' in text

    # a merged model beside the adapter finds the adapter's log
    merged = tmp_path / "run" / "merged"
    merged.mkdir()
    assert find_training_log(merged)[1] == str(model / "training_log.json")


def test_loss_curve_from_checkpoint_trainer_state(tmp_path):
    folder = tmp_path / "model"
    for step in (5, 10):
        ckpt = folder / "checkpoints" / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        history = [{"step": s, "loss": 1.0 / s} for s in range(1, step + 1)]
        (ckpt / "trainer_state.json").write_text(json.dumps({"log_history": history, "global_step": step}))
    found, source = find_training_log(folder)
    assert source.endswith("checkpoint-10/trainer_state.json") and len(found) == 10
    assert find_training_log(folder / "checkpoints" / "checkpoint-5")[1].endswith("checkpoint-5/trainer_state.json")
    assert find_training_log(tmp_path / "missing") is None
    assert loss_chart([{"step": 1, "learning_rate": 0.1}]) is None


def test_charts_escape_labels_and_handle_empty_input():
    svg = charts.bar_chart(["<b>", "ok"], [("a&b", [0.5, None])], counts=[3, 4])
    assert "&lt;b&gt;" in svg and "a&amp;b" not in svg  # single series: no legend
    assert "n/a" in svg and "n=3" in svg
    assert "nothing to plot" in charts.bar_chart([], [])
    assert "no errors" in charts.hbar_chart([])
    line = charts.line_chart([("loss", [(0, 2.0)]), ("eval <loss>", [(0, 1.0), (10, 0.5)])])
    assert "eval &lt;loss&gt;" in line and line.count("<circle") == 3
