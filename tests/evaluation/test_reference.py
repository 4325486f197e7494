"""The LLM a user pays for, evaluated like any model (`--model openai:NAME`) and as a run's reference:
a scripted OpenAI-compatible server answers some questions with the gold SQL and others wrong, so the
scores are known exactly; the real `openai` client, the real scoring, a real trained tiny model."""

from __future__ import annotations

import contextlib
import csv
import json

import pytest

from cli_support import assert_one_line_error, run_cli
from engines_support import make_shop
from openai_support import Reply, ScriptedEndpoint, question_of
from serving_support import free_port, running

GOLD = {
    "How many customers are there?": "SELECT COUNT(*) FROM Customers",
    "Which customers live in Paris?": "SELECT Name FROM Customers WHERE city = 'Paris'",
    "What is the largest order amount?": "SELECT MAX(amount) FROM orders",
    "How many orders did Ada place?": "SELECT COUNT(*) FROM orders JOIN Customers ON orders.customer_id = "
    "Customers.id WHERE Name = 'Ada'",
    "List the cities of customers.": "SELECT DISTINCT city FROM Customers",
    "What is the total of all orders?": "SELECT SUM(amount) FROM orders",
}
# What the scripted LLM answers: three right (one in a fence after prose), one wrong, one refusal, one DELETE.
ANSWERS = {
    "How many customers are there?": "Here is the query:\n```sql\nSELECT COUNT(*) FROM Customers;\n```",
    "Which customers live in Paris?": "SELECT Name FROM Customers WHERE city = 'Paris'",
    "What is the largest order amount?": "SELECT MIN(amount) FROM orders",
    "How many orders did Ada place?": "I'm sorry, I can't help with that request.",
    "List the cities of customers.": "SELECT DISTINCT city FROM Customers",
    "What is the total of all orders?": "DELETE FROM orders",
}
RIGHT = {"How many customers are there?", "Which customers live in Paris?", "List the cities of customers."}


@pytest.fixture
def shop(tmp_path):
    db = make_shop(tmp_path / "shop.sqlite")
    data = tmp_path / "questions.csv"
    with open(data, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["input_text", "sql"])
        writer.writerows(GOLD.items())
    return db, data


@contextlib.contextmanager
def llm(script=lambda body: ANSWERS[question_of(body)], **kwargs):
    endpoint = ScriptedEndpoint(script, **kwargs)
    with running(endpoint.app()) as url:
        yield endpoint, f"{url}/v1"


