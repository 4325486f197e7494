"""One question in, checked SQL out: the answering path every front end shares (`/v1/sql`, the OpenAI
routes and `/vertex/predict` of the HTTP app, and `text2sql predict`).

    answerer = Answerer(ServedModel(engine), databases=DatabaseDirectory("spider/database"))
    target = await answerer.target(db_id="concert_singer")
    answer = await answerer.answer("How many singers?", target, max_tokens=128, execute=True, n=4, vote=True)

An `Answerer` reads a database's schema (by db_id, from its directory), has the model build the prompt
(`answer_models`), generates the greedy candidate and n - 1 sampled ones, checks each distinct
candidate once (`repair.check_each`: run with execute or vote, else compiled, else parsed) and, with
vote, answers with the candidate most of them agree with by result. The answer's check is the one its
candidate got, so nothing runs twice. While the answer fails and repair rounds are left, the model is
asked again with the error (`repair.REPAIR_TEMPLATE`), n candidates again.

A follow-up question comes with `history`: the earlier questions of its conversation and the SQL they
were answered with, oldest first. They go into the prompt as training put them there (the model's
`prompt.history_turns` most recent, within its budget: `text2sql.data.prompt`).

It knows nothing of HTTP: what stops an answer is an `errors.AnswerError`, which each front end
reports its own way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, cast

from text2sql.data.example import Example, Turn
from text2sql.data.schema import schema_text
from text2sql.errors import DataError
from text2sql.inference.generate import Sampling
from text2sql.serving.answer_models import Model, Request
from text2sql.serving.databases import DatabaseDirectory
from text2sql.serving.engine import Generation
from text2sql.serving.errors import DatabaseUnavailable, InvalidRequest, UnknownDatabase
from text2sql.serving.questions import Question, schema_from_text
from text2sql.serving.repair import check_each, repair_question
from text2sql.sql.execution import NO_DATABASE, Database, ExecutionResult
from text2sql.sql.extract import extract_sql
from text2sql.sql.match import TRUNCATED
from text2sql.sql.permissions import DatabasePermissions, Permissions
from text2sql.sql.targets import redact
from text2sql.sql.voting import vote as vote_by_result

# How the n - 1 candidates after the greedy one are sampled, unless the caller says otherwise.
EXTRA_SAMPLING = Sampling(temperature=0.8, top_p=0.95)


@dataclass
class Target:
    """What a question is asked about: the schema shown to the model, and the database its SQL is
    checked on (a file or URL; None: the SQL is only parsed)."""

    schema: str
    path: str | None = None
    db_id: str | None = None  # the server's name for the database
    permissions: DatabasePermissions | None = None  # what its SQL may read (None: everything)

    @property
    def name(self) -> str:
        return self.db_id or redact(self.path or "")


@dataclass
class Candidate:
    """One generated SQL and its check (run, compiled or parsed)."""

    sql: str
    result: ExecutionResult
    votes: int | None = None  # with vote: candidates whose result equals its own, itself included; 0 when it failed
    chosen: bool = False


@dataclass
class SqlAnswer:
    """The final SQL and what checking (or running) it gave, after `attempts` rounds of asking."""

    sql: str = ""
    attempts: int = 0
    result: ExecutionResult | None = None  # rows when executed; the check's error otherwise
    executed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # every round's answer and its error
    candidates: list[Candidate] | None = None  # with n > 1: the last round's, the greedy one first

    @property
    def error(self) -> str | None:
        return self.result.error if self.result is not None else None

    @property
    def category(self) -> str | None:
        return self.result.category if self.result is not None else None

    @property
    def votes(self) -> int | None:
        """With vote: how many candidates agree with the answer."""
        return next((c.votes for c in self.candidates or [] if c.chosen), None)


def check_question(*, db_id: str | None, schema: str | None, execute: bool, vote: bool) -> None:
    """InvalidRequest unless a question names exactly one of a database and a schema, and has a
    database when its SQL is to run or be voted on."""
    if (db_id is None) == (schema is None):
        raise InvalidRequest("give either db_id (a database of the server) or schema (CREATE TABLE text)")
    if execute and db_id is None:
        raise InvalidRequest("execute needs a db_id: the SQL can only run on a database of the server")
    if vote and db_id is None:
        raise InvalidRequest("vote needs a db_id: candidates are compared by running them on its database")


class Answerer:
    """Questions answered with checked SQL by one model (see the module docstring). `timeout` (seconds)
    and `max_rows` bound every query a check runs."""

    def __init__(
        self,
        model: Model,
        *,
        databases: DatabaseDirectory | None = None,
        schema_format: str = "sql",  # as the model was trained (InferenceModel.schema_format)
        schema_sample_rows: int = 0,
        timeout: float = 5.0,
        max_rows: int = 1000,
        permissions: Permissions | None = None,
    ):
        self.model = model
        self.databases = databases
        self.permissions = permissions  # by db_id: what a question's SQL may read
        self.schema_format = schema_format
        self.schema_sample_rows = schema_sample_rows
        self.timeout = timeout
        self.max_rows = max_rows

    # ------------------------------------------------------------------ schemas

    async def database(self, db_id: str) -> Target:
        """`db_id`'s database, with its schema as the model was trained to read it. UnknownDatabase (with
        the known ids) for an id the directory lacks; DatabaseUnavailable when it cannot be read."""
        if self.databases is None:
            raise UnknownDatabase(db_id, [])
        path = self.databases.path(db_id)
        allowed = self.permissions.get(db_id) if self.permissions else None
        try:
            text = await asyncio.to_thread(schema_text, path, self.schema_format, self.schema_sample_rows, allowed)
        except DataError as exc:  # a server that is down, a file that went away: the database, not the question
            raise DatabaseUnavailable(f"database {db_id} is unavailable: {exc}") from None
        return Target(text, path, db_id, allowed)

    async def target(self, *, db_id: str | None = None, schema: str | None = None) -> Target:
        """`db_id`'s database, else `schema` (CREATE TABLE statements; other text is shown as written)."""
        if db_id is not None:
            return await self.database(db_id)
        return Target(schema_from_text(schema or ""))

    # ------------------------------------------------------------------ prompts and generations

    def prompt(self, question: str, target: Target, evidence: str | None = None, history: Sequence[Turn] = ()) -> Any:
        """The prompt as evaluation builds it: the schema pruned to the model's budget, value hints, the
        earlier turns `history`."""
        return self.model.prompt(
            Example(
                question,
                "",
                target.schema,
                evidence=evidence,
                db_id=target.db_id,
                db_path=target.path,
                history=list(history),
            )
        )

    async def question_prompt(self, question: Question, db_id: str | None = None) -> Any:
        """The prompt of a question read from a chat or completion request: with the schema it holds, else
        `db_id`'s, after the earlier turns it holds. InvalidRequest when there is no question."""
        if not question.question.strip():
            raise InvalidRequest("no question: the last user message (or prompt) is empty")
        target = Target(question.schema) if question.schema or not db_id else await self.database(db_id)
        return self.prompt(question.question, target, question.evidence, question.history)

    def reserve(self, count: int) -> AbstractContextManager[Any]:
        """Room for `count` generations with the model, all at once (Busy, with nothing held, when there is none)."""
        return self.model.reserve(count)

    async def generate(self, requests: Sequence[Request], held: Any = None) -> list[Generation]:
        """The model's generations, in order, made on the room `held` (PromptTooLong for a prompt too long)."""
        return await self.model.generate(requests, held)

    async def candidates(
        self,
        question: str,
        target: Target,
        *,
        max_tokens: int,
        n: int = 1,
        sampling: Sampling = EXTRA_SAMPLING,
        evidence: str | None = None,
        history: Sequence[Turn] = (),
        held: Any = None,
    ) -> list[Generation]:
        """The greedy answer to `question` (after the earlier turns `history`), then n - 1 answers drawn
        with `sampling`."""
        prompt = self.prompt(question, target, evidence, history)
        requests = [Request(prompt, max_tokens)] + [Request(prompt, max_tokens, sampling)] * (n - 1)
        return await self.generate(requests, held)

    # ------------------------------------------------------------------ checks and the vote

    def judge(self, sqls: Sequence[str], target: Target, *, execute: bool, vote: bool) -> tuple[int, list[Candidate]]:
        """(index of the answer, every candidate checked): each distinct SQL checked once, run when
        `execute` or `vote`. Without vote the answer is the first (greedy) one; with vote, the one most
        candidates agree with by result (ties to the earlier one). Blocks while queries run."""
        results = check_each(
            sqls,
            target.path,
            execute=execute or vote,
            timeout=self.timeout,
            max_rows=self.max_rows,
            permissions=target.permissions,
        )
        if not vote:
            return 0, [Candidate(q, r, chosen=i == 0) for i, (q, r) in enumerate(zip(sqls, results))]
        ballot = vote_by_result(cast(Database, _Ran(sqls, results)), sqls, timeout=self.timeout, max_rows=self.max_rows)
        size = {i: len(group) for group in ballot.groups for i in group}
        return ballot.chosen, [
            Candidate(q, r, votes=size.get(i, 0), chosen=i == ballot.chosen)
            for i, (q, r) in enumerate(zip(sqls, results))
        ]

    # ------------------------------------------------------------------ answers

    async def answer(
        self,
        question: str,
        target: Target,
        *,
        max_tokens: int,
        execute: bool = False,
        n: int = 1,
        vote: bool = False,
        sampling: Sampling = EXTRA_SAMPLING,
        evidence: str | None = None,
        max_repairs: int = 0,
        held: Any = None,
        history: Sequence[Turn] = (),
    ) -> SqlAnswer:
        """The SQL for `question` on `target` (see the module docstring), a follow-up of the earlier
        (question, SQL) turns `history`, oldest first: rows when `execute` and the target is a database. Each round generates n candidates on `held` (room for n × (1 +
        max_repairs) generations). Vote needs a database; with n = 1 there is nothing to vote on.
        DatabaseUnavailable when the database cannot be reached; the model's failures are in the answer."""
        voting = vote and n > 1
        if voting and target.path is None:
            raise InvalidRequest("vote needs a database: candidates are compared by running them on it")
        answer = SqlAnswer(executed=execute and target.path is not None)
        asked = question
        for _ in range(max_repairs + 1):
            gens = await self.candidates(
                asked,
                target,
                max_tokens=max_tokens,
                n=n,
                sampling=sampling,
                evidence=evidence,
                history=history,
                held=held,
            )
            sqls = [extract_sql(g.text) for g in gens]
            chosen, candidates = await asyncio.to_thread(self.judge, sqls, target, execute=execute, vote=voting)
            ran = candidates[chosen].result
            if ran.category == NO_DATABASE:  # no answer fixes a database that is away
                raise DatabaseUnavailable(f"database {target.name} is unavailable: {ran.error}")
            checked = _as_answer(ran, gens[chosen])
            if not voting:
                candidates[0].result = checked  # the greedy candidate is the answer: it reports the answer's check
            answer.sql, answer.result, answer.attempts = sqls[chosen], checked, answer.attempts + 1
            answer.prompt_tokens += gens[0].prompt_tokens  # one prompt per round, read once
            answer.completion_tokens += sum(g.completion_tokens for g in gens)
            answer.history.append({"sql": answer.sql, "error": checked.error})
            answer.candidates = candidates if n > 1 else None
            if checked.ok:
                break
            asked = repair_question(question, answer.sql, checked.error or "")
        return answer

    def answer_now(self, question: str, target: Target, **options: Any) -> SqlAnswer:
        """`answer` for synchronous callers (a command): runs it in an event loop of its own."""
        return asyncio.run(self.answer(question, target, **options))


def _as_answer(checked: ExecutionResult, generation: Generation) -> ExecutionResult:
    """The check of an answer: one that failed after reaching the token limit is unfinished, not wrong
    (the fix is a larger max_tokens)."""
    if checked.ok or generation.finish_reason != "length":
        return checked
    note = f"the answer reached the token limit before it ended ({checked.error})"
    return replace(checked, error=note, category=TRUNCATED)


class _Ran:
    """The candidates' results, already run, in the place of a database: the vote groups them without
    running anything again."""

    def __init__(self, sqls: Sequence[str], results: Sequence[ExecutionResult]):
        self.results = dict(zip(sqls, results))

    def execute(self, sql: str, **limits: Any) -> ExecutionResult:
        return self.results[sql]
