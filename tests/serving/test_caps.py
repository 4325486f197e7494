"""What one request may make the model do: every generating route counts its generations (prompts or
instances × n) against serving.max_generations_per_request (400) and admits them to the queue all at
once (503, nothing queued), and a client that disconnects has its queued generations dropped.

The server runs on loopback with a backend that answers from a script and can be held shut, so that
generations pile up in the queue exactly as they would behind a busy model; what was generated is
counted through the engine (its stats, what it is holding) and the prompts the backend received.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from types import SimpleNamespace
from urllib.parse import urlparse

import httpx
import pytest

from cli_support import assert_one_line_error, run_cli
from serving_support import ScriptedBackend, running
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_path
from text2sql.errors import ConfigError
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.engine import Engine
from text2sql.serving.server import serving_config

LIMIT = 4  # serving.max_generations_per_request of the test server
QUEUE = 8  # its engine's max_queue
ROUTES = ("chat", "completions", "sql", "vertex")


class GatedBackend(ScriptedBackend):
    """A scripted backend whose batches wait while the gate is shut: a model busy for as long as the test wants.
    A prompt is recorded only when it is generated."""

    def __init__(self, tokenizer):
        super().__init__(tokenizer, lambda prompt: "SELECT COUNT(*) FROM flights")
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def generate(self, prompts, max_new_tokens, sampling):
        self.entered.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().generate(prompts, max_new_tokens, sampling)


@pytest.fixture(scope="module")
def server(merged_model, tmp_path_factory):
    im = load_for_inference(str(merged_model), load_weights=False)
    db_dir = tmp_path_factory.mktemp("dbs")
    shutil.copytree(db_path("airline").parent, db_dir / "airline")
    backend = GatedBackend(im.tokenizer)
    # No batch window: the first request waiting is taken up at once, the rest wait in the queue.
    engine = Engine(backend, im.builder, context_length=2048, batch_size=16, batch_wait_ms=0, max_queue=QUEUE)
    serving = ServingConfig(max_generations_per_request=LIMIT, max_queue=QUEUE, max_tokens=16, max_repairs=1)
    settings = ServerSettings(model_name="gated", db_dir=db_dir, serving=serving)
    with running(create_app(engine, settings)) as url:
        yield SimpleNamespace(url=url, engine=engine, backend=backend)
    backend.gate.set()
    engine.close()


def request_for(route: str, count: int, tag: str) -> tuple[str, dict]:
    """(path, body) of a request on `route` that asks for `count` generations (an even count: where a
    route multiplies, half of it by 2, so that neither factor alone passes the limit)."""
    question = f"{tag} how many flights?"
    if route == "chat":
        return "/v1/chat/completions", {
            "messages": [{"role": "user", "content": question}],
            "n": count,
            "db_id": "airline",
        }
    if route == "completions":
        return "/v1/completions", {"prompt": [question, f"{tag} list flights"], "n": count // 2, "db_id": "airline"}
    if route == "sql":
        return "/v1/sql", {"question": question, "db_id": "airline", "n": count}
    instance = {"question": question, "db_id": "airline", "n": count // 2}
    return "/vertex/predict", {"instances": [instance, instance]}


def post(server, path: str, body: dict, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=timeout)


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def generated(server) -> str:
    return "\n".join(server.backend.prompts)


@contextmanager
def busy_model(server) -> Iterator[Callable[[str, dict], Future]]:
    """The model is busy with one request until the block ends; yields `send(path, body)`, which posts in
    the background (its answer comes when the model is free again)."""
    pool = ThreadPoolExecutor(8)
    server.backend.entered.clear()
    server.backend.gate.clear()
    pending = [pool.submit(post, server, *request_for("chat", 1, "Q_BLOCKER"))]
    try:
        assert server.backend.entered.wait(20), "the model never started the first request"
        wait_until(lambda: server.engine.waiting == 0, "the first request is taken up")

        def send(path: str, body: dict) -> Future:
            pending.append(pool.submit(post, server, path, body))
            return pending[-1]

        yield send
    finally:
        server.backend.gate.set()
        results = [f.result(60) for f in pending]
        pool.shutdown()
    assert [r.status_code for r in results] == [200] * len(results), [r.text for r in results]


# ------------------------------------------------------------------------------ per-request limit


@pytest.mark.parametrize("route", ROUTES)
def test_over_the_per_request_limit_is_400_and_nothing_is_generated(server, route):
    before = (server.engine.stats.requests, server.backend.calls)
    r = post(server, *request_for(route, LIMIT + 2, f"Q_OVER_{route}"))
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert "at most 4 per request (serving.max_generations_per_request)" in message and "6 generations" in message
    assert "\n" not in message
    assert (server.engine.stats.requests, server.backend.calls) == before
    assert server.engine.waiting == 0 and f"Q_OVER_{route}" not in generated(server)


@pytest.mark.parametrize("route", ROUTES)
def test_at_the_limit_every_generation_is_made(server, route):
    before = server.engine.stats.requests
    r = post(server, *request_for(route, LIMIT, f"Q_AT_{route}"))
    assert r.status_code == 200, r.text
    assert server.engine.stats.requests - before == LIMIT
    assert generated(server).count(f"Q_AT_{route}") == LIMIT


def test_4096_vertex_instances_are_refused_at_once_with_nothing_generated(server):
    instances = [{"question": f"Q_FLOOD {i} how many flights?", "db_id": "airline"} for i in range(4096)]
    before = (server.engine.stats.requests, server.backend.calls)
    r = post(server, "/vertex/predict", {"instances": instances})
    assert r.status_code == 400
    assert "4096 generations" in r.json()["error"]["message"]
    assert (server.engine.stats.requests, server.backend.calls) == before
    assert server.engine.waiting == 0 and "Q_FLOOD" not in generated(server)


def test_repairs_run_only_within_the_limit(server):
    """/v1/sql repairs generate n again per round: with n = 3 and a limit of 4 there is no room for one."""
    hopeless = {"question": "Q_REPAIR how many?", "schema": "CREATE TABLE t(a INTEGER)"}
    server.backend.script = lambda prompt: "SELECT nope FROM nowhere WHERE" if "Q_REPAIR" in prompt else "SELECT 1"
    try:
        before = server.engine.stats.requests
        one = post(server, "/v1/sql", {**hopeless, "n": 1}).json()
        assert one["attempts"] == 2 and server.engine.stats.requests - before == 2  # serving.max_repairs = 1
        before = server.engine.stats.requests
        three = post(server, "/v1/sql", {**hopeless, "n": 3}).json()
        assert three["attempts"] == 1 and three["error"] and server.engine.stats.requests - before == 3
    finally:
        server.backend.script = lambda prompt: "SELECT COUNT(*) FROM flights"


# ------------------------------------------------------------------------------ the queue


@pytest.mark.parametrize("route", ROUTES)
def test_a_request_that_would_pass_the_queue_is_503_and_queues_nothing(server, route):
    with busy_model(server) as send:
        send(*request_for("chat", 4, f"Q_WAITING_A_{route}"))
        send(*request_for("completions", 2, f"Q_WAITING_B_{route}"))
        wait_until(lambda: server.engine.waiting == 6, "6 generations wait")
        r = post(server, *request_for(route, 4, f"Q_REFUSED_{route}"), timeout=10)  # 6 + 4 > 8: refused at once
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["type"] == "server_busy" and "serving.max_queue" in error["message"]
        assert "\n" not in error["message"]
        assert server.engine.waiting == 6  # not one of the four was queued
    wait_until(lambda: server.engine.waiting == 0, "the queue drains")
    assert f"Q_REFUSED_{route}" not in generated(server)
    assert (
        generated(server).count(f"Q_WAITING_A_{route} ") == 4 and generated(server).count(f"Q_WAITING_B_{route} ") == 2
    )


def test_a_request_that_fits_the_queue_waits_its_turn(server):
    with busy_model(server) as send:
        send(*request_for("chat", 4, "Q_FITS_A"))
        wait_until(lambda: server.engine.waiting == 4, "4 generations wait")
        fits = send(*request_for("vertex", 4, "Q_FITS_B"))  # 4 + 4 = 8: exactly the queue
        wait_until(lambda: server.engine.waiting == QUEUE, "the queue is full")
    assert fits.result(60).status_code == 200


# ------------------------------------------------------------------------------ clients that leave


def raw_post(url: str, path: str, body: dict) -> socket.socket:
    """Send a request on a socket of our own, without reading the answer: a client that can hang up."""
    address = urlparse(url)
    data = json.dumps(body).encode()
    sock = socket.create_connection((address.hostname, address.port))
    head = f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


@pytest.mark.parametrize("route", ROUTES)
def test_generations_of_a_client_that_disconnects_are_dropped(server, route):
    dropped = server.engine.stats.dropped
    # Vertex instances are answered in turn: the first one's 2 generations are queued, the second's
    # 2 slots only held for it.
    queued = 2 if route == "vertex" else 4
    with busy_model(server):
        sock = raw_post(server.url, *request_for(route, 4, f"Q_GONE_{route}"))
        wait_until(lambda: server.engine.waiting == 4, "its 4 generations are admitted")
        sock.close()
        # Their slots come back while the model is still busy: they were cancelled, not run.
        wait_until(lambda: server.engine.waiting == 0, "the queued generations are dropped")
    after = post(server, *request_for("chat", 2, "Q_AFTER"))  # queued behind them: the worker has passed them
    assert after.status_code == 200
    assert server.engine.stats.dropped - dropped == queued
    assert f"Q_GONE_{route}" not in generated(server)


# ------------------------------------------------------------------------------ the setting


def test_a_limit_above_the_queue_is_refused(capsys):
    with pytest.raises(ConfigError, match="max_generations_per_request .*above serving.max_queue"):
        serving_config(ServingConfig(), {"max_generations_per_request": 64, "max_queue": 32})
    code, _, err = run_cli(capsys, "serve", "--model", "no/such/model", "--max-generations-per-request", "0")
    assert_one_line_error(code, err, "invalid serving setting: max_generations_per_request")
