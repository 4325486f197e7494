"""`text2sql predict --model M --db DB "question" [--execute] [--n N --vote]`: one question in, one SQL
statement out.

`text2sql predict --model M --db DB --chat`: a conversation in the terminal. Each question (read with
line editing and the session's earlier questions on the arrow keys) is asked as a follow-up of the ones
before; its SQL is printed and, on a database, run read-only with its rows shown (--execute's output).
A failed question prints its one-line error and the conversation goes on. `new` starts a new
conversation; `exit`, `quit` or end of input (Ctrl-D) leaves.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from text2sql.commands.common import add_model_arguments, add_threads_argument
from text2sql.config import ServingConfig

HELP = "answer one question with SQL only (and its rows with --execute), or a conversation with --chat"
PROMPT = "> "
LEAVE = ("exit", "quit")
RESTART = "new"

_D = ServingConfig()
# The extra candidates are sampled as /v1/sql samples them (answering.EXTRA_SAMPLING; not imported
# here, so that the command line starts without loading the serving modules).
_TEMPERATURE, _TOP_P = 0.8, 0.95


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", help="the question, in quotes (none with --chat)")
    add_model_arguments(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--db",
        metavar="DB",
        help="the database: a SQLite or DuckDB file, a postgresql://user@host/db URL (password from PGPASSWORD or "
        "~/.pgpass) or a bundled one by name (airline, clinic, retail, university); its schema goes into the prompt",
    )
    where.add_argument("--schema", metavar="FILE.sql", help="a file of CREATE TABLE statements (no database)")
    p.add_argument("--execute", action="store_true", help="run the SQL read-only on --db and print the rows")
    p.add_argument(
        "--chat",
        action="store_true",
        help="a conversation in the terminal: ask questions one after another, each a follow-up of the ones "
        "before; with --db every answer runs and shows its rows. new starts over; exit or Ctrl-D leaves",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        help="longest answer generated, in tokens (default: as the model's run evaluated it)",
    )
    p.add_argument(
        "--max-repairs",
        type=int,
        default=0,
        metavar="N",
        help="when the SQL fails to compile or run, ask again with the error up to N times",
    )
    p.add_argument(
        "--n",
        type=int,
        default=1,
        metavar="N",
        help="candidates: the greedy answer plus N - 1 sampled ones (as /v1/sql's n); the greedy one is the "
        "answer unless --vote",
    )
    p.add_argument(
        "--vote",
        action="store_true",
        help="run the N candidates read-only on --db and answer with the one most of them agree with by result",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=_TEMPERATURE,
        help="sampling temperature of the N - 1 extra candidates",
    )
    p.add_argument("--top-p", type=float, default=_TOP_P, help="nucleus sampling of the N - 1 extra candidates")
    p.add_argument("--timeout", type=float, default=_D.timeout, help="seconds the query may run")
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="with --model openai:NAME: the OpenAI-compatible endpoint (default: $OPENAI_BASE_URL, else OpenAI's)",
    )
    p.add_argument("--rows", type=int, default=20, metavar="N", help="rows of the result to print")
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="TABLE,TABLE(COL,COL)",
        help="the SQL may read only these tables (and, in brackets, columns) of --db: the schema the model is "
        "shown holds only them and SQL reading anything else is refused (repeatable)",
    )
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from text2sql.errors import Text2SQLError

    if args.chat and args.question is not None:
        raise Text2SQLError("--chat reads its questions from the terminal; leave out the question argument")
    if args.chat:
        return chat(args)
    if args.question is None:
        raise Text2SQLError("no question; pass it as the last argument, in quotes, or use --chat for a conversation")
    from text2sql.serving.predict import format_table, predict

    p = predict(
        args.model,
        args.question,
        db=args.db,
        schema=args.schema,
        execute=args.execute,
        base=args.base,
        checkpoint=args.checkpoint,
        max_new_tokens=args.max_new_tokens,
        max_repairs=args.max_repairs,
        timeout=args.timeout,
        max_rows=_D.max_rows,
        threads=args.threads,
        base_url=args.base_url,
        n=args.n,
        vote=args.vote,
        temperature=args.temperature,
        top_p=args.top_p,
        allow=args.allow,
    )
    print(p.sql)
    if p.attempts > 1:
        print(f"({p.attempts} attempts)", file=sys.stderr)
    if args.vote and args.n > 1:
        print(f"({p.answer.votes} of {args.n} candidates agree)", file=sys.stderr)
    if not args.execute:
        return 0
    result = p.result
    if result is None or not result.ok:
        print(f"error: the SQL failed: {result.error if result else 'not run'}", file=sys.stderr)
        return 1
    print()
    print(format_table(result.columns, result.rows, limit=args.rows, truncated=result.truncated))
    return 0


def chat(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """The conversation of `--chat` (see the module docstring): 0 when it ends by exit or end of input."""
    from text2sql.inference.generate import Sampling
    from text2sql.serving.predict import Conversation, check_candidates, open_session, resolve_database
    from text2sql.sql.targets import redact

    check_candidates(
        resolve_database(args.db), n=args.n, vote=args.vote, temperature=args.temperature, top_p=args.top_p
    )
    session = open_session(
        args.model,
        db=args.db,
        schema=args.schema,
        base=args.base,
        checkpoint=args.checkpoint,
        max_new_tokens=args.max_new_tokens,
        timeout=args.timeout,
        max_rows=_D.max_rows,
        threads=args.threads,
        base_url=args.base_url,
        allow=args.allow,
    )
    conversation = Conversation(
        session,
        execute=True,
        n=args.n,
        vote=args.vote,
        sampling=Sampling(temperature=args.temperature, top_p=args.top_p),
        max_repairs=args.max_repairs,
    )
    about = f"on {redact(args.db)}" if args.db else f"on the schema of {args.schema}"
    print(
        f"Ask questions {about}; each follows up on the ones before. {RESTART} starts over, exit leaves.",
        file=sys.stderr,
    )
    interactive = stdin is None and sys.stdin.isatty()
    read = _reader(stdin, interactive)
    while True:
        try:
            line = read()
        except EOFError:
            if interactive:
                print()  # the shell's prompt starts on a line of its own
            return 0
        except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as a shell does
            print()
            continue
        question = line.strip()
        if not question:
            continue
        if question.lower() in LEAVE:
            return 0
        if question.lower() == RESTART:
            conversation.restart()
            print("(a new conversation)")
            continue
        _answer(conversation, question, args.rows)


def _answer(conversation: Any, question: str, rows: int) -> None:
    """One turn: the SQL, then its rows (or why it failed); a one-line error when it could not be asked."""
    from text2sql.errors import Text2SQLError
    from text2sql.serving.predict import format_table

    try:
        p = conversation.ask(question)
    except Text2SQLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return
    print(p.sql)
    result = p.result
    if p.executed and result is not None and result.ok:
        print(format_table(result.columns, result.rows, limit=rows, truncated=result.truncated))
    elif p.executed:
        print(f"error: the SQL failed: {result.error if result else 'not run'}", file=sys.stderr)
    sys.stdout.flush()


def _reader(stdin: TextIO | None, interactive: bool):
    """A function that reads the next question: `input` with readline's line editing and in-session
    history on a terminal (`interactive`), else lines of `stdin` (EOFError at its end)."""
    source = stdin or sys.stdin
    if interactive:
        try:
            import readline  # noqa: F401  (input() gains line editing and the arrow-key history)
        except ImportError:  # Windows: plain input
            pass
        return lambda: input(PROMPT)

    def next_line() -> str:
        line = source.readline()
        if not line:
            raise EOFError
        return line

    return next_line
