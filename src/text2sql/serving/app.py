"""The HTTP API: OpenAI-compatible chat and completions, `/v1/sql`, the Vertex AI prediction route,
`/v1/models` and `/health`.

    app = create_app(engine, ServerSettings(model_name="runs/x/merged"))
    uvicorn.run(app, host="127.0.0.1", port=8000)

Every answer is SQL only: the model's output goes through `extract_sql`. Prompts are built by the
model's own PromptBuilder (the engine's), so the model is asked exactly as it was trained.

Every route that generates is bounded before anything is generated: its generations (prompts, or
Vertex instances, × n) must fit `serving.max_generations_per_request` (else 400), and they are
admitted to the engine's queue all at once (else 503, nothing queued). `/v1/sql` repair rounds, each
generating n again, run only as far as that limit leaves room, and their queue room is held from the
start. When the client disconnects, its generations still queued are dropped, never generated.

`/v1/sql` with n > 1 returns every candidate it generated in `candidates`, the greedy one first, each
with the outcome of the check its answer gets (`ok`, `error`: run with execute, else compiled on the
db_id, else parsed) and, with vote, its `votes`. `sql` stays the answer: the greedy candidate, or the
vote's choice; with n = 1 `candidates` is null, as before.

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
import json
import math
import time
import uuid
from collections.abc import Awaitable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from text2sql.config import EvaluationConfig, ServingConfig
from text2sql.data.bundled import database_dir
from text2sql.data.example import Example
from text2sql.data.schema import schema_text
from text2sql.errors import DataError
from text2sql.inference.generate import Sampling
from text2sql.models.registry import PREDICT_ROUTE
from text2sql.serving import questions
from text2sql.serving.databases import DatabaseDirectory, UnknownDatabase
from text2sql.serving.engine import Engine, EngineBusy, Generation, GenerationRequest, PromptTooLong, Reservation
from text2sql.serving.guard import GuardMiddleware, error_body
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
from text2sql.serving.repair import answer, check_sql
from text2sql.sql.execution import NO_DATABASE, open_database
from text2sql.sql.extract import extract_sql
from text2sql.sql.voting import vote

T = TypeVar("T")


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


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", **extra: Any):
        super().__init__(message)
        self.status, self.message, self.type, self.extra = status, message, type_, extra


def create_app(engine: Engine, settings: ServerSettings) -> FastAPI:
    """The FastAPI app over a (started or not yet started) engine; the app starts it on startup.
    The engine is not closed on shutdown: whoever built it owns it."""

    serving = settings.serving
    databases = DatabaseDirectory(settings.db_dir or database_dir(), settings.databases)
    builder = engine.builder
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield

    app = FastAPI(title="text2sql", summary="SQL-only answers from a fine-tuned model", lifespan=lifespan)
    app.add_middleware(GuardMiddleware, api_key=settings.api_key, max_body_bytes=serving.max_body_bytes)
    app.state.engine = engine
    app.state.databases = databases

    # -------------------------------------------------------------------------------- errors

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, **exc.extra), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(error_body(f"invalid request: {problems}", "invalid_request_error"), status_code=422)

    # -------------------------------------------------------------------------------- helpers

    def max_tokens(requested: int | None) -> int:
        if requested is None:
            # build_server resolves an unset default to the model's own; a bare app uses the evaluation default.
            return serving.max_tokens if serving.max_tokens is not None else EvaluationConfig().max_new_tokens
        if requested > serving.max_tokens_limit:
            raise APIError(422, f"max_tokens {requested} is above this server's limit of {serving.max_tokens_limit}")
        return requested

    def check_generation(body: _Generation) -> None:
        if len(body.stop_list()) > MAX_STOP:
            raise APIError(400, f"at most {MAX_STOP} stop strings are allowed")

    def sampling(body: _Generation) -> Sampling:
        return Sampling(temperature=body.temperature or 0.0, top_p=body.top_p if body.top_p is not None else 1.0)

    async def db_schema(db_id: str) -> tuple[str, str]:
        try:
            target = databases.path(db_id)
        except UnknownDatabase as exc:
            raise APIError(404, str(exc), "not_found_error", known_ids=exc.known_ids) from None
        try:
            text = await asyncio.to_thread(schema_text, target, settings.schema_format, settings.schema_sample_rows)
        except DataError as exc:  # a server that is down, a file that went away: the database, not the request
            raise APIError(503, f"database {db_id} is unavailable: {exc}", "database_unavailable") from None
        return target, text

    def within_limit(count: int, what: str) -> None:
        """400 when a request asks for more generations than one request may make."""
        limit = serving.max_generations_per_request
        if count > limit:
            raise APIError(
                400,
                f"{what} asks for {count} generations; this server makes at most {limit} per request "
                "(serving.max_generations_per_request): lower n or send fewer",
            )

    def admit(count: int) -> Reservation:
        """`count` slots of the engine's queue, held at once; 503, with nothing queued, when they do not fit."""
        try:
            return engine.reserve(count)
        except EngineBusy as exc:
            raise APIError(503, f"server busy: {exc} (serving.max_queue); retry later", "server_busy") from None

    async def generate(requests: list[GenerationRequest], reservation: Reservation) -> list[Generation]:
        try:
            return await engine.generate_many(requests, reservation)
        except PromptTooLong as exc:
            raise APIError(400, f"{exc}; shorten the schema or the question") from None

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
            raise APIError(499, "the client closed the connection before the answer was ready", "client_closed")
        return task.result()

    async def prompt_for(question: questions.Question, db_id: str | None) -> str:
        if not question.question.strip():
            raise APIError(422, "no question: the last user message (or prompt) is empty")
        schema, target = question.schema, None
        if not schema and db_id:
            target, schema = await db_schema(db_id)
        return _prompt(question.question, schema, question.evidence, target)

    def _prompt(question: str, schema: str, evidence: str | None, target: str | None) -> str:
        """The prompt as evaluation builds it: the schema pruned to the model's budget, value hints."""
        example = Example(question, "", schema, evidence=evidence, db_path=str(target) if target else None)
        return builder.example_prompt(example)

    # -------------------------------------------------------------------------------- endpoints

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok" if engine.running else "starting", "model": settings.model_name}

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=[ModelCard(id=settings.model_name, created=created)])

    @app.post("/v1/chat/completions", response_model=ChatCompletion)
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        return await while_connected(request, chat(body))

    async def chat(body: ChatCompletionRequest):
        check_generation(body)
        n = body.n or 1
        within_limit(n, f"n = {n}")
        limit = max_tokens(body.max_completion_tokens or body.max_tokens)
        question = questions.from_messages((m.role, m.text()) for m in body.messages)
        prompt = await prompt_for(question, body.db_id)
        with admit(n) as reservation:
            gens = await generate([GenerationRequest(prompt, limit, sampling(body), body.stop_list())] * n, reservation)
        # A prompt is read once per request: usage counts it once, as OpenAI's API does for n > 1.
        completion = ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=settings.model_name,
            choices=[
                ChatChoice(
                    index=i, message=AssistantMessage(content=extract_sql(g.text)), finish_reason=g.finish_reason
                )
                for i, g in enumerate(gens)
            ],
            usage=Usage.of(gens[0].prompt_tokens, sum(g.completion_tokens for g in gens)),
        )
        return streamed_chat(completion) if body.stream else completion

    @app.post("/v1/completions", response_model=Completion)
    async def completions(body: CompletionRequest, request: Request):
        return await while_connected(request, complete(body))

    async def complete(body: CompletionRequest):
        check_generation(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        n = body.n or 1
        if not prompts:
            raise APIError(400, "no prompt: send a prompt string or a list of at least one")
        within_limit(len(prompts) * n, f"{len(prompts)} prompts × n = {n}")
        limit = max_tokens(body.max_tokens)
        texts = [await prompt_for(questions.from_prompt(p), body.db_id) for p in prompts]
        # OpenAI's order: the n choices of the first prompt, then those of the next.
        with admit(len(texts) * n) as reservation:
            gens = await generate(
                [GenerationRequest(t, limit, sampling(body), body.stop_list()) for t in texts for _ in range(n)],
                reservation,
            )
        completion = Completion(
            id=f"cmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=settings.model_name,
            choices=[
                CompletionChoice(index=i, text=extract_sql(g.text), finish_reason=g.finish_reason)
                for i, g in enumerate(gens)
            ],
            usage=Usage.of(sum(g.prompt_tokens for g in gens[::n]), sum(g.completion_tokens for g in gens)),
        )
        return streamed_completion(completion) if body.stream else completion

    @app.post("/v1/sql", response_model=SqlResponse)
    async def sql(body: SqlRequest, request: Request) -> SqlResponse:
        return await while_connected(request, sql_one(body))

    async def sql_one(body: SqlRequest) -> SqlResponse:
        within_limit(body.n, f"n = {body.n}")
        prepared = await sql_prepared(body)
        [repairs] = repairs_within([body.n])
        with admit(body.n * (1 + repairs)) as reservation:
            return await sql_answer(body, prepared, repairs, reservation)

    @app.post(PREDICT_ROUTE, response_model=VertexPredictResponse, response_model_exclude_none=True)
    async def vertex_predict(body: VertexPredictRequest, request: Request) -> VertexPredictResponse:
        """The route a Vertex AI endpoint sends predictions to (a model registered by text2sql)."""
        return await while_connected(request, vertex(body))

    async def vertex(body: VertexPredictRequest) -> VertexPredictResponse:
        """Every instance is checked (and its schema read) before any is generated; their generations
        are counted together against the per-request limit and admitted to the queue together."""
        ns = [instance.n for instance in body.instances]
        within_limit(sum(ns), f"{len(ns)} instances × their n")
        prepared = [await sql_prepared(instance) for instance in body.instances]
        repairs = repairs_within(ns)
        with admit(sum(n * (1 + r) for n, r in zip(ns, repairs))) as reservation:
            return VertexPredictResponse(
                predictions=[
                    await sql_answer(instance, ready, r, reservation)
                    for instance, ready, r in zip(body.instances, prepared, repairs)
                ]
            )

    # -------------------------------------------------------------------------------- /v1/sql

    async def sql_prepared(body: SqlRequest) -> tuple[int, str | None, str]:
        """(max_tokens, database path or None, schema text) of a /v1/sql request: its 4xx errors come
        here, before anything is generated."""
        if (body.db_id is None) == (body.schema_text is None):
            raise APIError(422, "give either db_id (a database of the server) or schema (CREATE TABLE text)")
        if body.execute and body.db_id is None:
            raise APIError(422, "execute needs a db_id: the SQL can only run on a database of the server")
        if body.vote and body.db_id is None:
            raise APIError(422, "vote needs a db_id: candidates are compared by running them on its database")
        limit = max_tokens(body.max_tokens)
        if body.db_id is not None:
            path, schema = await db_schema(body.db_id)
            return limit, path, schema
        return limit, None, questions.schema_from_text(body.schema_text or "")

    def repairs_within(ns: list[int]) -> list[int]:
        """Repair rounds each of these /v1/sql requests may run: serving.max_repairs, or fewer where a round
        (n more generations) would take the request past serving.max_generations_per_request."""
        spare = serving.max_generations_per_request - sum(ns)
        rounds = []
        for n in ns:
            allowed = min(serving.max_repairs, spare // n)
            spare -= allowed * n
            rounds.append(allowed)
        return rounds

    async def sql_answer(
        body: SqlRequest, prepared: tuple[int, str | None, str], repairs: int, reservation: Reservation
    ) -> SqlResponse:
        """The answer to one prepared /v1/sql request, its generations queued on `reservation`."""
        limit, path, schema = prepared
        last: list[SqlCandidate] = []

        async def ask(question: str) -> Generation:
            prompt = _prompt(question, schema, body.evidence, path)
            extra = Sampling(temperature=body.temperature, top_p=body.top_p)
            requests = [GenerationRequest(prompt, limit)] + [GenerationRequest(prompt, limit, extra)] * (body.n - 1)
            gens = await generate(requests, reservation)
            if len(gens) == 1:
                return gens[0]
            sqls = [extract_sql(g.text) for g in gens]
            if body.vote:
                chosen, candidates = await asyncio.to_thread(vote_on, path, sqls)
            else:
                # The greedy one is the answer; the repair loop checks it, and its outcome fills candidate 0 below.
                chosen = 0
                candidates = [SqlCandidate(sql=sqls[0], ok=False, chosen=True)]
                candidates += await asyncio.to_thread(check_each, path, sqls[1:], body.execute)
            last[:] = candidates
            return Generation(
                text=gens[chosen].text,
                prompt_tokens=gens[0].prompt_tokens,
                completion_tokens=sum(g.completion_tokens for g in gens),
                finish_reason=gens[chosen].finish_reason,
            )

        result = await answer(
            ask,
            body.question,
            db_path=path,
            execute=body.execute,
            max_repairs=repairs,
            timeout=serving.timeout,
            max_rows=serving.max_rows,
        )
        if result.category == NO_DATABASE:
            raise APIError(503, f"database {body.db_id} is unavailable: {result.error}", "database_unavailable")
        if last and not body.vote and result.result is not None:
            last[0] = SqlCandidate(sql=result.sql, ok=result.result.ok, error=result.error, chosen=True)
        ran = result.result if result.executed and result.result is not None and result.result.ok else None
        return SqlResponse(
            sql=result.sql,
            columns=list(ran.columns) if ran else None,
            rows=[[json_value(v) for v in row] for row in ran.rows] if ran else None,
            error=result.error,
            error_category=result.category,
            truncated=bool(ran and ran.truncated),
            attempts=result.attempts,
            db_id=body.db_id,
            candidates=last or None,
            usage=Usage.of(result.prompt_tokens, result.completion_tokens),
        )

    def vote_on(target: str | None, sqls: list[str]) -> tuple[int, list[SqlCandidate]]:
        """The candidate most of them agree with by result (the greedy one first on ties)."""
        with open_database(str(target)) as db:
            result = vote(db, sqls, timeout=serving.timeout, max_rows=serving.max_rows)
        size = {i: len(g) for g in result.groups for i in g}
        return result.chosen, [
            SqlCandidate(sql=q, ok=r.ok, error=r.error, votes=size.get(i, 0), chosen=i == result.chosen)
            for i, (q, r) in enumerate(zip(sqls, result.results))
        ]

    def check_each(target: str | None, sqls: list[str], execute: bool) -> list[SqlCandidate]:
        """Each SQL checked as an answer is (run with execute, else compiled on the database, else parsed)."""
        checked = [
            (q, check_sql(q, target, execute=execute, timeout=serving.timeout, max_rows=serving.max_rows)) for q in sqls
        ]
        return [SqlCandidate(sql=q, ok=r.ok, error=r.error) for q, r in checked]

    return app


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone. The body is read by then, so the server's next message is the
    disconnect (uvicorn sends it when the connection closes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def streamed_chat(completion: ChatCompletion) -> StreamingResponse:
    """A chat completion as OpenAI streams it: per choice a role chunk, a content chunk, a chunk with
    the finish reason, then [DONE]. The SQL is sent whole: only a complete answer has its SQL extracted."""
    base = {
        "id": completion.id,
        "object": "chat.completion.chunk",
        "created": completion.created,
        "model": completion.model,
    }
    chunks = []
    for c in completion.choices:
        for delta, finish in (
            ({"role": "assistant", "content": ""}, None),
            ({"content": c.message.content}, None),
            ({}, c.finish_reason),
        ):
            chunks.append(
                {**base, "choices": [{"index": c.index, "delta": delta, "finish_reason": finish, "logprobs": None}]}
            )
    return _events(chunks)


def streamed_completion(completion: Completion) -> StreamingResponse:
    """A completion as OpenAI streams it: per choice its text, then its finish reason, then [DONE]."""
    base = {"id": completion.id, "object": "text_completion", "created": completion.created, "model": completion.model}
    chunks = []
    for c in completion.choices:
        for text, finish in ((c.text, None), ("", c.finish_reason)):
            chunks.append(
                {**base, "choices": [{"index": c.index, "text": text, "finish_reason": finish, "logprobs": None}]}
            )
    return _events(chunks)


def _events(chunks: list[dict[str, Any]]) -> StreamingResponse:
    async def lines():
        for chunk in chunks:
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def json_value(value: Any) -> Any:
    """A SQLite value as JSON can carry it: blobs as hex text, infinities as text (JSON has none)."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
