"""The HTTP API: OpenAI-compatible chat and completions, `/v1/sql`, the Vertex AI prediction route,
`/v1/models` and `/health`.

    app = create_app(engine, ServerSettings(model_name="runs/x/merged"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

The routes only translate: each request becomes calls on one `answering.Answerer` (schemas, prompts,
generations, checked and voted SQL) and `limits.RequestLimits`, and each domain error (`errors`)
becomes the status code and OpenAI-shaped body of the table `STATUS`. Every answer is SQL only: the
model's output goes through `extract_sql`, and prompts are built by the model's own PromptBuilder.

Every route that generates is bounded before anything is generated: its generations (prompts, or
Vertex instances, × n) must fit `serving.max_generations_per_request` (else 400), and they are
admitted to the engine's queue all at once (else 503, nothing queued). `/v1/sql` repair rounds, each
generating n again, run only as far as that limit leaves room, and their queue room is held from the
start. When the client disconnects, its generations still queued are dropped, never generated.
With `ServerSettings.audit`, each question a route answers is a line of the audit log (`audit`).

`/v1/sql` with n > 1 returns every candidate it generated in `candidates`, the greedy one first, each
with the outcome of the check its answer gets (`ok`, `error`: run with execute or vote, else compiled
on the db_id, else parsed) and, with vote, its `votes`. `sql` stays the answer: the greedy candidate,
or the vote's choice; with n = 1 `candidates` is null.

Errors use the OpenAI shape `{"error": {"message", "type", "code", ...}}`:

    400  too many stop strings, no prompt, more generations than serving.max_generations_per_request,
         a prompt longer than the model reads
    401  missing or wrong API key (when the server has one; /health is always open)
    404  unknown db_id (the error lists `known_ids`)
    413  request body over serving.max_body_bytes
    422  a malformed body, max_tokens over serving.max_tokens_limit, no question
    503  generations that would pass serving.max_queue, or a database that cannot be reached
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from text2sql.config import ServingConfig
from text2sql.data.bundled import database_dir
from text2sql.inference.generate import Sampling
from text2sql.models.registry import PREDICT_ROUTE
from text2sql.serving import questions
from text2sql.serving.answer_models import Request as Generate
from text2sql.serving.answer_models import ServedModel
from text2sql.serving.answering import Answerer, SqlAnswer, Target, check_question
from text2sql.serving.audit import AuditLog, client_id, http_answered, http_asked
from text2sql.serving.databases import DatabaseDirectory
from text2sql.serving.engine import Engine
from text2sql.serving.errors import (
    AnswerError,
    BadRequest,
    Busy,
    ClientGone,
    DatabaseUnavailable,
    InvalidRequest,
    PromptTooLong,
    TooManyGenerations,
    UnknownDatabase,
)
from text2sql.serving.guard import GuardMiddleware, error_body
from text2sql.serving.limits import RequestLimits
from text2sql.serving.openai_schema import (
    MAX_STOP,
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ModelCard,
    ModelList,
    SqlCandidate,
    SqlRequest,
    SqlResponse,
    Usage,
    VertexPredictRequest,
    VertexPredictResponse,
    _Generation,
)
from text2sql.serving.streams import streamed_chat, streamed_completion
from text2sql.sql.extract import extract_sql
from text2sql.sql.permissions import Permissions

T = TypeVar("T")

# Each domain error's HTTP status and OpenAI error type (a subclass not listed takes its base's).
STATUS: dict[type[AnswerError], tuple[int, str]] = {
    InvalidRequest: (422, "invalid_request_error"),
    BadRequest: (400, "invalid_request_error"),
    TooManyGenerations: (400, "invalid_request_error"),
    PromptTooLong: (400, "invalid_request_error"),
    UnknownDatabase: (404, "not_found_error"),
    ClientGone: (499, "client_closed"),
    Busy: (503, "server_busy"),
    DatabaseUnavailable: (503, "database_unavailable"),
}


def status_of(exc: AnswerError) -> tuple[int, str]:
    """The (status code, error type) of a domain error, from `STATUS`; 500 for one it does not know."""
    return next((STATUS[kind] for kind in type(exc).__mro__ if kind in STATUS), (500, "server_error"))


@dataclass
class ServerSettings:
    """What the app needs besides the engine. `db_dir` defaults to the bundled databases;
    `databases` maps more ids to files or URLs."""

    model_name: str = "text2sql"
    serving: ServingConfig = field(default_factory=ServingConfig)
    db_dir: str | Path | None = None
    databases: dict[str, str] = field(default_factory=dict)
    api_key: str | None = None
    schema_format: str = "sql"  # as the model was trained (InferenceModel.schema_format)
    schema_sample_rows: int = 0
    audit: AuditLog | None = None  # one line per question (--audit FILE)
    permissions: Permissions | None = None  # by db_id, the tables and columns questions may read (--allow)


@dataclass
class Served:
    """What the routes answer with (the app's `state.served`)."""

    engine: Engine
    answerer: Answerer
    limits: RequestLimits
    model_name: str
    created: int
    audit: AuditLog | None = None
    client: str = "anonymous"  # how the audit log names the caller (the key's hash)


def create_app(engine: Engine, settings: ServerSettings) -> FastAPI:
    """The FastAPI app over a (started or not yet started) engine; the app starts it on startup.
    The engine is not closed on shutdown: whoever built it owns it."""
    serving = settings.serving
    databases = DatabaseDirectory(settings.db_dir or database_dir(), settings.databases)
    if settings.permissions:  # prompts are pruned and hinted from the allowed tables and columns only
        engine.builder.schema = replace(engine.builder.schema, permissions=settings.permissions)
    answerer = Answerer(
        ServedModel(engine),
        databases=databases,
        schema_format=settings.schema_format,
        schema_sample_rows=settings.schema_sample_rows,
        timeout=serving.timeout,
        max_rows=serving.max_rows,
        permissions=settings.permissions,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield

    app = FastAPI(title="text2sql", summary="SQL-only answers from a fine-tuned model", lifespan=lifespan)
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=serving.max_body_bytes)
    app.state.engine = engine
    app.state.databases = databases
    app.state.served = Served(
        engine,
        answerer,
        RequestLimits(serving),
        settings.model_name,
        int(time.time()),
        settings.audit,
        client_id(settings.api_key),
    )
    app.add_exception_handler(AnswerError, _answer_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.include_router(router)
    return app


async def _answer_error(request: Request, exc: AnswerError) -> JSONResponse:
    status, kind = status_of(exc)
    return JSONResponse(error_body(exc.message, kind, **exc.details), status_code=status)


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()
    )
    return JSONResponse(error_body(f"invalid request: {problems}", "invalid_request_error"), status_code=422)


# ------------------------------------------------------------------------------------ routes

router = APIRouter()


def served(request: Request) -> Served:
    return request.app.state.served


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    s = served(request)
    return {"status": "ok" if s.engine.running else "starting", "model": s.model_name}


@router.get("/v1/models", response_model=ModelList)
async def models(request: Request) -> ModelList:
    s = served(request)
    return ModelList(data=[ModelCard(id=s.model_name, created=s.created)])


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(body: ChatCompletionRequest, request: Request):
    return await audited(request, "/v1/chat/completions", body, chat(served(request), body))


@router.post("/v1/completions", response_model=Completion)
async def completions(body: CompletionRequest, request: Request):
    return await audited(request, "/v1/completions", body, complete(served(request), body))


@router.post("/v1/sql", response_model=SqlResponse)
async def sql(body: SqlRequest, request: Request) -> SqlResponse:
    return await audited(request, "/v1/sql", body, sql_one(served(request), body))


@router.post(PREDICT_ROUTE, response_model=VertexPredictResponse, response_model_exclude_none=True)
async def vertex_predict(body: VertexPredictRequest, request: Request) -> VertexPredictResponse:
    """The route a Vertex AI endpoint sends predictions to (a model registered by text2sql)."""
    return await audited(request, PREDICT_ROUTE, body, vertex(served(request), body))


# ------------------------------------------------------------------------------------ OpenAI routes


def check_stop(body: _Generation) -> None:
    if len(body.stop_list()) > MAX_STOP:
        raise BadRequest(f"at most {MAX_STOP} stop strings are allowed")


def sampling(body: _Generation) -> Sampling:
    return Sampling(temperature=body.temperature or 0.0, top_p=body.top_p if body.top_p is not None else 1.0)


async def chat(s: Served, body: ChatCompletionRequest):
    """A chat completion: n answers to the last user message, a follow-up of the earlier user messages
    and the SQL the assistant answered them with (its history: `questions.from_messages`)."""
    check_stop(body)
    n = body.n or 1
    s.limits.check_generations(n, f"n = {n}")
    limit = s.limits.max_tokens(body.max_completion_tokens or body.max_tokens)
    question = questions.from_messages((m.role, m.text()) for m in body.messages)
    prompt = await s.answerer.question_prompt(question, body.db_id)
    with s.answerer.reserve(n) as held:
        gens = await s.answerer.generate([Generate(prompt, limit, sampling(body), body.stop_list())] * n, held)
    # A prompt is read once per request: usage counts it once, as OpenAI's API does for n > 1.
    completion = ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=s.model_name,
        choices=[
            ChatChoice(index=i, message=AssistantMessage(content=extract_sql(g.text)), finish_reason=g.finish_reason)
            for i, g in enumerate(gens)
        ],
        usage=Usage.of(gens[0].prompt_tokens, sum(g.completion_tokens for g in gens)),
    )
    return streamed_chat(completion) if body.stream else completion


