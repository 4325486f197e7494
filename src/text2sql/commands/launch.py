"""`text2sql launch vertex CONFIG.yaml [key=value ...] [--dry-run] [--machine-type ...]`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from text2sql.commands.common import load_run_config
from text2sql.config import split_config_args
from text2sql.errors import ConfigError, Text2SQLError
from text2sql.launch import vertex
from text2sql.storage import is_remote, upload

HELP = "launch a run on a cloud platform (Vertex AI custom job)"


def add_arguments(p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    v = targets.add_parser(
        "vertex",
        parents=list(parents),
        help="a Vertex AI custom job running the training image (defaults: the config's launch section)",
    )
    v.add_argument(
        "config_and_overrides",
        nargs="+",
        metavar="CONFIG.yaml [key=value ...]",
        help="a local or gs:// YAML config followed by dotted overrides; a local file is uploaded to launch.staging_bucket",
    )
    v.add_argument(
        "--dry-run", action="store_true", help="validate and print the job as JSON; upload and submit nothing"
    )
    v.add_argument(
        "--verb", choices=vertex.VERBS, default="run", help="what the job runs: the whole pipeline or training only"
    )
    v.add_argument("--machine-type", help="Vertex AI machine type, e.g. g2-standard-4 (launch.machine_type)")
    v.add_argument("--accelerator-type", help="GPU type, e.g. NVIDIA_L4, NVIDIA_TESLA_A100 (launch.accelerator_type)")
    v.add_argument(
        "--accelerator-count", type=int, metavar="N", help="GPUs per machine; 0 for none (launch.accelerator_count)"
    )
    v.add_argument(
        "--replica-count", type=int, metavar="N", help="machines; above 1 trains multi-node (launch.replica_count)"
    )
    v.add_argument("--image", dest="image_uri", metavar="URI", help="training image URI (launch.image_uri)")
    v.add_argument("--display-name", help="job name in the console (default: text2sql-VERB-RUN)")
    v.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path, overrides = split_config_args(args.config_and_overrides)
    if path is None:
        raise Text2SQLError(
            "text2sql launch vertex needs a config file first: text2sql launch vertex CONFIG.yaml [key=value ...]"
        )
    _, cfg = load_run_config(args.config_and_overrides)  # every config problem is reported here, offline
    problems = vertex.launch_problems(cfg)
    if problems:
        raise ConfigError(f"cannot launch on Vertex AI ({len(problems)} problem(s)): " + "; ".join(problems))
    config_uri = path if is_remote(path) else vertex.staged_config_uri(path, cfg.launch.staging_bucket)
    spec = vertex.vertex_job_spec(
        cfg,
        config_uri=config_uri,
        overrides=overrides,
        command=args.verb,
        machine_type=args.machine_type,
        accelerator_type=args.accelerator_type,
        accelerator_count=args.accelerator_count,
        replica_count=args.replica_count,
        image_uri=args.image_uri,
        display_name=args.display_name,
    )
    checked = vertex.validate_with_api_types(spec)
    where = f"projects/{cfg.launch.project or '<launch.project is unset>'}/locations/{cfg.launch.region}"
    if args.dry_run:
        print(json.dumps(spec, indent=2))
        staged = "" if config_uri == path else f"upload {path} to {config_uri}, then "
        print(
            f"dry run: would {staged}create this job in {where}"
            f"{'' if checked else ' (not checked against the Vertex AI API types: pip install text2sql[vertex])'}",
            file=sys.stderr,
        )
        return 0
    if not cfg.launch.project:
        raise ConfigError("no Google Cloud project: set launch.project (or pass launch.project=ID)")
    vertex.require_sdk()  # before uploading anything
    if config_uri != path:
        upload(path, config_uri)
    name = vertex.submit(spec, cfg.launch.project, cfg.launch.region)
    print(f"submitted {name}\n{vertex.console_url(name)}")
    return 0
