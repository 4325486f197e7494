"""`text2sql serve` of a tiny model as the endpoint: asked by the real `openai` client as a reference
model (`evaluate --model openai:NAME`) and as the teacher of `text2sql label`, over loopback HTTP."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from cli_support import run_cli
from engines_support import make_shop
from serving_support import running
from text2sql.config import load_config, save_config

QUESTIONS = ["How many customers are there?", "Which customers live in Paris?", "What is the largest order amount?"]
GOLD = [
    "SELECT COUNT(*) FROM Customers",
    "SELECT Name FROM Customers WHERE city = 'Paris'",
    "SELECT MAX(amount) FROM orders",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_llama_path):
    """The base URL of a tiny model served by `text2sql serve`'s app, and the server's engine."""
    from text2sql.serving.server import build_server

    folder = tmp_path_factory.mktemp("served") / "merged"
    shutil.copytree(tiny_llama_path, folder)
    save_config(load_config(None, ["serving.max_tokens=8", "evaluation.max_new_tokens=8"]), folder)
    server = build_server(str(folder), model_name="tiny")
    with running(server.app) as url:
        yield f"{url}/v1", server.engine
    server.engine.close()


@pytest.fixture
def shop(tmp_path):
    db = make_shop(tmp_path / "shop.sqlite")
    data = tmp_path / "questions.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input_text", "sql"])
        writer.writerows(zip(QUESTIONS, GOLD))
    return db, data


def test_a_served_model_is_scored_as_a_reference(served, shop, tmp_path, capsys):
    url, engine = served
    db, data = shop
    before = engine.stats.requests
    out = tmp_path / "eval"
    code, _, err = run_cli(
        capsys, "evaluate", "--model", "openai:tiny", "--base-url", url, "--data", data, "--db", db,
        "--output", out, "--max-new-tokens", "8",
    )  # fmt: skip
    assert code == 0, err
    assert engine.stats.requests - before == len(QUESTIONS)  # every question went through the served model
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_examples"] == len(QUESTIONS) and metrics["num_execution_scored"] == len(QUESTIONS)
    # the server counts real tokens: the prompt holds the schema, the answers at most 8 tokens each
    cost = metrics["cost"]
    assert cost["tokens_in_per_question"] > 50 and 0 < cost["tokens_out"] <= 8 * len(QUESTIONS)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert all(r["raw_output"] is not None for r in rows)


def test_a_served_model_is_a_teacher(served, shop, tmp_path, capsys):
    url, engine = served
    db, data = shop
    out = tmp_path / "pairs.jsonl"
    before = engine.stats.requests
    code, printed, err = run_cli(
        capsys, "label", "--data", data, "--db", db, "--teacher", "openai:tiny", "--base-url", url,
        "--samples", "2", "--max-tokens", "6", "--output", out,
    )  # fmt: skip
    assert code == 0, err
    assert engine.stats.requests - before == 2 * len(QUESTIONS)
    report = json.loads((tmp_path / "pairs.report.json").read_text())
    # an untrained model's answers are seldom SQL that runs; whatever it wrote is accounted for
    assert report["kept"] + sum(report["dropped"].values()) == len(QUESTIONS)
    assert len(out.read_text().splitlines()) == report["kept"] and report["tokens_in"] > 0
