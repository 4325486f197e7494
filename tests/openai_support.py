"""A scripted OpenAI-compatible chat endpoint on loopback, for the tests of endpoints as models and
teachers: each request's answer (or error, or delay) comes from a script, and every request is counted."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class Reply:
    """What the endpoint does with one request: answer `texts` (one per choice; a single text is
    repeated for n), or fail with `status` and `error`; after `delay` seconds."""

    texts: list[str] | str = ""
    status: int = 200
    error: str = "scripted failure"
    delay: float = 0.0
    finish_reason: str = "stop"
    choices: int | None = None  # fewer choices than n, as an endpoint that ignores n returns
    usage: tuple[int, int] | None = (100, 10)
    headers: dict[str, str] = field(default_factory=dict)


Script = Callable[[dict[str, Any]], "Reply | str"]


def question_of(body: dict[str, Any]) -> str:
    """The question of a request's last user message ('Question: ...')."""
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    found = re.search(r"Question: (.*)$", user, re.S)
    return (found.group(1) if found else user).strip()


class ScriptedEndpoint:
    """POST /v1/chat/completions answered by `script(body)`; `api_key`: the key it requires (401
    otherwise). Counts requests, and the most in flight at once."""

    def __init__(self, script: Script, *, api_key: str | None = None):
        self.script = script
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.requests)

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count} requests, waited for {count}")
            time.sleep(0.02)

    def app(self):
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
                error = {
                    "message": "Incorrect API key provided",
                    "type": "invalid_request_error",
                    "code": "invalid_api_key",
                }
                return JSONResponse({"error": error}, status_code=401)
            body = await request.json()
            with self._lock:
                self.requests.append(body)
                self.in_flight += 1
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            try:
                reply = self.script(body)
                if isinstance(reply, str):
                    reply = Reply(reply)
                if reply.delay:
                    await asyncio.sleep(reply.delay)
            finally:
                with self._lock:
                    self.in_flight -= 1
            if reply.status != 200:
                error = {"message": reply.error, "type": "scripted", "code": str(reply.status)}
                # A short Retry-After keeps the client's backoff (and the tests) fast.
                headers = {"retry-after-ms": "5", **reply.headers}
                return JSONResponse({"error": error}, status_code=reply.status, headers=headers)
            n = int(body.get("n") or 1)
            texts = [reply.texts] * n if isinstance(reply.texts, str) else list(reply.texts)
            texts = texts[: reply.choices or n]
            usage = None
            if reply.usage is not None:
                usage = {
                    "prompt_tokens": reply.usage[0],
                    "completion_tokens": reply.usage[1] * len(texts),
                    "total_tokens": reply.usage[0] + reply.usage[1] * len(texts),
                }
            return {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": reply.finish_reason,
                    }
                    for i, text in enumerate(texts)
                ],
                "usage": usage,
            }

        return app
