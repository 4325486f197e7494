"""Question match and interaction match over conversations: in metrics.json, the summary and the report."""

from __future__ import annotations

import json

from text2sql.cli import main
from text2sql.data import bundled
from text2sql.evaluation.aggregate import aggregate, notes
from text2sql.evaluation.interactions import interaction_scores
from text2sql.evaluation.scoring import ScoredExample


def turn(interaction: str | None, number: int | None, right: bool, exact_set: float | None = None) -> ScoredExample:
    return ScoredExample(
        id=f"{interaction}-t{number}",
        question="q",
        gold_sql="SELECT 1",
        predicted_sql="SELECT 1" if right else "SELECT 2",
        complexity="basic",
        db_id="db",
        exact_match=float(right),
        normalized_exact_match=float(right),
        f1_score=float(right),
        token_jaccard=float(right),
        exact_set_match=float(right) if exact_set is None else exact_set,
        execution_match=float(right),
        valid_sql=True,
        error="" if right else "wrong_result",
        interaction=interaction,
        turn=number,
    )


def test_one_wrong_turn_fails_its_interaction():
    scored = [
        turn("a", 1, True), turn("a", 2, True), turn("a", 3, True),  # all right
        turn("b", 1, True), turn("b", 2, False),  # one wrong turn
        turn("c", 1, True), turn("c", 2, True), turn("c", 3, True), turn("c", 4, False), turn("c", 5, True),
    ]  # fmt: skip
    section = interaction_scores(scored)
    assert section is not None
    assert (section["num_interactions"], section["num_turns"]) == (3, 10)
    assert section["question_match"] == 8 / 10
    assert section["interaction_match"] == 1 / 3
    assert section["by_turn"] == {
        "1": {"num_turns": 3, "question_match": 1.0},
        "2": {"num_turns": 3, "question_match": 2 / 3},
        "3": {"num_turns": 2, "question_match": 1.0},
        "4+": {"num_turns": 2, "question_match": 0.5},
    }


def test_exact_set_twins_use_spiders_component_match():
    scored = [turn("a", 1, True, exact_set=0.0), turn("a", 2, True), turn("b", 1, True)]
    section = interaction_scores(scored)
    assert section["question_match"] == 1.0 and section["interaction_match"] == 1.0
    assert section["exact_set_question_match"] == 2 / 3 and section["exact_set_interaction_match"] == 0.5


def test_rows_that_are_no_conversation_add_no_section():
    lone = [turn(None, None, True), turn(None, None, False)]
    assert interaction_scores(lone) is None
    metrics = aggregate(lone)
    assert "interactions" not in metrics
    assert not any("question match" in line for line in notes(metrics))
    mixed = aggregate([*lone, turn("a", 1, True), turn("a", 2, False)])
    assert mixed["interactions"]["num_turns"] == 2 and mixed["num_examples"] == 4
    assert any(line.startswith("follow-up questions: question match 50.0 %") for line in notes(mixed))


def test_evaluating_the_followup_split(capsys, tmp_path):
    rows = list(bundled.iter_rows(bundled.FOLLOWUP))[:12]
    wrong = rows[5]["id"]  # the second turn of the second interaction
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(json.dumps({"id": r["id"], "sql": "SELECT 1" if r["id"] == wrong else r["sql"]}) + "\n" for r in rows),
        encoding="utf-8",
    )
    out_dir = tmp_path / "out"
    code = main(
        ["evaluate", "--predictions", str(predictions), "--data", "bundled:followup", "--output", str(out_dir),
         "--max-samples", "12", "--num-examples", "0"]
    )  # fmt: skip
    out, _ = capsys.readouterr()
    assert code == 0
    interactions = {r["interaction_id"] for r in rows}
    section = json.loads((out_dir / "metrics.json").read_text())["interactions"]
    assert section["num_turns"] == 12 and section["num_interactions"] == len(interactions)
    assert section["question_match"] == 11 / 12
    assert section["interaction_match"] == (len(interactions) - 1) / len(interactions)
    assert "follow-up questions: question match 91.7 % over 12 turns" in out
    assert "question match 91.7 %" in (out_dir / "report.html").read_text(encoding="utf-8")
    scored = [json.loads(line) for line in (out_dir / "predictions.jsonl").read_text().splitlines()]
    assert scored[5]["interaction"] == rows[5]["interaction_id"] and scored[5]["turn"] == rows[5]["turn"]
