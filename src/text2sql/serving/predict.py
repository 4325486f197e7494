"""`text2sql predict`: one question in, one SQL statement out (and its rows, when asked).

    p = predict("runs/x/merged", "How many flights leave Paris?", db="airline.sqlite", execute=True)
    print(p.sql); print(format_table(p.result.columns, p.result.rows))

The question is answered by the `Answerer` the server uses (`answering`): the prompt comes from the
model's training-time PromptBuilder (`load_for_inference`), the schema from the database rendered as
in training (or from a .sql file of CREATE TABLE statements), and the SQL runs only through the
read-only engines (with a timeout). `n` candidates and `vote` work as in `/v1/sql`. An `openai:NAME`
model is an endpoint, asked the default prompt with the whole schema (`inference.endpoint_prompts`).

A conversation (`predict --chat`) loads the model once and asks each question as a follow-up of the
ones before (their questions and answered SQL are its history, as training data holds them):

    chat = Conversation(open_session("runs/x/merged", db="airline"), execute=True)
    chat.ask("Which flights leave JFK?"); chat.ask("Only those longer than 300 minutes.")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from text2sql.config import EvaluationConfig
from text2sql.data import bundled
from text2sql.data.example import Turn
from text2sql.data.readers.ddl import extract_create_tables
from text2sql.data.schema import schema_text
from text2sql.errors import ConfigError, DataError, Text2SQLError
from text2sql.inference.answer_cache import AnswerCache, answers_folder, cache_file
from text2sql.inference.generate import Sampling
from text2sql.inference.loading import load_for_inference
from text2sql.inference.openai_model import OpenAIModel, is_endpoint
from text2sql.progress import progress_bars_disabled
from text2sql.serving.answer_models import EndpointModel, LocalModel, Model
from text2sql.serving.answering import EXTRA_SAMPLING, Answerer, SqlAnswer, Target
from text2sql.serving.engine import build_engine
from text2sql.sql.execution import ExecutionResult
from text2sql.sql.permissions import DatabasePermissions, Permissions
from text2sql.sql.targets import dialect_of, is_url, local_path, name_of

DEFAULT_SHOWN_ROWS = 20


@dataclass
class Prediction:
    """The answer: its SQL, the rounds it took, its check (rows when executed) and the whole answer
    (candidates and their votes with n > 1)."""

    sql: str
    attempts: int
    result: ExecutionResult | None  # rows when executed, else the compile/parse check's outcome
    executed: bool
    answer: SqlAnswer


def check_inputs(db: str | None, schema: str | None, execute: bool) -> None:
    """Bad input, reported before any model loads."""
    if (db is None) == (schema is None):
        raise Text2SQLError("give exactly one of --db (a database file or URL) or --schema FILE.sql")
    if execute and db is None:
        raise Text2SQLError("--execute needs --db: the SQL can only run on a database")
    if db is not None:
        try:
            dialect_of(db)  # an unknown URL scheme names the supported ones
        except ConfigError as exc:
            raise DataError(str(exc)) from None
        if is_url(db) and dialect_of(db) == "postgres":
            return  # reachable or not, schema_text says in one line
    path = local_path(db or schema or "")
    if not path.is_file():
        if db:
            names = ", ".join(bundled.db_ids())
            raise DataError(
                f"database {path} not found; give a SQLite or DuckDB file, a postgresql:// URL or a bundled "
                f"database ({names})"
            )
        raise DataError(f"schema file {path} not found; check the path")


def resolve_database(db: str | None) -> str | None:
    """A database file or URL as given, or the bundled database of that name (`--db airline`)."""
    if db is None or is_url(db) or Path(db).is_file():
        return db
    return str(bundled.db_path(db)) if db in bundled.db_ids() else db


def read_schema_file(path: str | Path) -> str:

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the schema as UTF-8") from None
    statements, _ = extract_create_tables(text)
    if not statements:
        raise DataError(f"{path}: no CREATE TABLE statements found; --schema takes a file of CREATE TABLE statements")
    return "\n".join(statements)


def check_candidates(db: str | None, *, n: int, vote: bool, temperature: float, top_p: float) -> None:
    """Bad candidate settings, reported before any model loads."""
    if n < 1:
        raise Text2SQLError(f"--n {n}: give 1 or more candidates (the greedy answer plus n - 1 sampled ones)")
    if vote and db is None:
        raise Text2SQLError("--vote needs --db: candidates are compared by running them on the database")
    if not 0 < temperature <= 2:
        raise Text2SQLError(f"--temperature {temperature:g}: give a value above 0 and at most 2")
    if not 0 < top_p <= 1:
        raise Text2SQLError(f"--top-p {top_p:g}: give a value above 0 and at most 1")


@dataclass
class Session:
    """A loaded model and what its questions are about (a database, or a schema): `ask` answers one."""

    answerer: Answerer
    target: Target
    max_tokens: int

    def ask(
        self,
        question: str,
        *,
        execute: bool = False,
        n: int = 1,
        vote: bool = False,
        sampling: Sampling = EXTRA_SAMPLING,
        max_repairs: int = 0,
        history: Sequence[Turn] = (),
    ) -> Prediction:
        """The answer to `question`, a follow-up of the (question, SQL) turns `history`, oldest first."""
        result = self.answerer.answer_now(
            question,
            self.target,
            max_tokens=self.max_tokens,
            execute=execute,
            n=n,
            vote=vote,
            sampling=sampling,
            max_repairs=max_repairs,
            history=history,
        )
        return Prediction(
            sql=result.sql, attempts=result.attempts, result=result.result, executed=result.executed, answer=result
        )


@dataclass
class Conversation:
    """Questions asked in turn, each a follow-up of those before: every answer with SQL joins the
    history of the next question. With `execute` (and a database) each answer runs and brings its rows."""

    session: Session
    execute: bool = False
    n: int = 1
    vote: bool = False
    sampling: Sampling = EXTRA_SAMPLING
    max_repairs: int = 0
    history: list[Turn] = field(default_factory=list)

    def ask(self, question: str) -> Prediction:
        """The answer to the next question of the conversation."""
        if not question.strip():
            raise Text2SQLError("the question is empty; type a question, or exit to leave")
        p = self.session.ask(
            question,
            execute=self.execute and self.session.target.path is not None,
            n=self.n,
            vote=self.vote,
            sampling=self.sampling,
            max_repairs=self.max_repairs,
            history=self.history,
        )
        if p.sql:
            self.history.append((question.strip(), p.sql))
        return p

    def restart(self) -> None:
        """Forget the earlier turns: the next question starts a new conversation."""
        self.history.clear()


def predict(
    model: str,
    question: str,
    *,
    db: str | None = None,
    schema: str | None = None,
    execute: bool = False,
    base: str | None = None,
    checkpoint: str | None = None,
    max_new_tokens: int | None = None,
    max_repairs: int = 0,
    timeout: float = 5.0,
    max_rows: int = 1000,
    threads: int | None = None,
    base_url: str | None = None,
    n: int = 1,
    vote: bool = False,
    temperature: float = EXTRA_SAMPLING.temperature,
    top_p: float = EXTRA_SAMPLING.top_p,
    history: Sequence[Turn] = (),
    allow: Sequence[str] = (),
) -> Prediction:
    """The model's SQL for `question` on the database `db` (a SQLite or DuckDB file, a PostgreSQL URL) or the schema file
    `schema`; with `execute`, its rows. With `n` > 1 the greedy answer comes with n - 1 answers sampled at
    `temperature` and `top_p`; with `vote`, the answer is the one most of them agree with by result. `history`:
    the earlier (question, SQL) turns it follows up on. `allow`: the tables (and, in brackets, columns) the
    SQL may read, as `--allow` writes them (`text2sql.sql.permissions`). Raises Text2SQLError for bad input,
    before loading. `model` may be an endpoint, `openai:NAME` (at `base_url`, default $OPENAI_BASE_URL)."""
    db = resolve_database(db)
    check_inputs(db, schema, execute)
    check_candidates(db, n=n, vote=vote, temperature=temperature, top_p=top_p)
    if not question.strip():
        raise Text2SQLError("the question is empty; pass it as the last argument, in quotes")
    session = open_session(
        model,
        db=db,
        schema=schema,
        base=base,
        checkpoint=checkpoint,
        max_new_tokens=max_new_tokens,
        timeout=timeout,
        max_rows=max_rows,
        threads=threads,
        base_url=base_url,
        allow=allow,
    )
    return session.ask(
        question,
        execute=execute,
        n=n,
        vote=vote,
        sampling=Sampling(temperature=temperature, top_p=top_p),
        max_repairs=max_repairs,
        history=history,
    )


def open_session(
    model: str,
    *,
    db: str | None = None,
    schema: str | None = None,
    base: str | None = None,
    checkpoint: str | None = None,
    max_new_tokens: int | None = None,
    timeout: float = 5.0,
    max_rows: int = 1000,
    threads: int | None = None,
    base_url: str | None = None,
    allow: Sequence[str] = (),
) -> Session:
    """`model` loaded (or its endpoint opened) for questions on `db` or the schema file `schema`, with
    the schema as the model was trained to read it, holding only what `allow` lets questions read (see
    `predict`). Bad input raises Text2SQLError before loading."""
    db = resolve_database(db)
    check_inputs(db, schema, False)
    allowed = allowed_tables(allow, db)
    # Validates the file, and binds the permissions to the database's catalog, before the model loads.
    schema_str = schema_text(db, "sql", permissions=allowed) if db else read_schema_file(schema or "")
    asked: Model
    if is_endpoint(model):
        asked = _endpoint(model, db, base_url)
        max_new_tokens = max_new_tokens or EvaluationConfig().max_new_tokens
    else:
        with progress_bars_disabled():
            im = load_for_inference(model, base=base, checkpoint=checkpoint, threads=threads)
        if max_new_tokens is None:  # as long as the model's own run let its answers be
            max_new_tokens = (im.config.evaluation if im.config is not None else EvaluationConfig()).max_new_tokens
        if db:
            schema_str = schema_text(db, im.schema_format, im.schema_sample_rows, allowed)
        if allowed is not None:  # prompts pruned and hinted from the allowed tables and columns only
            im.builder.schema = replace(im.builder.schema, permissions=Permissions(((name_of(db or ""), allowed),)))
        asked = LocalModel(build_engine(im, batch_size=1))
    target = Target(schema_str, db, name_of(db) if db else None, allowed)
    return Session(Answerer(asked, timeout=timeout, max_rows=max_rows), target, max_new_tokens)


def allowed_tables(allow: Sequence[str], db: str | None) -> DatabasePermissions | None:
    """`--allow TABLE,TABLE(COL,...)` flags (an `ID:` before them is accepted and ignored: predict has one
    database) as the permissions of `db`; None without any. ConfigError without a database."""
    if not allow:
        return None
    if db is None:
        raise ConfigError("--allow limits what SQL reads on a database: give --db too")
    texts = [a.split(":", 1)[1] if ":" in a.split("(", 1)[0] else a for a in allow]
    return DatabasePermissions.parse(texts, "--allow")


def _endpoint(model: str, db: str | None, base_url: str | None) -> EndpointModel:
    """An endpoint asked the default prompt with the whole schema, in the database's dialect; its
    answers kept in the cache root's answers folder."""
    endpoint = OpenAIModel(model, base_url=base_url)
    endpoint.cache = AnswerCache(cache_file(answers_folder(), endpoint.base_url, endpoint.name))
    return EndpointModel(endpoint, dialect_of(db) if db else None)


def format_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, limit: int = DEFAULT_SHOWN_ROWS, truncated: bool = False
) -> str:
    """Rows as an aligned text table; at most `limit` rows, then a line saying how many more."""
    shown = [[_cell(v) for v in row] for row in rows[:limit]]
    header = [str(c) for c in columns]
    widths = [max([len(header[i])] + [len(r[i]) for r in shown]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [line(header), line(["-" * w for w in widths]), *(line(r) for r in shown)]
    hidden = len(rows) - len(shown)
    if hidden > 0 or truncated:
        more = f"{hidden}{'+' if truncated else ''}"
        lines.append(f"... {more} more rows")
    else:
        lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    return str(value).replace("\n", "\\n")  # one row per line
