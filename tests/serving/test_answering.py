"""One answering path: `/v1/sql` runs each distinct candidate once and never runs the answer again, the
Answerer works without HTTP, every domain error has its status code, and `predict` votes like `/v1/sql`.

Executions are counted where every engine query passes: `SQLiteDatabase.execute`, wrapped to record
each SQL text it is given (compiles show up as `EXPLAIN ...`).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from types import SimpleNamespace

import httpx
import pytest

from cli_support import assert_one_line_error, run_cli
from openai_support import Reply, ScriptedEndpoint
from serving_support import ScriptedBackend, running
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_path
from text2sql.inference.generate import HFGenerator, RawOutput
from text2sql.inference.loading import load_for_inference
from text2sql.serving import errors
from text2sql.serving.answer_models import ServedModel
from text2sql.serving.answering import Answerer
from text2sql.serving.app import STATUS, ServerSettings, create_app, status_of
from text2sql.serving.databases import DatabaseDirectory
from text2sql.serving.engine import Engine
from text2sql.sql.sqlite import SQLiteDatabase

COUNT = "SELECT COUNT(*) FROM flights"
SAME = "SELECT count(flight_id) FROM flights"  # another text with COUNT's result
OTHER = "SELECT COUNT(*) FROM airlines"
BROKEN = "SELECT nope FROM flights"
# The candidates of one request in turn, by the marker in its question: greedy first, then the sampled ones.
ROUNDS = {
    "Q_ONE": [COUNT],
    "Q_TWINS": [COUNT, SAME, COUNT, BROKEN],  # three distinct texts: COUNT twice
    "Q_FIXABLE": [BROKEN, COUNT],  # wrong, then right once asked with the error
}


def flights() -> int:
    with sqlite3.connect(db_path("airline")) as conn:
        return conn.execute(COUNT).fetchone()[0]


@pytest.fixture
def executed(monkeypatch) -> list[str]:
    """Every SQL text any SQLite database of this process is asked to run, in order."""
    seen: list[str] = []
    run = SQLiteDatabase.execute

    def counted(self, sql, **limits):
        seen.append(sql)
        return run(self, sql, **limits)

    monkeypatch.setattr(SQLiteDatabase, "execute", counted)
    return seen


class Rounds:
    """The scripted model: each marker's answers in turn (see ROUNDS)."""

    def __init__(self):
        self.asked: Counter = Counter()

    def __call__(self, prompt: str) -> str:
        marker = next((m for m in ROUNDS if m in prompt), "Q_ONE")
        self.asked[marker] += 1
        answers = ROUNDS[marker]
        return answers[(self.asked[marker] - 1) % len(answers)]


@pytest.fixture(scope="module")
def model(merged_model, tmp_path_factory):
    im = load_for_inference(str(merged_model), load_weights=False)
    db_dir = tmp_path_factory.mktemp("dbs")
    shutil.copytree(db_path("airline").parent, db_dir / "airline")
    script = Rounds()
    engine = Engine(ScriptedBackend(im.tokenizer, script), im.builder, context_length=2048, batch_wait_ms=0)
    yield SimpleNamespace(engine=engine, script=script, db_dir=db_dir)
    engine.close()


@pytest.fixture(scope="module")
def url(model):
    settings = ServerSettings(model_name="rounds", db_dir=model.db_dir, serving=ServingConfig(max_tokens=64))
    with running(create_app(model.engine, settings)) as base:
        yield base