def test_an_endpoint_is_scored_like_any_model_and_a_rerun_pays_nothing(shop, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    db, data = shop
    out = tmp_path / "eval"
    args = ["evaluate", "--model", "openai:gpt-x", "--data", data, "--db", db, "--output", out]
    price = ["--price-per-hour", "3"]  # a local model's setting: an endpoint's evaluation ignores it
    with llm() as (server, url):
        code, printed, err = run_cli(capsys, *args, "--base-url", url, *price)
        assert code == 0, err
        assert server.count == 6
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["execution_accuracy"] == pytest.approx(3 / 6)
        rows = {r["question"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
        assert {q for q, r in rows.items() if r["execution_match"] == 1.0} == RIGHT
        assert rows["How many customers are there?"]["predicted_sql"] == "SELECT COUNT(*) FROM Customers"
        refusal = rows["How many orders did Ada place?"]
        assert refusal["execution_match"] == 0.0 and "holds no SQL (prose or a refusal)" in refusal["error_detail"]
        assert rows["What is the total of all orders?"]["error"] == "forbidden"
        assert rows["What is the largest order amount?"]["error"] == "wrong_result"
        # the messages: the default system prompt naming the dialect, the schema, the question
        body = server.requests[0]
        system, user = body["messages"]
        assert system["role"] == "system" and "SQLite" in system["content"]
        assert "CREATE TABLE Customers" in user["content"] and user["content"].endswith(
            "Question: " + question_of(body)
        )
        assert body["temperature"] == 0 and body["max_tokens"] == 256
        cost = metrics["cost"]
        assert cost["kind"] == "endpoint" and cost["tokens_in"] == 600 and cost["tokens_out"] == 60
        assert cost["latency_p50_seconds"] > 0 and cost["latency_p95_seconds"] >= cost["latency_p50_seconds"]
        assert cost["cost_per_1000_questions"] is None  # no price given
        assert "latency p50" in printed and metrics["run"]["model"]["base_url"] == url

        # evaluated again (a new price): every answer comes from the cache, the scores are the same
        code, printed, err = run_cli(capsys, *args, "--base-url", url, "--force", "--max-retries", "0")
        assert code == 0, err
        assert server.count == 6
        again = json.loads((out / "metrics.json").read_text())
        assert again["execution_accuracy"] == metrics["execution_accuracy"]
        assert again["cost"]["cached_answers"] == 6
        assert again["cost"]["latency_p50_seconds"] == cost["latency_p50_seconds"]


def test_a_token_price_gives_the_cost_of_1000_questions(shop, tmp_path):
    from text2sql.config import EvaluationConfig
    from text2sql.evaluation.evaluate import evaluate

    db, data = shop
    settings = EvaluationConfig(price_per_1m_tokens={"input": 1.0, "output": 2.0})
    with llm() as (server, url):
        settings = settings.model_copy(update={"base_url": url})
        result = evaluate(str(data), tmp_path / "eval", model="openai:gpt-x", db=str(db), settings=settings)
    # (100 tokens in x 1.0 + 10 out x 2.0) per question, per million, x 1,000 questions
    assert result.metrics["cost"]["cost_per_1000_questions"] == pytest.approx(0.12)
    assert "Cost per 1,000 questions" in result.report.read_text()


@pytest.mark.parametrize(
    "server_kwargs, script, needles",
    [
        ({"api_key": "right"}, None, ("refused the API key (401", "OPENAI_API_KEY")),
        ({}, lambda body: Reply(status=404, error="The model `gpt-x` does not exist"), ("has no model 'gpt-x'",)),
        ({}, lambda body: Reply(status=429, error="Rate limit reached"), ("still rate limiting", "429")),
    ],
)
def test_an_endpoint_that_cannot_answer_is_one_line_and_writes_nothing(
    shop, tmp_path, capsys, server_kwargs, script, needles
):
    db, data = shop
    out = tmp_path / "eval"
    with llm(script or (lambda body: "SELECT 1"), **server_kwargs) as (server, url):
        code, _, err = run_cli(
            capsys, "evaluate", "--model", "openai:gpt-x", "--base-url", url, "--max-retries", "1",
            "--data", data, "--db", db, "--output", out,
        )  # fmt: skip
    assert_one_line_error(code, err, *needles)
    assert server.count <= 2  # the first question, asked alone, stopped it (one retry where retried)
    assert not out.exists()


def test_an_unreachable_endpoint_is_one_line(shop, tmp_path, capsys):
    db, data = shop
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, _, err = run_cli(
        capsys, "evaluate", "--model", "openai:gpt-x", "--base-url", url, "--max-retries", "0",
        "--data", data, "--db", db, "--output", tmp_path / "eval",
    )  # fmt: skip
    assert_one_line_error(code, err, "cannot reach", url)


def test_the_endpoint_is_asked_exactly_the_fine_tuned_models_prompt(shop, tmp_path, tiny_llama_path):
    import shutil

    from text2sql.config import load_config, save_config
    from text2sql.evaluation.evalset import load_eval_set
    from text2sql.evaluation.evaluate import evaluate
    from text2sql.inference.loading import load_for_inference

    db, data = shop
    model = tmp_path / "merged"
    shutil.copytree(tiny_llama_path, model)
    # a budget of 70 tokens, where the whole prompt takes about 100: schemas are pruned per question
    save_config(load_config(None, ["prompt.system=Answer in {dialect}.", "data.max_prompt_tokens=70"]), model)
    with llm() as (server, url):
        evaluate(str(data), tmp_path / "eval", model="openai:gpt-x", db=str(db), prompt_from=str(model), base_url=url)
    im = load_for_inference(str(model), load_weights=False)
    rows = load_eval_set(str(data), read_options=im.read_options(db=str(db))).rows
    fitted = {r.question: f for r, f in zip(rows, im.builder.fit(rows))}
    assert any(f.pruned for f in fitted.values())
    for body in server.requests:
        system, user = body["messages"]
        assert system["content"] == "Answer in SQLite."
        rendered = im.tokenizer.apply_chat_template(
            body["messages"], chat_template=im.builder.chat_template, tokenize=False, add_generation_prompt=True
        )
        assert rendered == fitted[question_of(body)].text


def test_a_run_scores_its_reference_on_the_same_rows_and_compares_side_by_side(tmp_path, capsys):
    from text2sql.config import load_config
    from text2sql.evaluation.evalset import load_eval_set
    from text2sql.pipeline import run_pipeline, summary

    out = tmp_path / "run"
    gold: dict[str, str] = {}

    def script(body):
        if not gold:  # the run's own prepared test split, ready by the time the reference is asked
            gold.update({r.question: r.sql for r in load_eval_set(str(out / "data"), split="test").rows})
        question = question_of(body)
        right = len(question) % 2 == 0
        return gold[question] if right else "SELECT no_such_column FROM no_such_table"

    fast = [
        "data.max_samples.train=48",
        "data.max_samples.test=8",
        "data.max_samples.validation=8",
        "training.max_steps=1",
        "evaluation.max_new_tokens=8",
        "evaluation.price_per_1m_tokens={input: 0.5, output: 1.5}",
        "evaluation.price_per_hour=2.0",
        "callbacks.progress=lines",
    ]
    with llm(script) as (server, url):
        cfg = load_config(
            None, [f"output_dir={out}", "evaluation.reference=openai:gpt-x", f"evaluation.base_url={url}", *fast]
        )
        result = run_pipeline(cfg)
        assert [s.name for s in result.stages][-2:] == ["evaluate reference", "compare"]
        assert server.count == 8
        # the reference's score is the real one: right exactly where the script answered the gold SQL
        scored = [json.loads(line) for line in (out / "eval/reference/predictions.jsonl").read_text().splitlines()]
        executed = [r for r in scored if r["execution_match"] is not None]
        assert executed and all((r["execution_match"] == 1.0) == (len(r["question"]) % 2 == 0) for r in executed)
        expected = sum(r["execution_match"] for r in executed) / len(executed)
        assert result.metrics["reference"]["execution_accuracy"] == pytest.approx(expected)
        # the same test rows as the fine-tuned model
        finetuned = [json.loads(line) for line in (out / "eval/finetuned/predictions.jsonl").read_text().splitlines()]
        assert [r["id"] for r in finetuned] == [r["id"] for r in scored]
        # compare: the reference first, the fine-tuned model against it, with cost and speed
        compare = json.loads((out / "eval/compare.json").read_text())
        assert compare["reference"] == "reference" and [r["name"] for r in compare["runs"]] == [
            "reference",
            "finetuned",
        ]
        [pair] = compare["pairs"]
        assert pair["name"] == "finetuned" and pair["mcnemar"] is not None and pair["common"] == 8
        assert pair["intervals"]["execution_accuracy"]["n"] == len(executed)
        assert compare["headline"]["execution_accuracy"][0] == pytest.approx(expected)
        p50 = compare["cost"]["latency_p50_seconds"]
        assert p50[0] > 0 and p50[1] is None  # measured per request for the endpoint only
        ref_cost, local_cost = compare["cost"]["cost_per_1000_questions"]
        assert ref_cost == pytest.approx(1000 * (100 * 0.5 + 10 * 1.5) / 1e6) and local_cost > 0
        assert "cost per 1,000 q" in summary(result) and "cost and speed" in (out / "eval/compare.html").read_text()
        assert (out / "eval/reference/report.html").is_file()

        again = run_pipeline(cfg)  # everything current: nothing asked again
        assert all(s.skipped for s in again.stages) and server.count == 8


def test_predict_asks_an_endpoint_and_runs_its_sql_read_only(shop, capsys):
    db, _ = shop
    with llm() as (server, url):
        code, printed, err = run_cli(
            capsys, "predict", "--model", "openai:gpt-x", "--base-url", url, "--db", db, "--execute",
            "How many customers are there?",
        )  # fmt: skip
        assert code == 0, err
        assert printed.splitlines()[0] == "SELECT COUNT(*) FROM Customers" and "5" in printed
        code, _, err = run_cli(
            capsys, "predict", "--model", "openai:gpt-x", "--base-url", url, "--db", db, "--execute",
            "What is the total of all orders?",
        )  # fmt: skip
        assert code == 1 and "DELETE" not in err.split("error:")[0]
        assert "the SQL failed" in err
    assert server.count == 2


def test_an_endpoints_sampled_candidates_are_voted_on_by_result(shop, tmp_path):
    from text2sql.evaluation.evaluate import evaluate

    db, data = shop

    def script(body):  # the greedy answers as above; every sampled one is the gold query
        question = question_of(body)
        return Reply([GOLD[question]] * body["n"]) if body.get("n") else ANSWERS[question]

    with llm(script) as (server, url):
        result = evaluate(str(data), tmp_path / "eval", model="openai:gpt-x", db=str(db), base_url=url, num_samples=3)
    assert server.count == 2 * len(GOLD) and {b.get("n") for b in server.requests} == {None, 2}
    m = result.metrics
    assert m["execution_accuracy"] == pytest.approx(0.5)
    assert m["maj_at_k"] == pytest.approx(1.0) and m["pass_at_k"] == pytest.approx(1.0)
    assert m["cost"]["tokens_in"] == 100 * 2 * len(GOLD)  # the sampled requests are paid for too
