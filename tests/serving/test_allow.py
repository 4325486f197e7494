"""`--allow` (and `serving.allow`) wherever SQL runs for a user: `serve`, `mcp` and `predict`. The
model is shown only the allowed tables and columns, and SQL that reads anything else is refused, on
SQLite, DuckDB and PostgreSQL (as the read-only role). The model is a scripted backend, so the SQL
asked about is exact."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from cli_support import assert_one_line_error, run_cli
from engines_support import shop_on
from serving_support import ScriptedBackend, running
from text2sql.config import ServingConfig
from text2sql.errors import ConfigError
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.databases import DatabaseDirectory
from text2sql.serving.engine import Engine
from text2sql.serving.mcp_server import Tools
from text2sql.serving.server import bound_permissions
from text2sql.sql.permissions import Permissions

ANSWERS = {
    "Q_OK": "SELECT name FROM customers ORDER BY id",
    "Q_TABLE": "SELECT amount FROM orders",
    "Q_JOIN": "SELECT c.name FROM customers AS c JOIN orders AS o ON o.customer_id = c.id",
    "Q_STAR": "SELECT * FROM customers",
    "Q_COLUMN": "SELECT city FROM customers",
}


def script(prompt: str) -> str:
    return next((sql for marker, sql in ANSWERS.items() if marker in prompt), ANSWERS["Q_OK"])


@pytest.fixture(scope="module", params=["sqlite", "duckdb", "postgres"])
def served(request, merged_model, tmp_path_factory):
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    target = shop_on(request.param, tmp_path_factory.mktemp(request.param), server, schema="allow_shop")
    databases = {"shop": target}
    permissions = bound_permissions(
        Permissions.from_cli(["shop:customers(id,name)"]), DatabaseDirectory(None, databases)
    )
    im = load_for_inference(str(merged_model), load_weights=False)
    backend = ScriptedBackend(im.tokenizer, script)
    engine = Engine(backend, im.builder, context_length=1024)
    settings = ServerSettings(databases=databases, serving=ServingConfig(max_tokens=64), permissions=permissions)
    app = create_app(engine, settings)
    with running(app) as url:
        yield url, backend, app.state.served
    engine.close()


def _sql(url: str, question: str) -> dict:
    body = {"question": question, "db_id": "shop", "execute": True}
    response = httpx.post(f"{url}/v1/sql", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_serve_shows_and_runs_only_what_is_allowed(served):
    url, backend, _ = served
    ok = _sql(url, "Q_OK names")
    assert ok["error"] is None and [r[0] for r in ok["rows"]] == ["Ada", "Bo", "Chloé", "D'Arcy", "eve"]
    prompt = backend.prompts[-1].lower()
    assert "customers" in prompt and "orders" not in prompt and "city" not in prompt
    for marker, hidden in (("Q_TABLE", "orders"), ("Q_JOIN", "orders"), ("Q_STAR", "city"), ("Q_COLUMN", "city")):
        answer = _sql(url, f"{marker} please")
        assert answer["error_category"] == "forbidden" and hidden in answer["error"].lower(), answer
        assert not answer["rows"]


def test_mcp_tools_keep_to_what_is_allowed(served):
    _, _, state = served
    tools = Tools(state)

    async def calls():
        allowed = await tools.run_sql("shop", "SELECT COUNT(*) FROM customers")
        with pytest.raises(Exception, match="orders"):
            await tools.run_sql("shop", "SELECT COUNT(*) FROM orders")
        described = await tools.describe("shop")
        return allowed, described

    allowed, described = asyncio.run(calls())
    assert allowed.rows == [[5]]
    assert [t.lower() for t in described.tables] == ["customers"] and "city" not in described.schema_text.lower()


def test_permissions_that_name_what_the_databases_lack_fail_at_start(tmp_path):
    target = shop_on("sqlite", tmp_path)
    directory = DatabaseDirectory(None, {"shop": target})
    with pytest.raises(ConfigError, match="not served: other"):
        bound_permissions(Permissions.from_cli(["other:customers"]), directory)
    with pytest.raises(ConfigError, match="invoices"):
        bound_permissions(Permissions.from_cli(["shop:invoices"]), directory)
    assert bound_permissions(Permissions(), directory) is None


def test_predict_allow(merged_model, tmp_path, capsys):
    target = shop_on("sqlite", tmp_path)
    schema = tmp_path / "schema.sql"
    schema.write_text("CREATE TABLE customers (id INTEGER, name TEXT);")
    code, _, err = run_cli(
        capsys, "predict", "--model", merged_model, "--schema", schema, "--allow", "customers", "How many?"
    )
    assert_one_line_error(code, err, "--allow", "--db")
    code, _, err = run_cli(
        capsys, "predict", "--model", merged_model, "--db", target, "--allow", "invoices", "How many?"
    )
    assert_one_line_error(code, err, "invoices")
    from text2sql.serving.predict import open_session

    session = open_session(str(merged_model), db=target, allow=["shop:customers(id,name)"])
    assert "orders" not in session.target.schema.lower() and "city" not in session.target.schema.lower()
    refused = session.answerer.judge(["SELECT amount FROM orders"], session.target, execute=True, vote=False)[1][0]
    assert refused.result.category == "forbidden" and "orders" in refused.result.error
