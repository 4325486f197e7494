"""`text2sql label`: a scripted teacher on loopback (the real `openai` client) answers questions about the
shop database on SQLite, DuckDB and PostgreSQL; what is kept runs read-only and returns rows, what is
dropped is counted by reason, and a stopped run resumes without asking twice."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cli_support import assert_one_line_error, run_cli
from engines_support import shop_on
from openai_support import Reply, ScriptedEndpoint, question_of
from serving_support import free_port, running
from text2sql.data.readers import ReadOptions, read_examples
from text2sql.sql.execution import execute_sql

# question -> (greedy answer, sampled answers): what the scripted teacher writes
TEACHER = {
    "How many customers are there?": ("SELECT COUNT(*) FROM Customers", ["SELECT COUNT(*) FROM Customers"] * 2),
    "Which customers live in Paris?": (
        "```sql\nSELECT Name FROM Customers WHERE city = 'Paris'\n```",
        [
            "SELECT Name FROM Customers WHERE city = 'Paris'",
            "SELECT Name FROM Customers WHERE city = 'Berlin'",
        ],
    ),
    "What is the largest order amount?": (
        "SELECT MAX(amount) FROM orders",
        ["SELECT MIN(amount) FROM orders", "SELECT AVG(amount) FROM orders"],
    ),
    "Who lives in Rome?": ("SELECT Name FROM Customers WHERE city = 'Rome'", ["SELECT 1 WHERE 1 = 0"] * 2),
    "Remove the old orders.": ("DELETE FROM orders", ["DELETE FROM orders"] * 2),
    "Count the orders.": (
        "SELECT COUNT(*) FROM orders; DROP TABLE orders",
        ["SELECT COUNT(*) FROM orders; DROP TABLE orders"] * 2,
    ),
    "What is the meaning of life?": ("I'm sorry, I can only answer questions about the data.", ["No."] * 2),
    "Which flights leave today?": ("SELECT * FROM flights", ["SELECT * FROM flights"] * 2),
}
DROPPED = {
    "too little agreement": 1,
    "no rows": 1,
    "not read-only": 1,
    "several statements": 1,
    "no sql": 1,
    "schema error": 1,
}


# a question added to a questions file later
LATER = {"How many orders are there?": ("SELECT COUNT(*) FROM orders", ["SELECT COUNT(*) FROM orders"] * 2)}


def teacher(body):
    greedy, sampled = {**TEACHER, **LATER}[question_of(body)]
    return Reply(sampled[: body["n"]]) if body.get("n") else Reply(greedy)


@contextlib.contextmanager
def endpoint(script=teacher, **kwargs):
    server = ScriptedEndpoint(script, **kwargs)
    with running(server.app()) as url:
        yield server, f"{url}/v1"


def questions_file(path, questions=TEACHER) -> str:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["question"])
        writer.writerows([q] for q in questions)
    return str(path)


@pytest.mark.parametrize("engine", ["sqlite", "duckdb", "postgres"])
def test_label_keeps_what_runs_returns_rows_and_agrees(engine, tmp_path, capsys, request):
    server_pg = request.getfixturevalue("postgres_server") if engine == "postgres" else None
    db = shop_on(engine, tmp_path, server_pg, schema="label_shop")
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "pairs.jsonl"
    with endpoint() as (server, url):
        code, printed, err = run_cli(
            capsys, "label", "--data", data, "--db", db, "--teacher", "openai:teacher", "--base-url", url,
            "--samples", "3", "--min-agreement", "2", "--output", out,
        )  # fmt: skip
    assert code == 0, err
    assert server.count == 2 * len(TEACHER)  # per question one greedy request and one for the 2 samples
    greedy, sampled = server.requests[0], server.requests[-1]
    assert greedy["temperature"] == 0 and "n" not in greedy
    assert sampled["n"] == 2 and sampled["temperature"] == 0.8 and sampled["top_p"] == 0.95
    dialect = {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL"}[engine]
    assert dialect in greedy["messages"][0]["content"] and "orders" in greedy["messages"][1]["content"]

    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["input_text"] for p in pairs] == ["How many customers are there?", "Which customers live in Paris?"]
    assert pairs[0]["sql"] == "SELECT COUNT(*) FROM Customers"
    assert (pairs[0]["votes"], pairs[0]["agreement"]) == (3, 1)
    assert pairs[1]["sql"] == "SELECT Name FROM Customers WHERE city = 'Paris'" and pairs[1]["votes"] == 2
    assert all(p["teacher"] == "openai:teacher" and p["samples"] == 3 for p in pairs)
    report = json.loads((tmp_path / "pairs.report.json").read_text())
    assert report["questions"] == len(TEACHER) and report["kept"] == 2 and report["dropped"] == DROPPED
    assert report["tokens_in"] == 100 * 2 * len(TEACHER)
    assert "kept" in printed and "dropped: no rows" in printed and "pairs.report.json" in printed
    # nothing the teacher wrote changed the database
    assert execute_sql(db, "SELECT COUNT(*) FROM orders").rows == [(40,)]
    # the pairs are training data as they are: data.train with data.db reads them, database attached
    from text2sql.config import load_config

    cfg = load_config(None, [f"data.train={out}", f"data.db={db}"])
    read = list(read_examples(cfg.data.train, ReadOptions.from_config(cfg.data)))
    assert [e.sql for e in read] == [p["sql"] for p in pairs] and all(e.db_path for e in read)


def test_with_one_sample_every_pair_that_runs_and_returns_rows_is_kept(tmp_path, capsys):
    db = shop_on("sqlite", tmp_path)
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "pairs.jsonl"
    with endpoint() as (server, url):
        assert run_cli(capsys, "label", "--data", data, "--db", db, "--teacher", "openai:t", "--base-url", url,
                       "--output", out)[0] == 0  # fmt: skip
    assert server.count == len(TEACHER)
    kept = [json.loads(line)["input_text"] for line in out.read_text().splitlines()]
    # one candidate agrees with itself: the question that needed agreement is kept now
    assert kept == [
        "How many customers are there?",
        "Which customers live in Paris?",
        "What is the largest order amount?",
    ]


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    db = shop_on("sqlite", tmp_path)
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "pairs.jsonl"
    base = ["label", "--data", data, "--db", db, "--output", out]
    cases = [
        (["--teacher", "gpt-4o"], ("is not an endpoint", "openai:NAME")),
        (["--teacher", "openai:t", "--samples", "2", "--min-agreement", "3"], ("--min-agreement 3",)),
        (["--teacher", "openai:t", "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--max-retries", "0"],
         ("cannot reach",)),
    ]  # fmt: skip
    for extra, needles in cases:
        assert_one_line_error(*run_cli(capsys, *base, *extra)[::2], *needles)
        assert not out.exists()
    no_question = tmp_path / "sql_only.csv"
    no_question.write_text("sql\nSELECT 1\n")
    code, _, err = run_cli(capsys, "label", "--data", no_question, "--db", db, "--teacher", "openai:t", "--output", out)
    assert_one_line_error(code, err, "no 'input_text' column", "question_column")
    with endpoint(api_key="right") as (server, url):
        code, _, err = run_cli(capsys, *base, "--teacher", "openai:t", "--base-url", url)
        assert_one_line_error(code, err, "refused the API key (401", "OPENAI_API_KEY")
        assert server.count == 0  # refused before the request was read
    out.write_text("kept from before\n")
    code, _, err = run_cli(capsys, *base, "--teacher", "openai:t")
    assert_one_line_error(code, err, "exists", "--force")
    assert out.read_text() == "kept from before\n"


def test_a_stopped_run_resumes_from_its_cache_without_asking_twice(tmp_path, capsys):
    db = shop_on("sqlite", tmp_path)
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "pairs.jsonl"
    args = ["label", "--data", data, "--db", db, "--teacher", "openai:slow", "--output", out, "--concurrency", "1"]

    answered, interrupting = [], [True]

    def slow(body):
        # After the third answer the teacher slows down until the run is stopped: on a busy machine the
        # Ctrl-C may come seconds later, and the run must not have finished by then.
        answered.append(body)
        delay = 5.0 if len(answered) > 3 and interrupting[0] else 0.4
        return Reply(TEACHER[question_of(body)][0], delay=delay)

    with endpoint(slow) as (server, url):
        process = subprocess.Popen(
            [sys.executable, "-m", "text2sql.cli", *map(str, args), "--base-url", url],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # A pytest-xdist worker may ignore SIGINT, and a child inherits that: give it Ctrl-C back.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            server.wait_for(3, timeout=120)
            time.sleep(0.1)
            process.send_signal(signal.SIGINT)  # Ctrl-C, with a request in flight
            _, err = process.communicate(timeout=60)
        finally:
            process.kill()
        interrupting[0] = False
        assert process.returncode == 130 and "Traceback" not in err and "interrupted" in err
        assert not out.exists()
        asked = server.count
        assert 3 <= asked < len(TEACHER)
        # the cache holds whole lines only; the rerun asks what was never answered, and nothing twice
        code, _, err = run_cli(capsys, *args, "--base-url", url)
        assert code == 0, err
        questions = [question_of(b) for b in server.requests]
        assert set(questions) == set(TEACHER)
        repeated = {q for q in questions if questions.count(q) > 1}
        assert repeated <= {questions[asked - 1]}  # at most the one in flight when stopped
        assert len(out.read_text().splitlines()) == 3


def test_a_run_labels_its_questions_into_the_training_split_only(tmp_path, capsys):
    from datasets import load_from_disk

    from training_support import csv_rows, write_csv

    db = shop_on("sqlite", tmp_path)
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "run"
    with endpoint() as (server, url):
        args = [
            "prepare", f"output_dir={out}", f"data.db={db}", f"evaluation.base_url={url}",
            f"data.label={{file: {data}, teacher: 'openai:t', samples: 3, min_agreement: 2}}",
            f"data.train={write_csv(tmp_path / 'train.csv', csv_rows(20))}", "data.test_size=0.2",
        ]  # fmt: skip
        code, printed, err = run_cli(capsys, *args)
        assert code == 0, err
        assert server.count == 2 * len(TEACHER) and "dropped: no rows" in printed
        pairs = [json.loads(line) for line in (out / "label/pairs.jsonl").read_text().splitlines()]
        assert len(pairs) == 2 and (out / "label/stage.json").is_file() and (out / "label/pairs.report.json").is_file()
        prepared = load_from_disk(str(out / "data"))
        labelled = {p["input_text"] for p in pairs}
        train = prepared["train"]
        assert labelled <= set(train["question"])
        assert len(train) == 20 - len(prepared["validation"]) - len(prepared["test"]) + 2
        assert {train["db_path"][train["question"].index(q)] for q in labelled} == {db}
        for split in ("validation", "test"):
            assert not labelled & set(prepared[split]["question"])
        report = json.loads((out / "data/prepare_report.json").read_text())
        assert report["sources"]["labelled"].endswith("label/pairs.jsonl")

        # prepared again: the labels are current, nothing is asked
        code, printed, err = run_cli(capsys, *args)
        assert code == 0, err
        assert server.count == 2 * len(TEACHER) and "label: up to date, skipped" in printed

        # one more question: labelled again, only the new question asked, prepared again with it
        questions_file(tmp_path / "questions.csv", {**TEACHER, **LATER})
        code, printed, err = run_cli(capsys, *args)
        assert code == 0, err
        assert server.count == 2 * len(TEACHER) + 2
        assert "How many orders are there?" in load_from_disk(str(out / "data"))["train"]["question"]


def test_questions_alone_labelled_by_a_teacher_are_the_training_set(tmp_path, capsys):
    """No pairs at all: the questions the teacher labels train the model; validation and test come
    from their own files."""
    from datasets import load_from_disk

    from training_support import csv_rows, write_csv

    db = shop_on("sqlite", tmp_path)
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "run"
    held = write_csv(tmp_path / "held.csv", csv_rows(6))
    with endpoint() as (server, url):
        code, _, err = run_cli(
            capsys, "prepare", f"output_dir={out}", f"data.db={db}", f"evaluation.base_url={url}",
            f"data.label={{file: {data}, teacher: 'openai:t'}}", "data.train=null",
            f"data.validation={held}", f"data.test={held}",
        )  # fmt: skip
        assert code == 0, err
    pairs = [json.loads(line) for line in (out / "label/pairs.jsonl").read_text().splitlines()]
    prepared = load_from_disk(str(out / "data"))
    assert pairs and sorted(prepared["train"]["question"]) == sorted(p["input_text"] for p in pairs)
    assert len(prepared["test"]) == len(prepared["validation"]) == 6


def test_without_training_data_prepare_names_the_three_ways_in(tmp_path, capsys):
    db = shop_on("sqlite", tmp_path)
    code, _, err = run_cli(capsys, "prepare", f"output_dir={tmp_path / 'run'}", f"data.db={db}", "data.train=null")
    assert code != 0 and "data.train, data.label" in err and "data.synth" in err and "Traceback" not in err


def test_rows_name_their_database_by_db_id_on_several_engines(tmp_path, capsys):
    sqlite_db = shop_on("sqlite", tmp_path)
    (tmp_path / "duck").mkdir()
    duck_db = shop_on("duckdb", tmp_path / "duck")
    data = tmp_path / "questions.jsonl"
    rows = [
        {"question": "How many customers are there?", "db_id": "shop"},
        {"question": "Which customers live in Paris?", "db_id": "duck"},
        {"question": "Who lives in Rome?", "db_id": "elsewhere"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "pairs.jsonl"
    with endpoint() as (server, url):
        code, _, err = run_cli(
            capsys, "label", "--data", data, "--db", f"shop={sqlite_db}", "--db", f"duck={duck_db}",
            "--teacher", "openai:t", "--base-url", url, "--output", out,
        )  # fmt: skip
        assert code == 0, err
        # each question is asked in the dialect of its own database; one with none is not asked
        dialects = {question_of(b): b["messages"][0]["content"] for b in server.requests}
        assert "SQLite" in dialects["How many customers are there?"]
        assert "DuckDB" in dialects["Which customers live in Paris?"] and server.count == 2
        pairs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(p["db_id"], p["input_text"]) for p in pairs] == [(r["db_id"], r["question"]) for r in rows[:2]]
        assert json.loads((tmp_path / "pairs.report.json").read_text())["dropped"] == {"no database": 1}

        # a {db_id} pattern names one database per db_id
        (tmp_path / "elsewhere.sqlite").write_bytes((tmp_path / "shop.sqlite").read_bytes())
        data.write_text("".join(json.dumps(r) + "\n" for r in (rows[0], rows[2])))
        code, _, err = run_cli(
            capsys, "label", "--data", data, "--db", str(tmp_path / "{db_id}.sqlite"), "--teacher", "openai:t",
            "--base-url", url, "--output", out, "--force",
        )  # fmt: skip
    assert code == 0, err
    pairs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["db_id"] for p in pairs] == ["shop"]
    assert json.loads((tmp_path / "pairs.report.json").read_text())["dropped"] == {"no rows": 1}


def test_a_teacher_failing_partway_is_one_line_and_the_rerun_asks_only_the_rest(tmp_path, capsys):
    db = shop_on("sqlite", tmp_path)
    data = questions_file(tmp_path / "questions.csv")
    out = tmp_path / "pairs.jsonl"
    failing = {"on": True}

    def script(body):
        return Reply(status=500, error="overloaded") if failing["on"] and len(server.requests) > 3 else teacher(body)

    with endpoint(script) as (server, url):
        args = ["label", "--data", data, "--db", db, "--teacher", "openai:t", "--base-url", url, "--output", out]
        code, _, err = run_cli(capsys, *args, "--max-retries", "0", "--concurrency", "1")
        assert_one_line_error(code, err, "failed with 500", "overloaded", "answers so far are kept")
        assert not out.exists() and server.count == 4
        failing["on"] = False
        code, _, err = run_cli(capsys, *args)
        assert code == 0, err
    assert server.count == 4 + len(TEACHER) - 3  # the three answered before are not asked again
