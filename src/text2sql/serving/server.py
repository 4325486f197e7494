"""`text2sql serve`: load a model once, put the micro-batching engine in front of it, run uvicorn.

    serve("runs/x/merged", host="127.0.0.1", port=8000, api_key=os.environ.get("TEXT2SQL_API_KEY"))

Settings come from the `serving` section of the config.yaml saved beside the model (else the
defaults), then from the keyword arguments (the command-line flags), which win.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any

from text2sql.config import ServingConfig
from text2sql.errors import ConfigError, MissingExtraError
from text2sql.inference.loading import load_for_inference
from text2sql.progress import progress_bars_disabled
from text2sql.serving.databases import DatabaseDirectory
from text2sql.serving.engine import build_engine

log = logging.getLogger(__name__)

API_KEY_ENV = "TEXT2SQL_API_KEY"
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Server:
    app: Any
    engine: Any
    settings: Any


def require_serve_extra() -> None:
    import importlib.util

    for package in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(package) is None:
            raise MissingExtraError("text2sql serve", package, "serve")


def build_server(
    model: str,
    *,
    db_dir: str | None = None,
    api_key: str | None = None,
    base: str | None = None,
    checkpoint: str | None = None,
    model_name: str | None = None,
    **overrides: Any,
) -> Server:
    """Load `model` and build the app (not started). `overrides` are `ServingConfig` fields; None
    values are ignored, so unset command-line flags leave the model's saved settings alone."""
    require_serve_extra()
    from text2sql.serving.app import ServerSettings, create_app

    serving_config(ServingConfig(), overrides)  # bad flags fail before the model loads
    if db_dir is not None:
        DatabaseDirectory(db_dir)
    backend = overrides.get("backend") or "hf"
    with progress_bars_disabled():
        im = load_for_inference(model, base=base, checkpoint=checkpoint, load_weights=backend == "hf")
    serving = serving_config(im.config.serving if im.config is not None else ServingConfig(), overrides)
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
        api_key=api_key or None,
        schema_format=im.schema_format,
        schema_sample_rows=im.schema_sample_rows,
    )
    return Server(app=create_app(engine, settings), engine=engine, settings=settings)


def serving_config(saved: ServingConfig, overrides: dict[str, Any]) -> ServingConfig:
    """`saved` with the overrides that are set; a lower max_tokens_limit also lowers the default
    max_tokens when that was not set. ConfigError names every bad value."""
    from pydantic import ValidationError

    values = {**saved.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("max_tokens") is None and overrides.get("max_tokens_limit") is not None:
        values["max_tokens"] = min(values["max_tokens"], values["max_tokens_limit"])
    try:
        return ServingConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'serving'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid serving setting: {problems}") from None


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **kwargs: Any) -> None:
    """Build the server and run it until interrupted (Ctrl-C)."""
    import uvicorn

    if kwargs.get("api_key") is None:
        kwargs["api_key"] = os.environ.get(API_KEY_ENV) or None
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
