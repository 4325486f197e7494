"""`text2sql mcp`: the served model and its databases as Model Context Protocol tools, for coding
assistants, agents and chat clients (the official `mcp` SDK's `MCPServer`).

    server = build_server("runs/x/merged", databases={"shop": "shop.sqlite"})   # as `serve` builds it
    mcp = mcp_server(server.app.state.served)
    mcp.run("stdio")

Tools:

- `list_databases`: the ids the server answers about, with their SQL dialect;
- `describe(db, tables?)`: the schema as the model reads it, pruned to its prompt budget as a prompt
  would prune it (or the named tables, whole);
- `ask(db, question, history?, execute=true)`: the model's SQL through the `Answerer` that `/v1/sql`
  uses (its limits and repair rounds), a follow-up of the earlier {question, sql} turns `history`,
  with the rows when executed (at most serving.max_rows, with a note when cut);
- `run_sql(db, sql)`: one query through the same read-only engines (`execute_sql`: one statement, no
  writes, serving.timeout, serving.max_rows).

Resources: `schema://<id>` for each database, the text `describe` gives. What stops a request (an
unknown database, one that is down, a busy queue) is a tool error with the message `serve` gives;
SQL that fails in `ask` is the model's answer (`error` set), in `run_sql` a tool error. With an audit
log every call is a line of it (`audit`).

Over streamable HTTP (`http_app`) the project's guard stands in front: `Authorization: Bearer KEY`
when the server has a key (compared in constant time), and serving.max_body_bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.mcpserver.resources import FunctionResource
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from text2sql import __version__
from text2sql.data.context import fit_prompts
from text2sql.data.example import Example
from text2sql.data.pruning import subset
from text2sql.data.schema import cached_schema, render_schema
from text2sql.errors import ConfigError, DataError
from text2sql.serving.answering import Target, check_question
from text2sql.serving.app import Served, json_value
from text2sql.serving.audit import Asked
from text2sql.serving.errors import AnswerError, DatabaseUnavailable, InvalidRequest, UnknownDatabase
from text2sql.serving.guard import GuardMiddleware
from text2sql.serving.server import _LOOPBACK, API_KEY_ENV, build_server, check_port
from text2sql.sql.execution import NO_DATABASE, ExecutionResult, execute_sql
from text2sql.sql.targets import dialect_of

INSTRUCTIONS = (
    "Answers questions about SQL databases with a fine-tuned text-to-SQL model. Call list_databases, then "
    "describe(db) for its schema; ask(db, question) for the model's SQL and its rows; run_sql(db, sql) to run "
    "a read-only query yourself. Every query is read-only, bounded in time and rows."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


# ------------------------------------------------------------------------------------ what tools return


class DatabaseInfo(BaseModel):
    id: str
    dialect: str = Field(description="sqlite, duckdb or postgres: the SQL the database runs")


class DatabaseList(BaseModel):
    databases: list[DatabaseInfo]


class SchemaView(BaseModel):
    db: str
    dialect: str
    schema_text: str = Field(description="the schema as the model reads it (CREATE TABLE statements by default)")
    tables: list[str] = Field(description="the tables shown")
    pruned: bool = Field(False, description="true when the schema is over the model's prompt budget and was cut")
    note: str | None = None


class Turn(BaseModel):
    question: str
    sql: str


class Rows(BaseModel):
    columns: list[str] = Field(default_factory=list)
    rows: list[list[Any]] = Field(default_factory=list)
    truncated: bool = Field(False, description="true when the result had more rows than were returned")
    note: str | None = None


class Answer(Rows):
    sql: str = Field(description="the model's SQL: one statement, no commentary")
    executed: bool = Field(description="whether the SQL was run on the database")
    error: str | None = Field(None, description="why the SQL failed to compile or run; null when it did not")
    error_category: str | None = None
    attempts: int = Field(description="model calls it took: 1, plus one per repair")


def rows_of(result: ExecutionResult, max_rows: int) -> Rows:
    """A query's rows as JSON carries them, with a note when they were cut at `max_rows`."""
    note = None
    if result.truncated:
        note = (
            f"only the first {len(result.rows)} rows are shown (this server returns at most {max_rows}, "
            "serving.max_rows); add a LIMIT, a filter or an aggregate for the rest"
        )
    return Rows(
        columns=list(result.columns),
        rows=[[json_value(v) for v in row] for row in result.rows],
        truncated=result.truncated,
        note=note,
    )


# ------------------------------------------------------------------------------------ the server


