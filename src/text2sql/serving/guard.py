"""What every request passes before it reaches an endpoint: the API key and the body-size limit.

A plain ASGI middleware, so it runs before FastAPI parses anything:

- with an API key, every path except `/health` needs `Authorization: Bearer <key>` (401 otherwise,
  compared in constant time so response timing does not reveal the key);
- a body larger than `max_body_bytes` gets 413, whether it says so in `Content-Length` (refused
  before it is read) or arrives chunked without one (refused as soon as the count passes the limit).
  The body is buffered (it is small by then) and handed on to the endpoint.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.responses import JSONResponse

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

OPEN_PATHS = frozenset({"/health"})


def error_body(message: str, type_: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    """The OpenAI error shape, which the openai client turns into its exception's message."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code, **extra}}


class GuardMiddleware:
    def __init__(self, app: Any, *, api_key: str | None, max_body_bytes: int):
        self.app = app
        self.api_key = api_key.encode() if api_key else None
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope.get("path") not in OPEN_PATHS and not self._authorized(headers):
            response = JSONResponse(
                error_body(
                    "missing or wrong API key: send 'Authorization: Bearer <key>'",
                    "authentication_error",
                    "invalid_api_key",
                ),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body_bytes
            except ValueError:
                too_big = False  # the server's HTTP parser rejects a malformed length itself
            if too_big:
                await self._too_large(scope, receive, send)
                return
        body, more = await self._read_body(receive)
        if more:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key or b"")

    async def _read_body(self, receive: Receive) -> tuple[bytes, bool]:
        """(the body, True when it went past the limit and reading stopped)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client disconnected
                return b"".join(chunks), False
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", True
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), False

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            error_body(
                f"request body is larger than this server's limit of {self.max_body_bytes} bytes",
                "invalid_request_error",
                "request_too_large",
            ),
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay
