"""Serving and predicting on PostgreSQL (a real server) and DuckDB: `/v1/sql` by db_id mapped to a
URL, `predict --db postgresql://... --execute`, and a database server that goes away (503, or one line)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import httpx
import pytest

from cli_support import assert_one_line_error, run_cli
from pg_support import ADMIN_PASSWORD, READER_PASSWORD, start_server
from serving_support import ScriptedBackend, running
from text2sql.commands.serve import database_flags
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_path
from text2sql.errors import ConfigError
from text2sql.inference.generate import HFGenerator, RawOutput
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.engine import Engine
from text2sql.sql.copy import copy_database

AIRLINE = db_path("airline")
COUNT = "SELECT COUNT(*) FROM flights"


def _flights() -> int:
    with sqlite3.connect(AIRLINE) as conn:
        return conn.execute(COUNT).fetchone()[0]


@pytest.fixture(scope="module")
def airline_copies(postgres_server, tmp_path_factory) -> dict[str, str]:
    pg = postgres_server.url("postgres", schema="serve_airline")
    duck = str(tmp_path_factory.mktemp("duck") / "airline.duckdb")
    for target in (pg, duck):
        copy_database(AIRLINE, target, force=True, show_progress=False)
    reader = postgres_server.grant_reader("postgres", "serve_airline")  # model SQL runs only as a role that may read
    return {"pg_airline": reader, "duck_airline": duck}


@pytest.fixture(scope="module")
def app_on(merged_model):
    """A server over the mapped databases that always answers COUNT."""

    def make(databases: dict[str, str]):
        im = load_for_inference(str(merged_model), load_weights=False)
        backend = ScriptedBackend(im.tokenizer, lambda prompt: COUNT)
        engine = Engine(backend, im.builder, context_length=2048, batch_size=4, batch_wait_ms=5)
        settings = ServerSettings(model_name="scripted", databases=databases, serving=ServingConfig(max_tokens=64))
        return create_app(engine, settings), backend, engine

    return make


def test_v1_sql_runs_on_postgres_and_duckdb(app_on, airline_copies):
    app, backend, engine = app_on(airline_copies)
    try:
        with running(app) as url:
            for db_id, type_word in (("pg_airline", "bigint"), ("duck_airline", "BIGINT")):
                r = httpx.post(f"{url}/v1/sql", json={"question": "How many flights?", "db_id": db_id, "execute": True})
                assert r.status_code == 200, r.text
                assert r.json()["rows"] == [[_flights()]] and r.json()["error"] is None
                assert f"flight_id {type_word}" in backend.prompts[-1]  # the engine's own schema was shown
            # The bundled SQLite files are still served by id next to the mapped ones.
            r = httpx.post(f"{url}/v1/sql", json={"question": "?", "db_id": "airline", "execute": True})
            assert r.status_code == 200 and r.json()["rows"] == [[_flights()]]
    finally:
        engine.close()


def test_a_database_server_that_goes_away_is_a_503(app_on, monkeypatch):
    server = start_server()  # a server of its own, to stop
    monkeypatch.setenv("PGPASSWORD", ADMIN_PASSWORD)  # the session's pgpass file knows only its own server
    try:
        copy_database(AIRLINE, server.url("postgres", schema="away"), show_progress=False)
        url = server.grant_reader("postgres", "away")  # model SQL runs only as a role that may read
        monkeypatch.setenv("PGPASSWORD", READER_PASSWORD)
        app, _, engine = app_on({"away": url, "never": url.replace("schema=away", "schema=never")})
        try:
            with running(app) as base:
                ok = httpx.post(f"{base}/v1/sql", json={"question": "?", "db_id": "away", "execute": True})
                assert ok.status_code == 200 and ok.json()["rows"] == [[_flights()]]
                server.stop()
                for db_id in ("away", "never"):  # schema read before (cached) or not: both fail the same way
                    r = httpx.post(
                        f"{base}/v1/sql", json={"question": "?", "db_id": db_id, "execute": True}, timeout=60
                    )
                    assert r.status_code == 503, r.text
                    error = r.json()["error"]
                    assert error["type"] == "database_unavailable" and "cannot connect" in error["message"]
        finally:
            engine.close()
    finally:
        try:
            server.stop()
        except subprocess.CalledProcessError:
            pass  # stopped above
        shutil.rmtree(server.folder, ignore_errors=True)


def test_predict_executes_on_postgres(capsys, tiny_llama_path, airline_copies, monkeypatch):
    from text2sql.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_llama_path))
    prompts: list[str] = []

    def fake_generate(self, ids, max_new_tokens, sampling=None, **kwargs):
        prompts.extend(tokenizer.decode(p) for p in ids)
        return [RawOutput(tokenizer.encode(COUNT, add_special_tokens=False) + [tokenizer.eos_token_id], hit_eos=True)]

    monkeypatch.setattr(HFGenerator, "generate", fake_generate)
    code, out, err = run_cli(
        capsys, "predict", "--model", tiny_llama_path, "--db", airline_copies["pg_airline"], "How many?", "--execute"
    )
    assert code == 0, err
    assert out.splitlines()[0] == COUNT and out.splitlines()[-2].strip() == str(_flights())
    assert "flight_id bigint" in prompts[0]


def test_predict_and_serve_flags_fail_in_one_line(capsys, tiny_llama_path):
    away = "postgresql://postgres@127.0.0.1:9/postgres"
    code, _, err = run_cli(capsys, "predict", "--model", tiny_llama_path, "--db", away, "q", "--execute")
    assert_one_line_error(code, err, "cannot connect to postgresql://postgres@127.0.0.1:9/postgres")
    with pytest.raises(ConfigError, match="write ID=DB"):
        database_flags(["shop"])
    with pytest.raises(ConfigError, match="holds a password"):
        database_flags(["shop=postgresql://me:secret@host/shop"])
    assert database_flags(["a=x.duckdb", "b=postgresql://me@host/b"]) == {
        "a": "x.duckdb",
        "b": "postgresql://me@host/b",
    }
