"""The audit log of `text2sql serve` and `text2sql mcp` (`--audit FILE`): one JSON line per question
asked or query run, for whoever owns the databases.

    log = AuditLog("audit.jsonl")
    with log.timed("mcp run_sql", client_id(api_key), [Asked("airline", sql="SELECT 1")]) as [asked]:
        asked.ran(execute_sql(...))

Each line holds `time` (UTC, when the request came in), `client` (`client_id`: a short hash of the API
key, never the key, or "anonymous"), `source` (the route or tool), `database`, `question`, `sql`,
`executed` (whether the SQL was run on the database), `rows` (rows returned, when it ran without
error), `error` (why there is no answer: the model's SQL failed, or the request did) and `latency_ms`.

Lines are appended with one `os.write` each on a descriptor opened with O_APPEND, under a lock: threads
of one server never interleave, and servers sharing one file (`serve` and `mcp`) append whole lines.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from text2sql.errors import ConfigError, filesystem_error, first_line
from text2sql.serving import questions
from text2sql.serving.openai_schema import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    SqlRequest,
    SqlResponse,
    VertexPredictRequest,
    VertexPredictResponse,
)
from text2sql.sql.results import ExecutionResult

ANONYMOUS = "anonymous"


def client_id(api_key: str | None) -> str:
    """Who asked, as the log names them: `key:` and the first 12 hex digits of the key's SHA-256 (enough to
    tell keys apart, useless to recover one), or "anonymous" when the server takes no key."""
    if not api_key:
        return ANONYMOUS
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass
class Asked:
    """One question (or query) of a request, and what came of it."""

    database: str | None = None
    question: str | None = None
    sql: str | None = None
    executed: bool = False
    rows: int | None = None
    error: str | None = None

    def ran(self, result: ExecutionResult | None, *, executed: bool = True) -> None:
        """Record a check of `sql`: rows are counted only when it was run and succeeded."""
        self.executed = executed and result is not None
        if result is not None:
            self.error = result.error
            self.rows = len(result.rows) if self.executed and result.ok else None


class AuditLog:
    """An append-only JSONL file (see the module docstring). ConfigError, before anything is served,
    when it cannot be opened for appending."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            # 0o600: questions and SQL can name what the databases hold; only the server's user reads them.
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            reason = filesystem_error(exc) or exc.strerror or first_line(exc)
            raise ConfigError(
                f"cannot open the audit log {self.path} ({reason}); pass --audit a file you can write"
            ) from None
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append `record` as one line. The whole line goes in one os.write (looping only if the kernel
        takes part of it, which a regular file does on a full disk alone)."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        with self._lock:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view) :]

    @contextmanager
    def timed(self, source: str, client: str, asked: list[Asked]) -> Iterator[list[Asked]]:
        """Yields `asked` for the request to fill in; on the way out writes one line per item, each with
        the request's latency. An exception is recorded as the error of every item without one, and
        raised on."""
        started, clock = datetime.now(timezone.utc), time.perf_counter()
        try:
            yield asked
        except BaseException as exc:  # cancelled requests too: they were asked
            message = getattr(exc, "message", None) or first_line(exc)
            for item in asked:
                item.error = item.error or message
            raise
        finally:
            latency_ms = round((time.perf_counter() - clock) * 1000, 1)
            for item in asked:
                self.write(
                    {
                        "time": started.isoformat(timespec="milliseconds"),
                        "client": client,
                        "source": source,
                        "database": item.database,
                        "question": item.question,
                        "sql": item.sql,
                        "executed": item.executed,
                        "rows": item.rows,
                        "error": item.error,
                        "latency_ms": latency_ms,
                    }
                )

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


# ------------------------------------------------------------------------------ the HTTP API's requests


def http_asked(body: Any) -> list[Asked]:
    """The questions of one request to the HTTP API, one per `/v1/sql` request, Vertex instance,
    chat request or completion prompt."""
    if isinstance(body, VertexPredictRequest):
        return [item for instance in body.instances for item in http_asked(instance)]
    if isinstance(body, SqlRequest):
        return [Asked(body.db_id, body.question)]
    if isinstance(body, ChatCompletionRequest):
        asked = questions.from_messages((m.role, m.text()) for m in body.messages)
        return [Asked(body.db_id, asked.question)]
    if isinstance(body, CompletionRequest):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        return [Asked(body.db_id, questions.from_prompt(p).question) for p in prompts]
    return [Asked()]


def http_answered(asked: list[Asked], body: Any, response: Any) -> None:
    """Fill `asked` (from `http_asked(body)`) in from the response. A streamed response is already
    bytes on their way: its SQL is not recorded."""
    if isinstance(response, VertexPredictResponse):
        for item, instance, answer in zip(asked, body.instances, response.predictions):
            _sql_answered(item, instance, answer)
    elif isinstance(response, SqlResponse):
        _sql_answered(asked[0], body, response)
    elif isinstance(response, ChatCompletion):
        asked[0].sql = response.choices[0].message.content if response.choices else None
    elif isinstance(response, Completion):
        n = max(1, len(response.choices) // max(1, len(asked)))
        for item, choice in zip(asked, response.choices[::n]):  # each prompt's first choice
            item.sql = choice.text


def _sql_answered(item: Asked, request: SqlRequest, response: SqlResponse) -> None:
    item.sql, item.error = response.sql, response.error
    item.executed = bool(request.db_id and (request.execute or request.vote))
    item.rows = len(response.rows) if response.rows is not None else None
