"""The audit log (`--audit FILE`): whole lines under concurrent writers, the fields of each request of
`text2sql serve`, no API key in the file, and a one-line error for a file that cannot be written."""

from __future__ import annotations

import json
import shutil
import stat
import threading
from types import SimpleNamespace

import httpx
import pytest

from cli_support import assert_one_line_error, run_cli
from serving_support import ScriptedBackend, free_port, running
from text2sql.config import ServingConfig
from text2sql.data.bundled import db_path
from text2sql.inference.loading import load_for_inference
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.audit import ANONYMOUS, Asked, AuditLog, client_id
from text2sql.serving.engine import Engine
from text2sql.serving.errors import UnknownDatabase

KEY = "sk-audit-secret-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
FIELDS = {"time", "client", "source", "database", "question", "sql", "executed", "rows", "error", "latency_ms"}


def read_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_client_id_names_a_key_without_holding_it():
    assert client_id(None) == client_id("") == ANONYMOUS
    named = client_id(KEY)
    assert named.startswith("key:") and len(named) == len("key:") + 12
    assert named == client_id(KEY) and named != client_id(KEY + "x")
    assert KEY not in named and KEY[-8:] not in named


def test_concurrent_writers_append_whole_lines_and_lose_none(tmp_path):
    """Two logs on one file (two servers, two descriptors) written by 8 threads: every record is one
    intact line. Lines of 40 kB pass any stdio buffer and pipe size, so a buffered or seek-then-write
    log would split or overwrite them."""
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path), AuditLog(path)]
    per_thread, padding = 60, "x" * 40_000

    def writer(n: int) -> None:
        log = logs[n % 2]
        for i in range(per_thread):
            log.write({"writer": n, "i": i, "padding": padding})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        log.close()
    records = read_lines(path)  # a torn or interleaved line fails to parse
    assert len(records) == 8 * per_thread
    assert {(r["writer"], r["i"]) for r in records} == {(n, i) for n in range(8) for i in range(per_thread)}
    assert all(r["padding"] == padding for r in records)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # questions can name what the databases hold


def test_timed_records_the_answer_or_the_error_with_its_latency(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    with log.timed("mcp ask", "anonymous", [Asked("airline", "How many?")]) as [asked]:
        asked.sql, asked.executed, asked.rows = "SELECT COUNT(*) FROM flights", True, 1
    with pytest.raises(UnknownDatabase):
        with log.timed("mcp ask", "anonymous", [Asked("nope", "How many?")]):
            raise UnknownDatabase("nope", ["airline"])
    log.close()
    ok, failed = read_lines(tmp_path / "audit.jsonl")
    assert set(ok) == FIELDS and ok["error"] is None and ok["rows"] == 1 and ok["executed"] is True
    assert ok["latency_ms"] >= 0 and ok["time"].endswith("+00:00")
    assert failed["error"] == UnknownDatabase("nope", ["airline"]).message and failed["sql"] is None


def test_an_audit_file_that_cannot_be_written_is_one_line_before_the_model_loads(capsys, tmp_path):
    missing = tmp_path / "no" / "such" / "folder" / "audit.jsonl"
    code, _, err = run_cli(capsys, "serve", "--model", "no/such/model", "--port", free_port(), "--audit", missing)
    assert_one_line_error(code, err, "cannot open the audit log", str(missing), "--audit")


# ------------------------------------------------------------------------------ text2sql serve


def script(prompt: str) -> str:
    if "Q_DELETE" in prompt:
        return "DELETE FROM flights"
    if "Q_MANY" in prompt:
        return "SELECT * FROM flights"
    return "SELECT COUNT(*) FROM flights"


@pytest.fixture(scope="module")
def served(merged_model, tmp_path_factory):
    im = load_for_inference(str(merged_model), load_weights=False)
    db_dir = tmp_path_factory.mktemp("dbs")
    shutil.copytree(db_path("airline").parent, db_dir / "airline")
    audit = tmp_path_factory.mktemp("audit") / "audit.jsonl"
    engine = Engine(ScriptedBackend(im.tokenizer, script), im.builder, context_length=1024, batch_wait_ms=5)
    settings = ServerSettings(
        db_dir=db_dir,
        api_key=KEY,
        serving=ServingConfig(max_tokens=64, max_rows=5),
        audit=AuditLog(audit),
    )
    with running(create_app(engine, settings)) as url:
        yield SimpleNamespace(url=url, audit=audit)
    engine.close()
    settings.audit.close()


def test_serve_writes_one_line_per_question_and_never_the_key(served):
    before = len(read_lines(served.audit)) if served.audit.exists() else 0
    requests = [
        ("/v1/sql", {"question": "Q_MANY flights", "db_id": "airline", "execute": True}, 200),
        ("/v1/sql", {"question": "Q_DELETE flights", "db_id": "airline", "execute": True}, 200),
        ("/v1/sql", {"question": "How many?", "db_id": "nope"}, 404),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Count flights"}], "db_id": "airline"}, 200),
        ("/vertex/predict", {"instances": [{"question": "V1", "db_id": "airline"}, {"question": "V2", "db_id": "airline"}]}, 200),
    ]  # fmt: skip
    for route, body, status in requests:
        assert httpx.post(f"{served.url}{route}", json=body, headers=AUTH, timeout=30).status_code == status
    assert httpx.post(f"{served.url}/v1/sql", json=requests[0][1]).status_code == 401  # refused: not asked
    lines = read_lines(served.audit)[before:]
    assert [(r["source"], r["question"]) for r in lines] == [
        ("serve /v1/sql", "Q_MANY flights"),
        ("serve /v1/sql", "Q_DELETE flights"),
        ("serve /v1/sql", "How many?"),
        ("serve /v1/chat/completions", "Count flights"),
        ("serve /vertex/predict", "V1"),
        ("serve /vertex/predict", "V2"),
    ]
    assert all(set(r) == FIELDS and r["client"] == client_id(KEY) for r in lines)
    many, delete, unknown, chat, v1, _ = lines
    assert many["sql"] == "SELECT * FROM flights" and many["executed"] and many["rows"] == 5 and many["error"] is None
    assert delete["sql"] == "DELETE FROM flights" and delete["rows"] is None and "DELETE" in delete["error"]
    assert unknown["database"] == "nope" and unknown["error"] == UnknownDatabase("nope", ["airline"]).message
    assert chat["sql"] == "SELECT COUNT(*) FROM flights" and chat["executed"] is False
    assert v1["sql"] == "SELECT COUNT(*) FROM flights" and v1["database"] == "airline"
    assert KEY not in served.audit.read_text()
