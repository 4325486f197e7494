"""Arguments and terminal output of `text2sql predict` and `text2sql serve` (cli.py stays thin)."""

from __future__ import annotations

import argparse
import sys

from text2sql.config import ServingConfig

_D = ServingConfig()

_MODEL_HELP = ("a merged model folder, an adapter folder (base + adapter), a run folder, a base model folder, "
               "a hub id, or tiny:<arch>")


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="M", help=_MODEL_HELP)
    p.add_argument("--base", help="adapters: base model to load instead of the one the adapter records")
    p.add_argument("--checkpoint", help="a checkpoint folder inside or beside --model, e.g. checkpoint-500")


def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", help="the question, in quotes")
    _model_arguments(p)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--db", metavar="FILE.sqlite",
        help="the database: its schema goes into the prompt (or a bundled one by name: airline, clinic, retail, university)",
    )
    where.add_argument("--schema", metavar="FILE.sql", help="a file of CREATE TABLE statements (no database)")
    p.add_argument("--execute", action="store_true", help="run the SQL read-only on --db and print the rows")
    p.add_argument("--max-new-tokens", type=int, default=_D.max_tokens, help="longest answer generated, in tokens")
    p.add_argument("--max-repairs", type=int, default=0, metavar="N",
                   help="when the SQL fails to compile or run, ask again with the error up to N times")
    p.add_argument("--timeout", type=float, default=_D.timeout, help="seconds the query may run")
    p.add_argument("--rows", type=int, default=20, metavar="N", help="rows of the result to print")


def run_predict(args: argparse.Namespace) -> int:
    from text2sql.serving.predict import format_table, predict

    p = predict(
        args.model, args.question, db=args.db, schema=args.schema, execute=args.execute, base=args.base,
        checkpoint=args.checkpoint, max_new_tokens=args.max_new_tokens, max_repairs=args.max_repairs,
        timeout=args.timeout, max_rows=_D.max_rows,
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


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    _model_arguments(p)
    p.add_argument("--db-dir", help="folder of <db_id>/<db_id>.sqlite databases for /v1/sql (default: the bundled ones)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on every endpoint but /health "
                   "(default: $TEXT2SQL_API_KEY; the variable keeps the key out of the process list)")
    p.add_argument("--backend", choices=("hf", "vllm"), default=None, help=f"generation backend (default {_D.backend})")
    p.add_argument("--served-model-name", help="the model id /v1/models reports (default: --model)")
    p.add_argument("--max-repairs", type=int, default=None, metavar="N", help=f"/v1/sql repair attempts (default {_D.max_repairs})")
    p.add_argument("--batch-size", type=int, default=None, help=f"most prompts per generate call (default {_D.batch_size})")
    p.add_argument("--batch-wait-ms", type=float, default=None, help=f"how long a batch waits to fill (default {_D.batch_wait_ms:g})")
    p.add_argument("--max-tokens", type=int, default=None, help=f"tokens generated when a request sets no max_tokens (default {_D.max_tokens})")
    p.add_argument("--max-tokens-limit", type=int, default=None, help=f"largest max_tokens accepted (default {_D.max_tokens_limit})")
    p.add_argument("--max-body-bytes", type=int, default=None, help=f"largest request body (default {_D.max_body_bytes})")
    p.add_argument("--timeout", type=float, default=None, help=f"seconds one SQL query may run (default {_D.timeout:g})")
    p.add_argument("--max-rows", type=int, default=None, help=f"rows returned at most (default {_D.max_rows})")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn log level (info shows one line per request)")


def run_serve(args: argparse.Namespace) -> int:
    from text2sql.serving.server import serve

    serve(
        args.model, host=args.host, port=args.port, log_level=args.log_level, db_dir=args.db_dir,
        api_key=args.api_key, base=args.base, checkpoint=args.checkpoint, model_name=args.served_model_name,
        backend=args.backend, max_repairs=args.max_repairs, batch_size=args.batch_size,
        batch_wait_ms=args.batch_wait_ms, max_tokens=args.max_tokens, max_tokens_limit=args.max_tokens_limit,
        max_body_bytes=args.max_body_bytes, timeout=args.timeout, max_rows=args.max_rows,
    )
    return 0
