"""What several verbs share: reading `CONFIG.yaml key=value ...` into a config, and the model flags."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from text2sql.config import Config, load_config, split_config_args

MODEL_HELP = (
    "a merged model folder, an adapter folder (base + adapter), a run folder, a base model folder, a hub id, "
    "a gs:// or s3:// folder, a Vertex AI Model Registry name (projects/P/locations/L/models/ID[@V]), tiny:<arch>, "
    "or openai:NAME (an OpenAI-compatible endpoint: --base-url or $OPENAI_BASE_URL, key in $OPENAI_API_KEY)"
)


def load_run_config(items: Sequence[str], extra_overrides: Sequence[str] = ()) -> tuple[str | None, Config]:
    """(the config path as given, the config) from `CONFIG.yaml key=value ...`. A gs:// or s3://
    config (a launched job reads its config from the staging bucket) is fetched first."""
    path, overrides = split_config_args(items)
    local = path
    if path and "://" in path:
        from text2sql import storage  # fsspec and its backends: only for a remote config

        if storage.is_remote(path):
            local = str(storage.fetch(path))
    cfg = load_config(local, [*extra_overrides, *overrides])
    if cfg.data.unsafe_role:
        from text2sql.sql.postgres import allow_unsafe_role

        allow_unsafe_role(True)
    return path, cfg


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads torch uses (model.threads; default: $TEXT2SQL_THREADS, else the cores idle when the "
        "model starts)",
    )


def threads_override(args: argparse.Namespace) -> list[str]:
    """`--threads N` as the config override it stands for (none when the flag is not given)."""
    return [] if args.threads is None else [f"model.threads={args.threads}"]


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="M", help=MODEL_HELP)
    p.add_argument("--base", help="adapters: base model to load instead of the one the adapter records")
    p.add_argument("--checkpoint", help="a checkpoint folder inside or beside --model, e.g. checkpoint-500")