def ask(url: str, question: str, **body) -> dict:
    r = httpx.post(f"{url}/v1/sql", json={"question": question, "db_id": "airline", **body}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


# ------------------------------------------------------------------------------ executions per request


def test_an_executed_answer_runs_once(url, model, executed):
    body = ask(url, "Q_ONE how many flights?", execute=True)
    assert body["rows"] == [[flights()]]
    assert executed == [COUNT]


def test_a_vote_runs_each_distinct_candidate_once_and_the_winner_not_again(url, model, executed):
    model.script.asked.clear()
    body = ask(url, "Q_TWINS how many flights?", execute=True, n=4, vote=True)
    assert body["sql"] == COUNT and body["rows"] == [[flights()]] and body["error"] is None
    assert [(c["sql"], c["votes"], c["chosen"]) for c in body["candidates"]] == [
        (COUNT, 3, True),
        (SAME, 3, False),
        (COUNT, 3, False),
        (BROKEN, 0, False),
    ]
    assert sorted(executed) == sorted([COUNT, SAME, BROKEN])


def test_a_vote_without_execute_compiles_nothing_after_it(url, model, executed):
    model.script.asked.clear()
    body = ask(url, "Q_TWINS how many flights?", n=4, vote=True)
    assert body["sql"] == COUNT and body["rows"] is None and body["error"] is None
    assert sorted(executed) == sorted([COUNT, SAME, BROKEN])  # no EXPLAIN of the winner


def test_candidates_without_a_vote_are_each_checked_once(url, model, executed):
    model.script.asked.clear()
    body = ask(url, "Q_TWINS how many flights?", execute=True, n=4)
    assert body["sql"] == COUNT and body["rows"] == [[flights()]]
    assert [(c["ok"], c["chosen"], c["votes"]) for c in body["candidates"]] == [
        (True, True, None),
        (True, False, None),
        (True, False, None),
        (False, False, None),
    ]
    assert sorted(executed) == sorted([COUNT, SAME, BROKEN])


# ------------------------------------------------------------------------------ the Answerer alone


def test_the_answerer_repairs_without_http(model, executed):
    """A front end with no web server: a repair round is one more turn of the answering loop."""
    model.script.asked.clear()
    answerer = Answerer(ServedModel(model.engine.start()), databases=DatabaseDirectory(model.db_dir))

    async def answer():
        target = await answerer.target(db_id="airline")
        with answerer.reserve(2) as held:
            return await answerer.answer(
                "Q_FIXABLE how many?", target, max_tokens=64, execute=True, max_repairs=1, held=held
            )

    result = asyncio.run(answer())
    assert result.attempts == 2 and result.sql == COUNT and result.result.rows == [(flights(),)]
    assert [h["sql"] for h in result.history] == [BROKEN, COUNT] and "nope" in result.history[0]["error"]
    assert executed == [BROKEN, COUNT]
    assert model.engine.waiting == 0


def test_the_answering_path_does_not_load_the_web_framework():
    code = (
        "import sys, text2sql.serving.answering, text2sql.serving.predict; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_every_domain_error_has_its_status_code():
    kinds = [k for k in vars(errors).values() if isinstance(k, type) and issubclass(k, errors.AnswerError)]
    assert {k for k in kinds if k is not errors.AnswerError} <= set(STATUS)
    assert status_of(errors.UnknownDatabase("x", ["airline"])) == (404, "not_found_error")
    assert (
        status_of(errors.TooManyGenerations(""))
        == status_of(errors.PromptTooLong(""))
        == (400, "invalid_request_error")
    )
    assert status_of(errors.InvalidRequest("")) == (422, "invalid_request_error")
    assert status_of(errors.Busy("")) == (503, "server_busy")
    assert status_of(errors.DatabaseUnavailable("")) == (503, "database_unavailable")
    assert status_of(errors.ClientGone("")) == (499, "client_closed")


# ------------------------------------------------------------------------------ predict --n --vote


@pytest.fixture
def sampled(monkeypatch, tiny_llama_path):
    """The tiny model answers OTHER greedily and COUNT, SAME, COUNT, ... when sampling."""
    from text2sql.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_llama_path))
    drawn: list[str] = []

    def fake_generate(self, prompts, max_new_tokens, sampling=None, **kwargs):
        outputs = []
        for _ in prompts:
            if sampling is None or sampling.greedy:
                text = OTHER
            else:
                text = (COUNT, SAME)[len(drawn) % 2]
                drawn.append(text)
            ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
            outputs.append(RawOutput(ids, hit_eos=True))
        return outputs

    monkeypatch.setattr(HFGenerator, "generate", fake_generate)
    return drawn


def test_predict_votes_over_sampled_candidates(capsys, tiny_llama_path, sampled, executed):
    model = str(tiny_llama_path)
    code, out, err = run_cli(capsys, "predict", "--model", model, "--db", "airline", "How many?", "--n", "3",
                             "--vote", "--execute")  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0] == COUNT and out.splitlines()[-2].strip() == str(flights())
    assert "(2 of 3 candidates agree)" in err
    assert sorted(executed) == sorted([OTHER, COUNT, SAME])  # each candidate once, the winner not again
    code, out, _ = run_cli(capsys, "predict", "--model", model, "--db", "airline", "How many?", "--n", "3")
    assert code == 0 and out == OTHER + "\n"  # without --vote the greedy answer stays the answer


def test_predict_votes_with_an_endpoint(capsys):
    def script(body):  # greedy: OTHER; sampled: COUNT and SAME, which agree
        return Reply([COUNT, SAME]) if body["temperature"] > 0 else Reply(OTHER)

    endpoint = ScriptedEndpoint(script)
    with running(endpoint.app()) as base:
        code, out, err = run_cli(capsys, "predict", "--model", "openai:gpt-x", "--base-url", f"{base}/v1",
                                 "--db", "airline", "Q_ENDPOINT how many?", "--n", "3", "--vote")  # fmt: skip
    assert code == 0, err
    assert out == COUNT + "\n" and "(2 of 3 candidates agree)" in err
    greedy, drawn = endpoint.requests
    assert greedy["temperature"] == 0 and "n" not in greedy
    assert (drawn["n"], drawn["temperature"], drawn["top_p"]) == (2, 0.8, 0.95)


def test_bad_candidate_flags_are_one_line(capsys, tiny_llama_path, tmp_path):
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE head(age INTEGER)\n", encoding="utf-8")
    model = str(tiny_llama_path)
    code, _, err = run_cli(capsys, "predict", "--model", model, "--schema", schema, "q", "--n", "3", "--vote")
    assert_one_line_error(code, err, "--vote needs --db")
    code, _, err = run_cli(capsys, "predict", "--model", model, "--db", "airline", "q", "--n", "0")
    assert_one_line_error(code, err, "--n 0", "1 or more")
    code, _, err = run_cli(capsys, "predict", "--model", model, "--db", "airline", "q", "--temperature", "0")
    assert_one_line_error(code, err, "--temperature 0", "above 0")