class Tools:
    """The tools of one server over `served` (the `serve` app's answerer, limits and audit log)."""

    def __init__(self, served: Served):
        self.served = served
        self.answerer = served.answerer

    @contextlib.contextmanager
    def call(self, tool: str, asked: Asked) -> Iterator[Asked]:
        """One tool call: audited when the server keeps a log, and what stops it a tool error with the
        message `serve` gives."""
        audit = self.served.audit
        with contextlib.ExitStack() as stack:
            if audit is not None:
                stack.enter_context(audit.timed(f"mcp {tool}", self.served.client, [asked]))
            try:
                yield asked
            except AnswerError as exc:
                raise ToolError(exc.message) from None

    def path(self, db: str) -> str:
        """`db`'s database (UnknownDatabase with the known ids)."""
        databases = self.answerer.databases
        if databases is None:
            raise InvalidRequest("this server has no databases; start it with --database ID=DB or --db-dir")
        return databases.path(db)

    async def list_databases(self) -> DatabaseList:
        """The databases this server answers about, by id, with the SQL dialect each runs."""
        with self.call("list_databases", Asked()):
            databases = self.answerer.databases
            listed = []
            for db_id in databases.ids() if databases is not None else []:
                with contextlib.suppress(UnknownDatabase):  # a file removed since the folder was read
                    listed.append(DatabaseInfo(id=db_id, dialect=dialect_of(self.path(db_id))))
            return DatabaseList(databases=listed)

    async def describe(
        self,
        db: Annotated[str, Field(description="a database id from list_databases")],
        tables: Annotated[list[str] | None, Field(description="only these tables, shown whole")] = None,
    ) -> SchemaView:
        """The schema of a database as the model reads it: the whole schema when it fits the model's prompt
        budget, else the part a prompt keeps; or only the named tables."""
        with self.call("describe", Asked(db)):
            return await self.schema_view(db, tables)

    async def ask(
        self,
        db: Annotated[str, Field(description="a database id from list_databases")],
        question: Annotated[str, Field(description="the question, in plain language")],
        history: Annotated[
            list[Turn] | None, Field(description="earlier turns of this conversation, oldest first")
        ] = None,
        execute: Annotated[bool, Field(description="run the SQL (read-only) and return its rows")] = True,
    ) -> Answer:
        """SQL for a question from the fine-tuned model, checked on the database (run when execute, else
        compiled), with its rows when run. A follow-up question passes the earlier turns of its
        conversation as history. A failed check is in `error`; the server may ask the model again with the
        error (serving.max_repairs)."""
        with self.call("ask", Asked(db, question)) as asked:
            if not question.strip():
                raise InvalidRequest("no question: pass the question to answer with SQL")
            check_question(db_id=db, schema=None, execute=execute, vote=False)
            limits = self.served.limits
            target = await self.answerer.target(db_id=db)
            [repairs] = limits.repairs([1])
            with self.answerer.reserve(1 + repairs) as held:
                answer = await self.answerer.answer(
                    question,
                    target,
                    max_tokens=limits.max_tokens(None),
                    execute=execute,
                    max_repairs=repairs,
                    held=held,
                    history=[(turn.question, turn.sql) for turn in history or []],
                )
            asked.sql = answer.sql
            asked.ran(answer.result, executed=answer.executed)
            ran = answer.result if answer.executed and answer.result is not None and answer.result.ok else None
            rows = rows_of(ran, self.answerer.max_rows) if ran is not None else Rows()
            return Answer(
                **rows.model_dump(),
                sql=answer.sql,
                executed=answer.executed,
                error=answer.error,
                error_category=answer.category,
                attempts=answer.attempts,
            )

    async def run_sql(
        self,
        db: Annotated[str, Field(description="a database id from list_databases")],
        sql: Annotated[str, Field(description="one read-only statement (SELECT, WITH ...)")],
    ) -> Rows:
        """Run one read-only SQL statement on a database: its rows (at most serving.max_rows). Writes,
        several statements and queries over serving.timeout are refused."""
        with self.call("run_sql", Asked(db, sql=sql)) as asked:
            path = self.path(db)
            allowed = self.answerer.permissions.get(db) if self.answerer.permissions else None
            result = await asyncio.to_thread(
                execute_sql,
                path,
                sql,
                timeout=self.answerer.timeout,
                max_rows=self.answerer.max_rows,
                permissions=allowed,
            )
            asked.ran(result)
            if result.category == NO_DATABASE:
                raise DatabaseUnavailable(f"database {db} is unavailable: {result.error}")
            if not result.ok:
                asked.error = f"{result.category}: {result.error}"
                raise ToolError(asked.error)
            return rows_of(result, self.answerer.max_rows)

    async def schema_resource(self, db: str) -> str:
        """The schema of a database as the model reads it (pruned to its prompt budget)."""
        try:
            return (await self.schema_view(db, None)).schema_text
        except AnswerError as exc:
            raise ResourceError(exc.message) from None

    # ------------------------------------------------------------------ schemas

    async def schema_view(self, db: str, tables: list[str] | None) -> SchemaView:
        target = await self.answerer.database(db)
        assert target.path is not None  # a database of the server always has one
        try:
            return await asyncio.to_thread(self._schema_view, target, tables)
        except DataError as exc:
            raise DatabaseUnavailable(f"database {db} is unavailable: {exc}") from None

    def _schema_view(self, target: Target, tables: list[str] | None) -> SchemaView:
        db, path = target.db_id or "", target.path or ""
        structure = cached_schema(path, target.permissions)
        everything = [t.name for t in structure.tables]
        base = {"db": db, "dialect": structure.dialect}
        if tables:
            missing = [name for name in tables if structure.table(name) is None]
            if missing:
                raise InvalidRequest(f"no table {', '.join(missing)} in {db}; its tables: {', '.join(everything)}")
            wanted = {name.lower() for name in tables}
            items = [(t.name, c.name) for t in structure.tables if t.name.lower() in wanted for c in t.columns]
            shown = subset(structure, items)
            text = render_schema(shown, self.answerer.schema_format, self.answerer.schema_sample_rows, path)
            return SchemaView(**base, schema_text=text, tables=[t.name for t in shown.tables])
        builder = self.served.engine.builder
        schemas: dict[str, str] = {}  # prompt text -> the schema text it shows

        def render(question: str, schema: str, *rest: Any) -> str:  # as builder.fit renders, noting the schema
            text = builder.prompt_text(question, schema, *rest)
            schemas[text] = schema
            return text

        # The prompt of a question that names nothing: its schema is what the model reads of this database.
        [fitted] = fit_prompts(
            [Example("", "", target.schema, db_id=target.db_id, db_path=path)],
            builder.schema,
            render,
            builder.encode_prompts,
            dialect=builder.dialect,
        )
        over = f"the schema is over the model's prompt budget ({builder.schema.budget} tokens)"
        if not fitted.pruned:  # it fits, or not even a pruned schema does (then the model reads it cut short)
            return SchemaView(**base, schema_text=target.schema, tables=everything, note=None if fitted.fits else over)
        kept = [name for name in everything if name.lower() in (fitted.tables or set())]
        note = (
            f"{over}: {len(kept)} of {len(everything)} tables are shown, as a prompt that names nothing keeps them; "
            "each question is shown the part it needs. Pass tables=[...] to see others"
        )
        return SchemaView(**base, schema_text=schemas[fitted.text], tables=kept, pruned=True, note=note)


