"""`text2sql predict --model M --db DB "question" [--execute] [--n N --vote]`: one question in, one SQL
statement out."""

from __future__ import annotations

import argparse
import sys

from text2sql.commands.common import add_model_arguments, add_threads_argument
from text2sql.config import ServingConfig

HELP = "answer one question with SQL only (and its rows with --execute)"

_D = ServingConfig()
# The extra candidates are sampled as /v1/sql samples them (answering.EXTRA_SAMPLING; not imported
# here, so that the command line starts without loading the serving modules).
_TEMPERATURE, _TOP_P = 0.8, 0.95


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", help="the question, in quotes")
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
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
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
