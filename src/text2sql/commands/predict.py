"""`text2sql predict --model M --db DB "question" [--execute]`: one question in, one SQL statement out."""

from __future__ import annotations

import argparse
import sys

from text2sql.commands.common import add_model_arguments, add_threads_argument
from text2sql.config import ServingConfig

HELP = "answer one question with SQL only (and its rows with --execute)"

_D = ServingConfig()


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
    )
    print(p.sql)
    if p.attempts > 1:
        print(f"({p.attempts} attempts)", file=sys.stderr)
    if not args.execute:
        return 0
    result = p.result
    if result is None or not result.ok:
        print(f"error: the SQL failed: {result.error if result else 'not run'}", file=sys.stderr)
        return 1
    print()
    print(format_table(result.columns, result.rows, limit=args.rows, truncated=result.truncated))
    return 0
