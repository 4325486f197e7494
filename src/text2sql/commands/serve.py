"""`text2sql serve --model M`: an OpenAI-compatible HTTP API plus `/v1/sql`."""

from __future__ import annotations

import argparse
from typing import Any

from text2sql.commands.common import add_model_arguments, add_threads_argument
from text2sql.config import ServingConfig, add_section_flags, refuse_passwords
from text2sql.errors import ConfigError
from text2sql.sql.permissions import Permissions

HELP = "serve a model over HTTP: OpenAI-compatible chat/completions and /v1/sql"

# Settings a flag overrides (over the `serving` section saved beside the model, over the defaults).
FIELDS = (
    "backend",
    "max_repairs",
    "batch_size",
    "batch_wait_ms",
    "max_queue",
    "max_generations_per_request",
    "max_tokens",
    "max_tokens_limit",
    "max_body_bytes",
    "timeout",
    "max_rows",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_database_arguments(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument(
        "--api-key",
        help="require 'Authorization: Bearer KEY' on every endpoint but /health "
        "(default: $TEXT2SQL_API_KEY; the variable keeps the key out of the process list)",
    )
    p.add_argument("--served-model-name", help="the model id /v1/models reports (default: --model)")
    add_audit_argument(p)
    add_section_flags(p, ServingConfig, FIELDS)
    add_threads_argument(p)
    p.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn log level (info shows one line per request)",
    )


def run(args: argparse.Namespace) -> int:
    from text2sql.serving.server import serve

    serve(args.model, port=args.port, model_name=args.served_model_name, **server_options(args))
    return 0


def server_options(args: argparse.Namespace) -> dict[str, Any]:
    """What `serve` and `mcp` pass alike to their server: address, key, databases, model parts,
    threads, audit, permissions and the `serving` settings their flags override."""
    return dict(
        host=args.host,
        log_level=args.log_level,
        db_dir=args.db_dir,
        databases=database_flags(args.database),
        api_key=args.api_key,
        base=args.base,
        checkpoint=args.checkpoint,
        threads=args.threads,
        audit=args.audit,
        allow=allow_flags(args.allow),
        **{name: getattr(args, name) for name in FIELDS},
    )


def add_database_arguments(p: argparse.ArgumentParser) -> None:
    """`--db-dir` and `--database ID=DB`: the databases a server answers about."""
    p.add_argument(
        "--db-dir", help="folder of <db_id>/<db_id>.sqlite databases to answer about (default: the bundled ones)"
    )
    p.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="ID=DB",
        help="serve a database by id: a SQLite or DuckDB file or a postgresql:// URL (repeatable; "
        "password from PGPASSWORD or ~/.pgpass)",
    )
    p.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="ID:TABLE,TABLE(COL,COL)",
        help="questions about database ID may read only these tables (and, in brackets, columns): the schema "
        "the model is shown holds only them and SQL reading anything else is refused (repeatable; "
        "serving.allow in a config)",
    )


def add_audit_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--audit",
        metavar="FILE",
        help="append one JSON line per question to FILE: time, client (a hash of the API key), database, "
        "question, SQL, whether it ran, rows, error, latency",
    )


def allow_flags(items: list[str]) -> Permissions | None:
    """`--allow ID:TABLE,...` flags (`text2sql.sql.permissions`); None without any."""
    return Permissions.from_cli(items) if items else None


def database_flags(items: list[str]) -> dict[str, str]:
    """`--database ID=DB` flags as a mapping; ConfigError for one without `=` or with a password."""
    mapping: dict[str, str] = {}
    for item in items:
        db_id, sep, target = item.partition("=")
        if not sep or not db_id or not target:
            raise ConfigError(f"--database {item}: write ID=DB, e.g. --database shop=postgresql://localhost/shop")
        mapping[db_id] = target
    try:
        refuse_passwords({f"--database {k}": v for k, v in mapping.items()})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return mapping
