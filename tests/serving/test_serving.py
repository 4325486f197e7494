"""The HTTP server: OpenAI clients and plain HTTP against uvicorn on loopback, on a tiny merged model.

Two servers: `real` runs the tiny model end to end (random weights: its SQL is garbage, so tests
assert protocol, token counts and batching); `scripted` swaps the model for a backend that answers
from a script, to test SQL-only answers, execution, the repair loop and write attempts exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sqlite3
from types import SimpleNamespace

import httpx
import openai
import pytest
from openai import OpenAI

from serving_support import ScriptedBackend, running
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_ids, db_path
from text2sql.data.schema import schema_text
from text2sql.inference.generate import Sampling
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.engine import Engine
from text2sql.serving.repair import repair_question
from text2sql.serving.server import build_server

KEY = "sk-test-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
HEAD = "CREATE TABLE head(age INTEGER)"


@pytest.fixture(scope="module")
def real(merged_model):
    server = build_server(str(merged_model), api_key=KEY, model_name="tiny-merged", max_body_bytes=4096)
    with running(server.app) as url:
        yield SimpleNamespace(
            url=url,
            server=server,
            builder=server.engine.builder,
            client=OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0),
        )
    server.engine.close()


# ------------------------------------------------------------------------------ the real tiny model


def test_health_is_open_and_saved_settings_apply(real):
    r = httpx.get(f"{real.url}/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "model": "tiny-merged"}
    # serving settings saved beside the model are used; flags (max_body_bytes) win over them
    assert real.server.settings.serving.max_tokens == 8
    assert real.server.settings.serving.max_body_bytes == 4096


def test_openai_chat_completion_with_real_token_counts(real):
    question = "How many heads of the departments are older than 56?"
    out = real.client.chat.completions.create(
        model="anything",
        messages=[{"role": "system", "content": HEAD}, {"role": "user", "content": question}],
    )
    assert out.object == "chat.completion" and out.model == "tiny-merged"
    choice = out.choices[0]
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    # the prompt is the training-time prompt, and prompt_tokens its real length
    prompt = real.builder.prompt_text(question, HEAD + ";")
    assert out.usage.prompt_tokens == len(real.builder.encode_prompts([prompt])[0])
    assert 1 <= out.usage.completion_tokens <= 8  # serving.max_tokens from the saved config
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_openai_completions_and_models(real):
    assert [m.id for m in real.client.models.list()] == ["tiny-merged"]
    out = real.client.completions.create(
        model="tiny-merged",
        prompt=["How many flights are there?", "List airport names."],
        max_tokens=3,
        extra_body={"db_id": "airline"},
    )
    assert [c.index for c in out.choices] == [0, 1]
    assert out.usage.completion_tokens <= 6 and out.usage.prompt_tokens > 100  # the airline schema is in


def test_sql_over_http_with_and_without_execute(real):
    r = httpx.post(f"{real.url}/v1/sql", json={"question": "How many flights?", "db_id": "airline"}, headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["sql"], str) and body["columns"] is None and body["rows"] is None
    assert body["attempts"] == 1 and body["usage"]["prompt_tokens"] > 100
    r = httpx.post(
        f"{real.url}/v1/sql", headers=AUTH, json={"question": "How many flights?", "db_id": "airline", "execute": True}
    )
    assert r.status_code == 200
    body = r.json()
    # a random model's SQL rarely runs; either way the answer is consistent
    assert (body["error"] is None) == (body["rows"] is not None)


def test_vertex_prediction_route_answers_each_instance(real):
    """The route a model registered in the Vertex AI Model Registry is served on (its container spec)."""
    instances = [
        {"question": "How many flights?", "db_id": "airline"},
        {"question": "List airports", "db_id": "airline"},
    ]
    r = httpx.post(f"{real.url}/vertex/predict", json={"instances": instances, "parameters": {}}, headers=AUTH)
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    assert len(predictions) == 2 and all(isinstance(p["sql"], str) and p["db_id"] == "airline" for p in predictions)
    r = httpx.post(f"{real.url}/vertex/predict", json={"instances": []}, headers=AUTH)
    assert r.status_code == 422


def test_concurrent_requests_all_succeed_and_are_batched(real):
    engine = real.server.engine
    before = engine.stats.as_dict()

    async def fire():
        async with httpx.AsyncClient(base_url=real.url, headers=AUTH, timeout=120) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/v1/sql",
                        json={"question": f"How many flights leave gate {i}?", "db_id": "airline", "max_tokens": 4},
                    )
                    for i in range(20)
                )
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * 20
    after = engine.stats.as_dict()
    assert after["requests"] - before["requests"] == 20
    assert after["batches"] - before["batches"] < 20  # fewer generate calls than requests
    assert after["max_batch"] > 1


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": f"Basic {KEY}"}]
)
def test_missing_or_wrong_key_is_401(real, headers):
    for method, path in (
        ("GET", "/v1/models"),
        ("POST", "/v1/sql"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
    ):
        r = httpx.request(method, f"{real.url}{path}", json={"question": "q", "db_id": "airline"}, headers=headers)
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{real.url}/v1", api_key="wrong", max_retries=0).models.list()


def test_oversized_body_is_413_declared_or_chunked(real):
    big = {"question": "x" * 5000, "db_id": "airline"}
    r = httpx.post(f"{real.url}/v1/sql", json=big, headers=AUTH)
    assert r.status_code == 413 and "4096 bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: the server must count as it reads
        yield b'{"question": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'", "db_id": "airline"}'

    r = httpx.post(f"{real.url}/v1/sql", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413


def test_unknown_db_id_is_404_with_the_known_ids(real):
    r = httpx.post(f"{real.url}/v1/sql", json={"question": "q", "db_id": "../../etc/passwd"}, headers=AUTH)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["known_ids"] == db_ids() and "airline" in error["message"]
    with pytest.raises(openai.NotFoundError):
        real.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "q"}], extra_body={"db_id": "nope"}
        )


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"db_id": "airline"}, "question"),
        ({"question": "q"}, "either db_id"),
        ({"question": "q", "db_id": "airline", "schema": HEAD}, "either db_id"),
        ({"question": "q", "schema": HEAD, "execute": True}, "execute needs a db_id"),
        ({"question": "q", "db_id": "airline", "max_tokens": 100000}, "limit of 512"),
    ],
)
def test_bad_sql_requests_are_422(real, body, needle):
    r = httpx.post(f"{real.url}/v1/sql", json=body, headers=AUTH)
    assert r.status_code == 422 and needle in r.json()["error"]["message"]


def test_bad_openai_requests(real):
    messages = [{"role": "user", "content": "How many flights?"}]
    with pytest.raises(openai.UnprocessableEntityError, match="limit of 512"):
        real.client.chat.completions.create(model="m", messages=messages, max_tokens=513)
    with pytest.raises(openai.BadRequestError, match=r"at most 16 per request \(serving.max_generations_per_request\)"):
        real.client.chat.completions.create(model="m", messages=messages, n=17)
    with pytest.raises(openai.UnprocessableEntityError, match="no question"):
        real.client.chat.completions.create(model="m", messages=[{"role": "system", "content": HEAD}])


def test_n_choices_and_streaming_through_the_openai_client(real):
    messages = [{"role": "system", "content": HEAD}, {"role": "user", "content": "How many heads are older than 56?"}]
    whole = real.client.chat.completions.create(model="m", messages=messages, n=3, temperature=1.2, seed=1)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert all(isinstance(c.message.content, str) for c in whole.choices)
    greedy = real.client.chat.completions.create(model="m", messages=messages)
    stream = real.client.chat.completions.create(model="m", messages=messages, stream=True)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == greedy.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == greedy.choices[0].finish_reason
    texts: dict[int, str] = {}
    for chunk in real.client.completions.create(
        model="m", prompt=["How many flights?", "List airport names."], n=2, max_tokens=3, stream=True,
        extra_body={"db_id": "airline"},
    ):  # fmt: skip
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + c.text
    assert sorted(texts) == [0, 1, 2, 3] and texts[0] == texts[1]  # greedy: the n choices of a prompt agree


# ------------------------------------------------------------------------------ scripted answers


VOTES: list[str] = []
CANDIDATES: list[str] = []


def script(prompt: str) -> str:
    """The 'model' of the scripted server: answers keyed by a marker in the question."""
    if "Q_CHATTY" in prompt:
        return "Here is the SQL query:\n```sql\nSELECT COUNT(*) FROM flights;\n```\nIt counts the flights."
    if "Q_FIXABLE" in prompt:
        return "SELECT COUNT(*) FROM flights" if "The previous SQL failed" in prompt else "SELECT nope FROM flights"
    if "Q_HOPELESS" in prompt:
        return "SELECT name FROM nowhere"
    if "Q_DELETE" in prompt:
        return "DELETE FROM flights"
    if "Q_UPDATE" in prompt:
        return "UPDATE flights SET flight_id = 0"
    if "Q_MANY" in prompt:
        return "SELECT * FROM flights"
    if "Q_VOTE" in prompt:  # candidates in turn: one alone, two that agree by result, one that fails
        VOTES.append(prompt)
        return ("SELECT COUNT(*) FROM airlines", "SELECT COUNT(*) FROM flights", "SELECT count(flight_id) FROM flights",
                "SELECT nope FROM flights")[(len(VOTES) - 1) % 4]  # fmt: skip
    if "Q_CANDIDATES" in prompt:  # candidates in turn: every fifth one fails
        CANDIDATES.append(prompt)
        return "SELECT nope FROM flights" if len(CANDIDATES) % 5 == 0 else f"SELECT {len(CANDIDATES)} FROM flights"
    if "Q_STOP" in prompt:
        return "SELECT 1 AS a STOP and then many more words that are cut away"
    return "SELECT COUNT(*) FROM flights"


@pytest.fixture(scope="module")
def scripted(merged_model, tmp_path_factory):
    im = load_for_inference(str(merged_model), load_weights=False)
    db_dir = tmp_path_factory.mktemp("dbs")
    shutil.copytree(db_path("airline").parent, db_dir / "airline")
    backend = ScriptedBackend(im.tokenizer, script)
    engine = Engine(backend, im.builder, context_length=1024, batch_size=8, batch_wait_ms=5)
    settings = ServerSettings(
        model_name="scripted", db_dir=db_dir, serving=ServingConfig(max_repairs=2, max_tokens=64, max_rows=5)
    )
    with running(create_app(engine, settings)) as url:
        yield SimpleNamespace(
            url=url,
            backend=backend,
            builder=im.builder,
            db=db_dir / "airline" / "airline.sqlite",
            client=OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0),
        )
    engine.close()


def sql_request(scripted, **body) -> dict:
    r = httpx.post(f"{scripted.url}/v1/sql", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_answer_is_sql_only_and_the_prompt_is_the_training_prompt(scripted):
    question = "Q_CHATTY how many flights?"
    out = scripted.client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": f"Only SQL. Context --> {HEAD}"},
            {"role": "user", "content": question},
        ],
    )
    assert out.choices[0].message.content == "SELECT COUNT(*) FROM flights"
    assert scripted.backend.prompts[-1] == scripted.builder.prompt_text(question, HEAD + ";")


def test_chat_db_id_extension_reads_the_schema(scripted):
    scripted.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "How many flights?"}], extra_body={"db_id": "airline"}
    )
    assert schema_text(scripted.db) in scripted.backend.prompts[-1]


def test_execute_returns_the_rows_sqlite_returns(scripted):
    body = sql_request(scripted, question="How many flights?", db_id="airline", execute=True)
    with sqlite3.connect(scripted.db) as conn:
        expected = conn.execute("SELECT COUNT(*) FROM flights").fetchall()
    assert body["sql"] == "SELECT COUNT(*) FROM flights"
    assert body["columns"] == ["COUNT(*)"] and body["rows"] == [list(r) for r in expected]
    assert body["error"] is None and body["attempts"] == 1 and body["truncated"] is False
    assert body["candidates"] is None  # n = 1: one answer, no list
    many = sql_request(scripted, question="Q_MANY", db_id="airline", execute=True)
    assert len(many["rows"]) == 5 and many["truncated"] is True  # serving.max_rows


def test_schema_instead_of_a_database(scripted):
    body = sql_request(scripted, question="How old are heads?", schema=f"Tables: {HEAD}")
    assert body["error"] is None and body["rows"] is None
    assert scripted.backend.prompts[-1] == scripted.builder.prompt_text("How old are heads?", HEAD + ";")


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("question", ["Q_DELETE", "Q_UPDATE"])
@pytest.mark.parametrize("execute", [True, False])
def test_sql_that_writes_is_an_error_and_the_database_is_unchanged(scripted, question, execute):
    before, mtime = digest(scripted.db), scripted.db.stat().st_mtime_ns
    body = sql_request(scripted, question=question, db_id="airline", execute=execute)
    assert body["error"] and body["error_category"] == "forbidden"
    assert body["rows"] is None and body["attempts"] == 3  # repairs tried, none allowed to write
    assert digest(scripted.db) == before and scripted.db.stat().st_mtime_ns == mtime


def test_repair_loop_asks_again_with_the_error(scripted):
    body = sql_request(scripted, question="Q_FIXABLE how many flights?", db_id="airline", execute=True)
    assert body["attempts"] == 2 and body["error"] is None
    assert body["sql"] == "SELECT COUNT(*) FROM flights" and body["rows"]
    repaired = repair_question("Q_FIXABLE how many flights?", "SELECT nope FROM flights", "no such column: nope")
    assert scripted.backend.prompts[-1] == scripted.builder.prompt_text(repaired, schema_text(scripted.db))


def test_repair_loop_gives_up_after_max_repairs(scripted):
    body = sql_request(scripted, question="Q_HOPELESS", db_id="airline")  # compile check, no execute
    assert body["attempts"] == 3 and body["error_category"] == "schema" and "nowhere" in body["error"]


def test_stop_strings_cut_the_answer_and_its_token_count(scripted):
    full = scripted.client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Q_STOP"}])
    cut = scripted.client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Q_STOP"}], stop=["STOP"]
    )
    assert cut.choices[0].message.content == "SELECT 1 AS a"
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens


def test_temperature_samples_and_zero_is_greedy(scripted):
    messages = [{"role": "user", "content": "How many flights?"}]
    scripted.client.chat.completions.create(model="m", messages=messages, temperature=0.7, top_p=0.9)
    assert scripted.backend.samplings[-1] == Sampling(temperature=0.7, top_p=0.9)
    scripted.client.chat.completions.create(model="m", messages=messages, temperature=0)
    assert scripted.backend.samplings[-1].greedy


def test_prompt_longer_than_the_model_reads_is_400(scripted):
    with pytest.raises(openai.BadRequestError, match="this model reads at most 1024"):
        scripted.client.completions.create(model="m", prompt="flights " * 1500)


def test_sql_votes_over_n_candidates_by_result(scripted):
    VOTES.clear()
    body = sql_request(scripted, question="Q_VOTE how many flights?", db_id="airline", n=4, vote=True, execute=True)
    assert body["sql"] == "SELECT COUNT(*) FROM flights" and body["rows"] and body["error"] is None
    votes = {c["sql"]: (c["votes"], c["chosen"], c["ok"]) for c in body["candidates"]}
    assert votes == {
        "SELECT COUNT(*) FROM airlines": (1, False, True),
        "SELECT COUNT(*) FROM flights": (2, True, True),
        "SELECT count(flight_id) FROM flights": (2, False, True),
        "SELECT nope FROM flights": (0, False, False),
    }
    assert [s.greedy for s in scripted.backend.samplings[-4:]] == [True, False, False, False]
    r = httpx.post(f"{scripted.url}/v1/sql", json={"question": "Q_VOTE?", "schema": HEAD, "vote": True, "n": 2})
    assert r.status_code == 422 and "vote needs a db_id" in r.json()["error"]["message"]


def test_sql_returns_every_candidate_it_generated(scripted):
    """n = 16 without vote: the greedy answer is `sql`, and all 16 candidates come back, each run."""
    CANDIDATES.clear()
    body = sql_request(scripted, question="Q_CANDIDATES how many?", db_id="airline", n=16, execute=True)
    assert len(CANDIDATES) == 16  # generated: 16, no more
    candidates = body["candidates"]
    assert [c["sql"] for c in candidates] == [
        "SELECT nope FROM flights" if i % 5 == 0 else f"SELECT {i} FROM flights" for i in range(1, 17)
    ]
    assert body["sql"] == "SELECT 1 FROM flights" and body["rows"] and body["attempts"] == 1
    assert [c["chosen"] for c in candidates] == [True] + [False] * 15
    assert [c["ok"] for c in candidates] == [i % 5 != 0 for i in range(1, 17)]
    assert all("nope" in c["error"] for c in candidates if not c["ok"]) and all(c["votes"] is None for c in candidates)
    assert [s.greedy for s in scripted.backend.samplings[-16:]] == [True] + [False] * 15
    # usage counts every candidate's tokens (each with its end-of-sequence token), not the answer's alone
    tokens = [len(scripted.builder.tokenizer.encode(c["sql"], add_special_tokens=False)) + 1 for c in candidates]
    assert body["usage"]["completion_tokens"] == sum(tokens)
