"""A bad request never fails a good one, and hostile SQL cannot hurt the server: a lone surrogate
gets its own 422 while its neighbours in the batch succeed, a generator failure on one prompt is
that request's alone, and SQL built to exhaust memory or write comes back as an error."""

import asyncio
import hashlib
import shutil
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from serving_support import ScriptedBackend, running
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_path
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.engine import Engine, GenerationRequest


def script(prompt: str) -> str:
    if "Q_BLOB" in prompt:
        return "SELECT zeroblob(20000000) FROM flights"
    if "Q_BIG" in prompt:
        return "SELECT zeroblob(900000) FROM flights, airports"
    if "Q_DELETE" in prompt:
        return "DELETE FROM flights"
    return "SELECT COUNT(*) FROM flights"


@pytest.fixture(scope="module")
def server(merged_model, tmp_path_factory):
    im = load_for_inference(str(merged_model), load_weights=False)
    db_dir = tmp_path_factory.mktemp("dbs")
    shutil.copytree(db_path("airline").parent, db_dir / "airline")
    # A slow backend and a wait window, so that concurrent requests share batches.
    engine = Engine(ScriptedBackend(im.tokenizer, script, delay=0.2), im.builder, batch_size=16, batch_wait_ms=100)
    settings = ServerSettings(model_name="scripted", db_dir=db_dir, serving=ServingConfig(max_tokens=64))
    with running(create_app(engine, settings)) as url:
        yield url, db_dir / "airline" / "airline.sqlite", engine
    engine.close()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_lone_surrogate_fails_alone(server):
    url, _, engine = server
    bad = b'{"question": "How many flights? \\ud800", "db_id": "airline"}'
    good = b'{"question": "How many flights?", "db_id": "airline"}'
    before = engine.stats.max_batch

    def post(body: bytes) -> httpx.Response:
        return httpx.post(f"{url}/v1/sql", content=body, headers={"Content-Type": "application/json"}, timeout=60)

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, [bad, *[good] * 10, bad]))
    assert [r.status_code for r in responses] == [422, *[200] * 10, 422]
    assert "surrogate" in responses[0].json()["error"]["message"] or "unicode" in responses[0].text.lower()
    assert all(r.json()["sql"] == "SELECT COUNT(*) FROM flights" for r in responses[1:-1])
    assert engine.stats.max_batch > max(before, 1)  # the good ones were batched together


def test_a_generation_failure_on_one_prompt_is_that_requests_alone(merged_model):
    im = load_for_inference(str(merged_model), load_weights=False)

    class Failing(ScriptedBackend):
        def generate(self, prompts, max_new_tokens, sampling):
            if any("Q_CRASH" in self.tokenizer.decode(p) for p in prompts):
                raise RuntimeError("the backend failed on this prompt")
            return super().generate(prompts, max_new_tokens, sampling)

    engine = Engine(Failing(im.tokenizer, script), im.builder, batch_size=8, batch_wait_ms=200).start()

    async def ask_all():
        questions = ["How many flights?"] * 5 + ["Q_CRASH"] + ["How many flights?"] * 2
        requests = [GenerationRequest(im.builder.prompt_text(q, "")) for q in questions]
        return await asyncio.gather(*(engine.generate(r) for r in requests), return_exceptions=True)

    try:
        results = asyncio.run(ask_all())
    finally:
        engine.close()
    failed = [r for r in results if isinstance(r, Exception)]
    assert len(failed) == 1 and "failed on this prompt" in str(failed[0])
    assert all(r.text == "SELECT COUNT(*) FROM flights" for r in results if not isinstance(r, Exception))


def test_hostile_sql_is_an_error_and_leaves_the_database_and_memory_alone(server):
    url, db, _ = server
    before = _digest(db)
    tracemalloc.start()
    try:
        answers = {
            q: httpx.post(f"{url}/v1/sql", json={"question": q, "db_id": "airline", "execute": True}, timeout=60).json()
            for q in ("Q_BLOB", "Q_BIG", "Q_DELETE")
        }
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert "too big" in answers["Q_BLOB"]["error"]
    assert "more than 64 MB" in answers["Q_BIG"]["error"]  # 900 KB x every flight x every airport
    assert answers["Q_DELETE"]["error_category"] == "forbidden"
    assert all(a["rows"] is None for a in answers.values())
    assert peak_mb < 64 + 32  # the result budget and one row, not the gigabytes the queries ask for
    assert _digest(db) == before