async def complete(s: Served, body: CompletionRequest):
    """A completion: n answers to each prompt, all admitted at once."""
    check_stop(body)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    n = body.n or 1
    if not prompts:
        raise BadRequest("no prompt: send a prompt string or a list of at least one")
    s.limits.check_generations(len(prompts) * n, f"{len(prompts)} prompts × n = {n}")
    limit = s.limits.max_tokens(body.max_tokens)
    texts = [await s.answerer.question_prompt(questions.from_prompt(p), body.db_id) for p in prompts]
    # OpenAI's order: the n choices of the first prompt, then those of the next.
    requests = [Generate(t, limit, sampling(body), body.stop_list()) for t in texts for _ in range(n)]
    with s.answerer.reserve(len(requests)) as held:
        gens = await s.answerer.generate(requests, held)
    completion = Completion(
        id=f"cmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=s.model_name,
        choices=[
            CompletionChoice(index=i, text=extract_sql(g.text), finish_reason=g.finish_reason)
            for i, g in enumerate(gens)
        ],
        usage=Usage.of(sum(g.prompt_tokens for g in gens[::n]), sum(g.completion_tokens for g in gens)),
    )
    return streamed_completion(completion) if body.stream else completion


# ------------------------------------------------------------------------------------ /v1/sql and Vertex