def mcp_server(served: Served) -> MCPServer:
    """The MCP server over `served`: the tools and schema resources of the module docstring."""
    tools = Tools(served)
    # WARNING: a failed tool call is the caller's business (it gets the error), not a line on the server's stderr.
    server: MCPServer = MCPServer("text2sql", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    for fn in (tools.list_databases, tools.describe, tools.ask, tools.run_sql):
        server.add_tool(fn, annotations=READ_ONLY)
    databases = served.answerer.databases
    for db_id in databases.ids() if databases is not None else []:
        server.add_resource(
            FunctionResource.from_function(
                fn=_schema_of(tools, db_id),
                uri=f"schema://{db_id}",
                name=f"{db_id} schema",
                description=f"the schema of {db_id} as the model reads it",
            )
        )
    # Databases added to --db-dir after the start: read by id.
    server.resource("schema://{db}", name="schema", description="a database's schema as the model reads it")(
        tools.schema_resource
    )
    return server


def _schema_of(tools: Tools, db_id: str) -> Any:
    async def schema() -> str:
        return await tools.schema_resource(db_id)

    return schema


def http_app(server: MCPServer, *, api_key: str | None, max_body_bytes: int, host: str = "127.0.0.1") -> Any:
    """The streamable HTTP app (at /mcp) behind the guard `serve` uses: the API key and the body limit."""
    app = server.streamable_http_app(host=host)
    return GuardMiddleware(app, api_key=api_key, max_body_bytes=max_body_bytes)


# ------------------------------------------------------------------------------------ running it


def run_mcp(
    model: str,
    *,
    http_port: int | None = None,
    host: str = "127.0.0.1",
    api_key: str | None = None,
    log_level: str = "warning",
    **build: Any,
) -> None:
    """Load `model` as `serve` does (`server.build_server`, `build` its keyword arguments) and serve MCP
    until the client closes stdin (stdio) or the process is interrupted (HTTP on `http_port`)."""
    if http_port is None and api_key:
        raise ConfigError("--api-key needs --http PORT: over stdio the client is the process that started the server")
    if http_port is not None:
        api_key = api_key or os.environ.get(API_KEY_ENV) or None
        check_port(host, http_port)
    with contextlib.redirect_stdout(sys.stderr):  # over stdio, stdout carries the protocol alone
        server = build_server(model, api_key=api_key, **build)
    served: Served = server.app.state.served  # one answerer, limits and audit log, as `serve` has them
    mcp = mcp_server(served)
    served.engine.start()
    try:
        if http_port is None:
            mcp.run("stdio")
            return
        if api_key is None and host not in _LOOPBACK:
            print(
                f"warning: serving on {host} without an API key; anyone who can reach it can query "
                f"the databases (set --api-key or {API_KEY_ENV})",
                file=sys.stderr,
            )
        print(f"serving MCP for {server.settings.model_name} at http://{host}:{http_port}/mcp", file=sys.stderr)
        app = http_app(mcp, api_key=api_key, max_body_bytes=server.settings.serving.max_body_bytes, host=host)
        uvicorn.run(app, host=host, port=http_port, log_level=log_level)
    finally:
        served.engine.close()
        if served.audit is not None:
            served.audit.close()
