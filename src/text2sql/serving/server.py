"""`text2sql serve`: load a model once, put the micro-batching engine in front of it, run uvicorn.

    serve("runs/x/merged", host="127.0.0.1", port=8000, api_key=os.environ.get("TEXT2SQL_API_KEY"))

Settings come from the `serving` section of the config.yaml saved beside the model (else the
defaults), then from the keyword arguments (the command-line flags), which win. Answers are as long
as the model's own run let them be (`evaluation.max_new_tokens`) unless `serving.max_tokens` says
otherwise.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import ValidationError

from text2sql.config import EvaluationConfig, ServingConfig
from text2sql.data.bundled import database_dir
from text2sql.data.schema import read_schema
from text2sql.errors import ConfigError
from text2sql.inference.loading import load_for_inference
from text2sql.progress import progress_bars_disabled
from text2sql.serving.app import ServerSettings, create_app
from text2sql.serving.audit import AuditLog
from text2sql.serving.databases import DatabaseDirectory
from text2sql.serving.engine import build_engine
from text2sql.sql.permissions import Permissions

log = logging.getLogger(__name__)

API_KEY_ENV = "TEXT2SQL_API_KEY"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Server:
    app: Any
    engine: Any
    settings: Any


def build_server(
    model: str,
    *,
    db_dir: str | None = None,
    databases: dict[str, str] | None = None,
    api_key: str | None = None,
    base: str | None = None,
    checkpoint: str | None = None,
    model_name: str | None = None,
    threads: int | None = None,
    audit: str | Path | None = None,
    allow: Permissions | None = None,
    **overrides: Any,
) -> Server:
    """Load `model` and build the app (not started). `overrides` are `ServingConfig` fields; None
    values are ignored, so unset command-line flags leave the model's saved settings alone. `audit`:
    the JSONL file every question is appended to (`audit.AuditLog`). `allow`: the tables and columns
    questions may read, by db_id (`--allow`; over `serving.allow`)."""
    serving_config(ServingConfig(), overrides)  # bad flags fail before the model loads
    directory = DatabaseDirectory(db_dir or database_dir(), databases)  # a missing file fails before the model loads
    if allow:
        bound_permissions(allow, directory)  # so does an --allow naming what the databases lack
    log = AuditLog(audit) if audit else None  # an unwritable file fails before the model loads
    backend = overrides.get("backend") or "hf"
    with progress_bars_disabled():
        im = load_for_inference(model, base=base, checkpoint=checkpoint, load_weights=backend == "hf", threads=threads)
    saved = im.config.serving if im.config is not None else ServingConfig()
    answer_tokens = (im.config.evaluation if im.config is not None else EvaluationConfig()).max_new_tokens
    serving = serving_config(saved, overrides, default_max_tokens=answer_tokens)
    permissions = bound_permissions(
        Permissions.from_config(serving.allow).replaced_by(allow or Permissions()),
        DatabaseDirectory(db_dir or database_dir(), {**serving.databases, **(databases or {})}),
    )
    engine = build_engine(
        im,
        backend=serving.backend,
        batch_size=serving.batch_size,
        batch_wait_ms=serving.batch_wait_ms,
        max_queue=serving.max_queue,
    )
    settings = ServerSettings(
        model_name=model_name or model,
        serving=serving,
        db_dir=db_dir,
        databases={**serving.databases, **(databases or {})},
        api_key=api_key or None,
        schema_format=im.schema_format,
        schema_sample_rows=im.schema_sample_rows,
        audit=log,
        permissions=permissions,
    )
    return Server(app=create_app(engine, settings), engine=engine, settings=settings)


def bound_permissions(permissions: Permissions, databases: DatabaseDirectory) -> Permissions | None:
    """`permissions` checked against the databases they name: an id the server does not have, or a
    table or column a database does not hold, is a ConfigError now, not a surprise at the first
    question. None when nothing is restricted."""
    if not permissions:
        return None
    permissions.check_databases(databases.ids())
    for db_id in databases.ids():
        allowed = permissions.get(db_id)
        if allowed is not None:
            read_schema(databases.path(db_id), allowed)  # binds every name to the catalog
    return permissions


def serving_config(
    saved: ServingConfig, overrides: dict[str, Any], *, default_max_tokens: int | None = None
) -> ServingConfig:
    """`saved` with the overrides that are set. An unset max_tokens becomes `default_max_tokens`
    (the model's evaluation.max_new_tokens), and a lower max_tokens_limit lowers it too.
    ConfigError names every bad value."""
    values = {**saved.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    if values["max_tokens"] is None and default_max_tokens is not None:
        values["max_tokens"] = default_max_tokens
    if overrides.get("max_tokens") is None and values["max_tokens"] is not None:
        values["max_tokens"] = min(values["max_tokens"], values["max_tokens_limit"])
    try:
        return ServingConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'serving'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid serving setting: {problems}") from None


def check_port(host: str, port: int) -> None:
    """ConfigError when `host:port` cannot be listened on (in use, or not this machine's address),
    before any model loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use; pass another --port") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise ConfigError(
                    f"port {port} needs more privileges than this user has; pass --port 1024 or above"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); check --host and --port") from None


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **kwargs: Any) -> None:
    """Build the server and run it until interrupted (Ctrl-C)."""
    if kwargs.get("api_key") is None:
        kwargs["api_key"] = os.environ.get(API_KEY_ENV) or None
    check_port(host, port)
    server = build_server(model, **kwargs)
    if server.settings.api_key is None and host not in _LOOPBACK:
        print(
            f"warning: serving on {host} without an API key; anyone who can reach it can query "
            f"the databases (set --api-key or {API_KEY_ENV})",
            file=sys.stderr,
        )
    print(
        f"serving {server.settings.model_name} at http://{host}:{port} "
        "(POST /v1/chat/completions, /v1/completions, /v1/sql; GET /v1/models, /health)",
        file=sys.stderr,
    )
    try:
        uvicorn.run(server.app, host=host, port=port, log_level=log_level)
    finally:
        server.engine.close()
        if server.settings.audit is not None:
            server.settings.audit.close()
