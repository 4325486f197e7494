"""`text2sql mcp`: the official MCP client against the server, over streamable HTTP (in this process,
the model swapped for a scripted backend so SQL and rows are exact) and over stdio (`text2sql mcp` as
a subprocess on the tiny model); the audit lines of every call; one-line errors of the command."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import sys
from dataclasses import replace
from types import SimpleNamespace

import httpx
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from cli_support import assert_one_line_error, run_cli
from serving_support import ScriptedBackend, running
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_path
from text2sql.data.example import Example
from text2sql.data.schema import schema_text
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.audit import ANONYMOUS, AuditLog, client_id
from text2sql.serving.engine import Engine
from text2sql.serving.errors import UnknownDatabase
from text2sql.serving.mcp_server import Tools, http_app, mcp_server

KEY = "sk-mcp-secret-0123456789"
TOOLS = {"list_databases", "describe", "ask", "run_sql"}
AUDIT_FIELDS = {"time", "client", "source", "database", "question", "sql", "executed", "rows", "error", "latency_ms"}
COUNT = "SELECT COUNT(*) FROM flights"


def script(prompt: str) -> str:
    """The scripted model: answers keyed by a marker in the question."""
    if "Q_DELETE" in prompt:
        return "DELETE FROM flights"
    if "Q_MANY" in prompt:
        return "SELECT * FROM flights"
    return COUNT


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count_flights(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(COUNT).fetchone()[0]


def audit_lines(path, since: int = 0) -> list[dict]:
    with open(path, "rb") as f:
        f.seek(since)
        return [json.loads(line) for line in f.read().decode().splitlines()]


def holds(exc: BaseException, kind: type) -> bool:
    """Whether `exc` is a `kind`, or an exception group with one inside."""
    return isinstance(exc, kind) or any(holds(e, kind) for e in getattr(exc, "exceptions", ()))


def call(url: str, key: str | None, work):
    """`work(client)` on an MCP client session over streamable HTTP, with `key` as the bearer token."""

    async def main():
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
                return await work(client)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def http(merged_model, tmp_path_factory):
    im = load_for_inference(str(merged_model), load_weights=False)
    db_dir = tmp_path_factory.mktemp("dbs")
    shutil.copytree(db_path("airline").parent, db_dir / "airline")
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    # batch_wait_ms 50: concurrent asks on a busy machine still meet in a batch
    backend = ScriptedBackend(im.tokenizer, script)
    engine = Engine(backend, im.builder, context_length=1024, batch_wait_ms=50)
    settings = ServerSettings(
        db_dir=db_dir, api_key=KEY, serving=ServingConfig(max_tokens=64, max_rows=5), audit=AuditLog(audit)
    )
    served = create_app(engine, settings).state.served
    engine.start()
    app = http_app(mcp_server(served), api_key=KEY, max_body_bytes=settings.serving.max_body_bytes)
    with running(app) as url:
        yield SimpleNamespace(
            url=url,
            served=served,
            engine=engine,
            backend=backend,
            db=db_dir / "airline" / "airline.sqlite",
            audit=audit,
        )
    engine.close()
    settings.audit.close()


# ------------------------------------------------------------------------------ streamable HTTP


def test_tools_and_schema_resources_are_listed(http):
    async def work(client):
        return await client.list_tools(), await client.list_resources(), await client.read_resource("schema://airline")

    tools, resources, schema = call(http.url, KEY, work)
    assert {t.name for t in tools.tools} == TOOLS
    assert all(t.annotations.read_only_hint for t in tools.tools)
    ask = next(t for t in tools.tools if t.name == "ask")
    assert set(ask.input_schema["properties"]) == {"db", "question", "history", "execute"}
    assert ask.input_schema["required"] == ["db", "question"]
    assert [str(r.uri) for r in resources.resources] == ["schema://airline"]
    assert schema.contents[0].text == schema_text(http.db)


def test_ask_returns_the_sql_and_its_rows(http):
    async def work(client):
        return [
            await client.call_tool("ask", {"db": "airline", "question": "How many flights?"}),
            await client.call_tool("ask", {"db": "airline", "question": "Q_MANY flights", "execute": True}),
            await client.call_tool("ask", {"db": "airline", "question": "Q_MANY", "execute": False}),
            await client.call_tool(
                "ask",
                {"db": "airline", "question": "And in May?", "history": [{"question": "How many?", "sql": COUNT}]},
            ),
        ]

    count, many, unexecuted, follow_up = (r.structured_content for r in call(http.url, KEY, work))
    assert f"Q: How many?\nSQL: {COUNT}" in http.backend.prompts[-1]  # the follow-up's prompt shows the turn before
    assert count["sql"] == COUNT and count["executed"] is True and count["error"] is None
    assert count["columns"] == ["COUNT(*)"] and count["rows"] == [[count_flights(http.db)]]
    assert many["sql"] == "SELECT * FROM flights" and len(many["rows"]) == 5 and many["truncated"] is True
    assert "serving.max_rows" in many["note"] and count["note"] is None
    assert unexecuted["executed"] is False and unexecuted["rows"] == [] and unexecuted["error"] is None
    assert follow_up["sql"] == COUNT and follow_up["attempts"] == 1


def test_run_sql_runs_read_only_and_a_delete_changes_nothing(http):
    before, mtime = digest(http.db), http.db.stat().st_mtime_ns

    async def work(client):
        return [
            await client.call_tool(
                "run_sql", {"db": "airline", "sql": "SELECT name FROM airports ORDER BY name LIMIT 2"}
            ),
            await client.call_tool("run_sql", {"db": "airline", "sql": "DELETE FROM flights"}),
            await client.call_tool("run_sql", {"db": "airline", "sql": "SELECT 1; DROP TABLE flights"}),
            await client.call_tool("ask", {"db": "airline", "question": "Q_DELETE every flight"}),
        ]

    rows, delete, two, asked = call(http.url, KEY, work)
    with sqlite3.connect(http.db) as conn:
        expected = conn.execute("SELECT name FROM airports ORDER BY name LIMIT 2").fetchall()
    assert not rows.is_error and rows.structured_content["rows"] == [list(r) for r in expected]
    assert delete.is_error and "forbidden" in delete.content[0].text
    assert two.is_error
    assert not asked.is_error and asked.structured_content["error_category"] == "forbidden"
    assert asked.structured_content["rows"] == []
    assert digest(http.db) == before and http.db.stat().st_mtime_ns == mtime


def test_what_stops_a_request_is_a_tool_error_with_the_message_serve_gives(http):
    async def work(client):
        return [
            await client.call_tool("ask", {"db": "nope", "question": "How many?"}),
            await client.call_tool("run_sql", {"db": "../../etc/passwd", "sql": "SELECT 1"}),
            await client.call_tool("describe", {"db": "airline", "tables": ["airports", "hangars"]}),
            await client.call_tool("ask", {"db": "airline", "question": "  "}),
        ]

    unknown, escape, table, empty = call(http.url, KEY, work)
    assert all(r.is_error for r in (unknown, escape, table, empty))
    assert unknown.content[0].text.endswith(UnknownDatabase("nope", ["airline"]).message)
    assert "unknown db_id '../../etc/passwd'" in escape.content[0].text
    assert "no table hangars in airline; its tables: airports" in table.content[0].text
    assert "no question" in empty.content[0].text


def test_describe_shows_the_schema_as_a_prompt_does_pruned_to_the_budget(http):
    async def work(client):
        return [
            await client.call_tool("list_databases", {}),
            await client.call_tool("describe", {"db": "airline"}),
            await client.call_tool("describe", {"db": "airline", "tables": ["AIRPORTS", "flights"]}),
        ]

    listed, whole, two = (r.structured_content for r in call(http.url, KEY, work))
    assert listed == {"databases": [{"id": "airline", "dialect": "sqlite"}]}
    assert whole["schema_text"] == schema_text(http.db) and whole["pruned"] is False
    assert two["tables"] == ["airports", "flights"] and "CREATE TABLE flights" in two["schema_text"]
    assert "passengers" not in two["schema_text"]

    # A budget the whole schema does not fit: describe shows what the model's prompt keeps, no more.
    builder = http.engine.builder
    whole_prompt = builder.encode_prompts([builder.prompt_text("", schema_text(http.db))])[0]
    original = builder.schema
    builder.schema = replace(original, budget=len(whole_prompt) * 2 // 3)
    try:
        view = asyncio.run(Tools(http.served).schema_view("airline", None))
        prompt = builder.example_prompt(Example("", "", schema_text(http.db), db_path=str(http.db)))
    finally:
        builder.schema = original
    assert view.pruned and 0 < len(view.tables) < 5 and "prompt budget" in view.note
    assert prompt == builder.prompt_text("", view.schema_text)


def test_a_missing_or_wrong_api_key_is_refused(http):
    size = http.audit.stat().st_size if http.audit.exists() else 0
    for key in (None, "wrong"):
        with pytest.raises(Exception) as refused:  # noqa: B017 (the SDK's task group wraps it)
            call(http.url, key, lambda client: client.list_tools())
        assert holds(refused.value, MCPError)
        r = httpx.post(
            f"{http.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {key}"} if key else {},
        )
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert (http.audit.stat().st_size if http.audit.exists() else 0) == size  # nothing was asked


def test_fifty_concurrent_calls_all_answer_and_each_is_one_audit_line(http):
    size = http.audit.stat().st_size if http.audit.exists() else 0
    batches = http.engine.stats.batches

    async def work(client):
        asks = [client.call_tool("ask", {"db": "airline", "question": f"Flights at gate {i}?"}) for i in range(25)]
        runs = [client.call_tool("run_sql", {"db": "airline", "sql": f"SELECT {i} AS n"}) for i in range(25)]
        return await asyncio.gather(*asks, *runs)

    results = call(http.url, KEY, work)
    assert not any(r.is_error for r in results)
    assert all(r.structured_content["rows"] == [[count_flights(http.db)]] for r in results[:25])
    assert [r.structured_content["rows"] for r in results[25:]] == [[[i]] for i in range(25)]
    assert http.engine.stats.batches - batches < 25  # the asks were batched together

    lines = audit_lines(http.audit, size)
    assert len(lines) == 50 and all(set(line) == AUDIT_FIELDS for line in lines)
    assert all(line["client"] == client_id(KEY) and line["error"] is None for line in lines)
    asked = {line["question"] for line in lines if line["source"] == "mcp ask"}
    assert asked == {f"Flights at gate {i}?" for i in range(25)}
    ran = sorted((line["sql"], line["rows"]) for line in lines if line["source"] == "mcp run_sql")
    assert ran == sorted((f"SELECT {i} AS n", 1) for i in range(25))
    assert all(line["executed"] and line["latency_ms"] >= 0 for line in lines)
    assert KEY not in http.audit.read_text()


# ------------------------------------------------------------------------------ stdio: `text2sql mcp`


def test_text2sql_mcp_over_stdio_with_the_tiny_model(merged_model, tmp_path):
    """One subprocess: the MCP client starts `text2sql mcp` as an MCP client configuration would."""
    db = tmp_path / "airline.sqlite"
    shutil.copy(db_path("airline"), db)
    audit = tmp_path / "audit.jsonl"
    before, count = digest(db), count_flights(db)
    env = {k: os.environ[k] for k in ("TEXT2SQL_CACHE", "HF_HUB_OFFLINE", "TEXT2SQL_THREADS") if k in os.environ}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "text2sql", "mcp", "--model", str(merged_model), "--database", f"airline={db}",
              "--audit", str(audit), "--threads", "1"],
        env=env,
    )  # fmt: skip

    async def main():
        async with Client(params, read_timeout_seconds=120) as client:
            tools = await client.list_tools()
            ask = await client.call_tool("ask", {"db": "airline", "question": "How many flights are there?"})
            rows = await client.call_tool("run_sql", {"db": "airline", "sql": COUNT})
            delete = await client.call_tool("run_sql", {"db": "airline", "sql": "DELETE FROM flights"})
            many = await asyncio.gather(
                *(client.call_tool("run_sql", {"db": "airline", "sql": f"SELECT {i}"}) for i in range(50))
            )
            return tools, ask, rows, delete, many

    tools, ask, rows, delete, many = asyncio.run(main())
    assert {t.name for t in tools.tools} == TOOLS
    answer = ask.structured_content  # random weights: its SQL is whatever it is, and consistently reported
    assert not ask.is_error and isinstance(answer["sql"], str) and answer["executed"] is True
    assert (answer["error"] is None) == (answer["columns"] != [])
    assert rows.structured_content["rows"] == [[count]]
    assert delete.is_error and "forbidden" in delete.content[0].text
    assert digest(db) == before
    assert [r.structured_content["rows"] for r in many] == [[[i]] for i in range(50)]

    lines = audit_lines(audit)
    assert len(lines) == 53 and all(set(line) == AUDIT_FIELDS for line in lines)
    assert all(line["client"] == ANONYMOUS and line["database"] == "airline" for line in lines)
    first = lines[0]
    assert first["source"] == "mcp ask" and first["question"] == "How many flights are there?"
    assert first["sql"] == answer["sql"]
    assert [line["sql"] for line in lines[1:3]] == [COUNT, "DELETE FROM flights"]
    assert lines[2]["error"] == delete.content[0].text.removeprefix("Error executing tool run_sql: ")
    assert lines[2]["rows"] is None and lines[2]["error"].startswith("forbidden")
    assert sorted(line["sql"] for line in lines[3:]) == sorted(f"SELECT {i}" for i in range(50))


# ------------------------------------------------------------------------------ the command's bad input


def test_bad_input_is_one_line(capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(capsys, "mcp", "--model", "no/such/model", "--api-key", "k")
    assert_one_line_error(code, err, "--api-key needs --http PORT")
    code, _, err = run_cli(capsys, "mcp", "--model", "no/such/model", "--audit", tmp_path / "no" / "dir" / "a.jsonl")
    assert_one_line_error(code, err, "cannot open the audit log")
    code, _, err = run_cli(capsys, "mcp", "--model", "no/such/model", "--database", "airline")
    assert_one_line_error(code, err, "--database airline: write ID=DB")
    # Without the `mcp` package (the extra not installed): the install line, not a traceback.
    for name in [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "text2sql.serving.mcp_server", raising=False)
    code, _, err = run_cli(capsys, "mcp", "--model", "no/such/model")
    assert_one_line_error(code, err, "pip install 'text2sql[mcp]'")
