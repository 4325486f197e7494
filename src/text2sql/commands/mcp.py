"""`text2sql mcp --model M --database ID=DB`: the model and its databases as Model Context Protocol tools,
over stdio (the default: an MCP client starts the command) or streamable HTTP (`--http PORT`)."""

from __future__ import annotations

import argparse

from text2sql.commands.common import add_model_arguments, add_threads_argument
from text2sql.commands.serve import FIELDS, add_audit_argument, add_database_arguments, server_options
from text2sql.config import ServingConfig, add_section_flags
from text2sql.errors import MissingExtraError

HELP = "serve a model to MCP clients (agents, editors): list_databases, describe, ask, run_sql"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_database_arguments(p)
    p.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio",
    )
    p.add_argument("--host", default="127.0.0.1", help="with --http: address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--api-key",
        help="with --http: require 'Authorization: Bearer KEY' (default: $TEXT2SQL_API_KEY; the variable keeps "
        "the key out of the process list)",
    )
    add_audit_argument(p)
    add_section_flags(p, ServingConfig, FIELDS)
    add_threads_argument(p)
    p.add_argument(
        "--log-level",
        default="warning",
        choices=("critical", "error", "warning", "info", "debug"),
        help="with --http: uvicorn log level (info shows one line per request)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        from text2sql.serving.mcp_server import run_mcp
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("mcp", "mcp_types"):
            raise
        raise MissingExtraError("text2sql mcp", "mcp", "mcp") from None
    run_mcp(args.model, http_port=args.http, **server_options(args))
    return 0