async def sql_one(s: Served, body: SqlRequest) -> SqlResponse:
    s.limits.check_generations(body.n, f"n = {body.n}")
    prepared = await sql_prepared(s, body)
    [repairs] = s.limits.repairs([body.n])
    with s.answerer.reserve(body.n * (1 + repairs)) as held:
        return await sql_answer(s, body, prepared, repairs, held)


async def vertex(s: Served, body: VertexPredictRequest) -> VertexPredictResponse:
    """Every instance is checked (and its schema read) before any is generated; their generations
    are counted together against the per-request limit and admitted to the queue together."""
    ns = [instance.n for instance in body.instances]
    s.limits.check_generations(sum(ns), f"{len(ns)} instances × their n")
    prepared = [await sql_prepared(s, instance) for instance in body.instances]
    repairs = s.limits.repairs(ns)
    with s.answerer.reserve(sum(n * (1 + r) for n, r in zip(ns, repairs))) as held:
        return VertexPredictResponse(
            predictions=[
                await sql_answer(s, instance, ready, r, held)
                for instance, ready, r in zip(body.instances, prepared, repairs)
            ]
        )


async def sql_prepared(s: Served, body: SqlRequest) -> tuple[Target, int]:
    """(what the question is about, max_tokens) of a /v1/sql request: its 4xx errors come here, before
    anything is generated."""
    check_question(db_id=body.db_id, schema=body.schema_text, execute=body.execute, vote=body.vote)
    limit = s.limits.max_tokens(body.max_tokens)
    return await s.answerer.target(db_id=body.db_id, schema=body.schema_text), limit


async def sql_answer(s: Served, body: SqlRequest, prepared: tuple[Target, int], repairs: int, held: Any) -> SqlResponse:
    """The answer to one prepared /v1/sql request, its generations made on `held`."""
    target, limit = prepared
    answer = await s.answerer.answer(
        body.question,
        target,
        max_tokens=limit,
        execute=body.execute,
        n=body.n,
        vote=body.vote,
        sampling=Sampling(temperature=body.temperature, top_p=body.top_p),
        evidence=body.evidence,
        max_repairs=repairs,
        held=held,
    )
    return sql_response(answer, body.db_id)


def sql_response(answer: SqlAnswer, db_id: str | None) -> SqlResponse:
    """An answer as /v1/sql sends it: rows only when it ran, and ran without error."""
    ran = answer.result if answer.executed and answer.result is not None and answer.result.ok else None
    candidates = [
        SqlCandidate(sql=c.sql, ok=c.result.ok, error=c.result.error, votes=c.votes, chosen=c.chosen)
        for c in answer.candidates or []
    ]
    return SqlResponse(
        sql=answer.sql,
        columns=list(ran.columns) if ran else None,
        rows=[[json_value(v) for v in row] for row in ran.rows] if ran else None,
        error=answer.error,
        error_category=answer.category,
        truncated=bool(ran and ran.truncated),
        attempts=answer.attempts,
        db_id=db_id,
        candidates=candidates or None,
        usage=Usage.of(answer.prompt_tokens, answer.completion_tokens),
    )


# ------------------------------------------------------------------------------------ clients that leave


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result. When the client disconnects first, `work` is cancelled: its generations still
    queued are dropped (never generated), its queue slots freed, and no answer is sent."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task  # its `finally` blocks run: held queue slots go back
    if task.cancelled():
        raise ClientGone("the client closed the connection before the answer was ready")
    return task.result()


async def audited(request: Request, route: str, body: Any, work: Awaitable[T]) -> T:
    """`while_connected(request, work)`, with one audit line per question when the server keeps a log."""
    s = served(request)
    if s.audit is None:
        return await while_connected(request, work)
    with s.audit.timed(f"serve {route}", s.client, http_asked(body)) as asked:
        response = await while_connected(request, work)
        http_answered(asked, body, response)
        return response


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone. The body is read by then, so the server's next message is the
    disconnect (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def json_value(value: Any) -> Any:
    """A SQLite value as JSON can carry it: blobs as hex text, infinities as text (JSON has none)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
