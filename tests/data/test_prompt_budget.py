"""No evaluation row is ever dropped: prepare keeps validation and test rows over budget, evaluation
scores them as prompt_too_long, and the prompt inference builds for a row is the one prepare stored."""

import csv
import json

import pytest
from datasets import load_from_disk

from stage_support import prepare_with_model
from text2sql.config import load_config
from text2sql.data.example import Example
from text2sql.data.prompt import PromptBuilder
from text2sql.data.schema import schema_text
from text2sql.evaluation.evaluate import evaluate
from text2sql.models.loading import load_tokenizer
from wide_db_support import make_wide_db

QUESTIONS = [
    ("How many orders did customers from japan place?", "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 "
     "ON T1.customer_id = T2.customer_id WHERE T2.country = 'Japan'"),
    ("What is the email of frank?", "SELECT email FROM customers WHERE full_name = 'Frank Müller'"),
    ("Which warehouses are in hamburg?", "SELECT warehouse_name FROM warehouses WHERE city = 'Hamburg'"),
    ("How many orders are pending?", "SELECT COUNT(*) FROM orders WHERE status = 'pending'"),
    ("List the cities of customers in germany.", "SELECT city FROM customers WHERE country = 'Germany'"),
    ("What is the total capacity of all warehouses?", "SELECT SUM(capacity) FROM warehouses"),
]  # fmt: skip
# A question no prompt budget here can hold.
HUGE = ("Tell me " + "about the orders and the customers and the payments " * 60 + "?", "SELECT 1")


def _csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["input_text", "sql"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, tiny_llama_path):
    root = tmp_path_factory.mktemp("budget")
    db = make_wide_db(root / "shop.sqlite")
    train = _csv(root / "train.csv", [(f"{q} ({i})", s) for i in range(4) for q, s in QUESTIONS] + [HUGE])
    test = _csv(root / "test.csv", [*QUESTIONS, HUGE])
    cfg = load_config(
        None,
        [
            f"output_dir={root / 'run'}",
            f"model.name_or_path={tiny_llama_path}",
            f"data.train={train}",
            f"data.test={test}",
            f"data.db={db}",
            "data.validation_size=0",
            "data.max_prompt_tokens=300",
            "data.max_length=400",
            "data.value_hints=true",
        ],
    )
    result = prepare_with_model(cfg)
    return cfg, result, db


def test_test_rows_over_budget_are_kept_and_train_rows_dropped(prepared):
    _, result, _ = prepared
    report = result.report
    assert report["rows_out"]["test"] == report["rows_in"]["test"] == len(QUESTIONS) + 1
    assert "test" not in report["dropped"]
    assert report["dropped"]["train"]["prompt_too_long"] == 1
    assert report["prompts"]["test"]["over_budget"] == 1
    assert report["prompts"]["test"]["pruned"] >= len(QUESTIONS) - 1  # the whole schema fits no prompt of 300
    assert report["prompts"]["test"]["with_value_hints"] >= 4
    assert 0.0 < report["prompts"]["test"]["gold_table_recall"] <= 1.0
    assert report["prompts"]["train"]["gold_table_recall"] == 1.0  # training always keeps the gold's tables
    test = load_from_disk(str(result.path))["test"]
    assert all(n <= 300 for n, fits in zip(test["prompt_length"], test["prompt_fits"]) if fits)


def test_inference_asks_with_the_prompt_prepare_stored(prepared, tiny_llama_path):
    """What `predict` and `serve` build from a question and a database: byte-identical to the
    prompt of the same row in the prepared test split (pruning and hints included)."""
    cfg, result, db = prepared
    test = load_from_disk(str(result.path))["test"]
    tokenizer = load_tokenizer(str(tiny_llama_path))
    builder = PromptBuilder.from_config(tokenizer, "decoder", "llama", cfg)
    schema = schema_text(db, cfg.data.schema_format, cfg.data.schema_sample_rows)
    checked = 0
    for row in test:
        if not row["prompt_fits"]:
            continue
        [fitted] = builder.fit([Example(row["question"], "", schema, db_path=str(db))])
        assert fitted.ids == row["input_ids"][: row["prompt_length"]], row["question"]
        assert tokenizer.decode(fitted.ids) == tokenizer.decode(row["input_ids"][: row["prompt_length"]])
        checked += 1
    assert checked == len(QUESTIONS)


def test_evaluation_scores_every_row(prepared, tiny_llama_path, tmp_path):
    cfg, result, _ = prepared
    out = evaluate(
        str(result.path),
        tmp_path / "eval",
        model=str(tiny_llama_path),
        split="test",
        max_new_tokens=4,
        progress=False,
    )
    m = out.metrics
    assert m["num_examples"] == len(QUESTIONS) + 1
    assert m["error_counts"].get("prompt_too_long") == 1
    [too_long] = [s for s in out.scored if s.error == "prompt_too_long"]
    assert too_long.predicted_sql == "" and too_long.execution_match == 0.0
    assert "over the budget" in too_long.error_detail
    saved = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(saved) == len(QUESTIONS) + 1
