"""`text2sql launch vertex CONFIG.yaml [key=value ...] [--dry-run] [--register] [--machine-type ...]`,
`text2sql launch vertex-register CONFIG.yaml [--model URI] [--dry-run]` and
`text2sql launch vertex-pipeline CONFIG.yaml [--dry-run | --compile FILE]`."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from text2sql.commands.common import load_run_config
from text2sql.config import split_config_args
from text2sql.errors import Text2SQLError
from text2sql.launch import jobs, pipeline, vertex
from text2sql.models import registry

HELP = "launch on Vertex AI: a custom job, a pipeline, or register a model"
# The flags of `launch vertex` that override the config's launch section.
_MACHINE = ("machine_type", "accelerator_type", "accelerator_count", "replica_count", "image_uri", "display_name")


def add_arguments(p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True)
    v = targets.add_parser(
        "vertex",
        parents=list(parents),
        help="a Vertex AI custom job running the training image (defaults: the config's launch section)",
    )
    add_config(v)
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
    v.add_argument(
        "--register",
        action="store_true",
        help="the job ends by registering the fine-tuned model in the Model Registry (launch.register_model=true)",
    )
    v.set_defaults(func=run)

    r = targets.add_parser(
        "vertex-register",
        parents=list(parents),
        help="register a run's fine-tuned model (on gs://) in the Vertex AI Model Registry",
    )
    add_config(r)
    r.add_argument("--model", metavar="URI", help="the model folder to register (default: the run's fine-tuned model)")
    r.add_argument("--dry-run", action="store_true", help="print the UploadModelRequest; send nothing")
    r.add_argument("--name-file", metavar="FILE", help="also write the registered resource name to FILE (pipelines)")
    r.set_defaults(func=run_register)

    pl = targets.add_parser(
        "vertex-pipeline",
        parents=list(parents),
        help="prepare → train → merge → register → evaluate from the registry, as a Vertex AI Pipeline (KFP)",
    )
    add_config(pl)
    pl.add_argument("--dry-run", action="store_true", help="compile offline and print the steps and the PipelineJob")
    pl.add_argument("--compile", metavar="FILE", help="write the compiled pipeline spec (YAML) to FILE and stop")
    pl.add_argument("--display-name", help="pipeline job name in the console")
    pl.set_defaults(func=run_pipeline_job)


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "config_and_overrides",
        nargs="+",
        metavar="CONFIG.yaml [key=value ...]",
        help="a local or gs:// YAML config followed by dotted overrides; a local file is uploaded to launch.staging_bucket",
    )


def run(args: argparse.Namespace) -> int:
    path, overrides = split_config_args(args.config_and_overrides)
    if path is None:
        raise Text2SQLError(
            "text2sql launch vertex needs a config file first: text2sql launch vertex CONFIG.yaml [key=value ...]"
        )
    if args.register:
        overrides = [*overrides, "launch.register_model=true"]
    _, cfg = load_run_config([path, *overrides])  # every config problem is reported here, offline
    machine = {k: getattr(args, k) for k in _MACHINE}
    plan = jobs.plan_custom_job(cfg, path, overrides, verb=args.verb, dry_run=args.dry_run, **machine)
    if args.dry_run:
        print(json.dumps(plan.spec, indent=2))
        print(plan.dry_run_note(), file=sys.stderr)
        return 0
    name = jobs.submit_custom_job(cfg, plan)
    print(f"submitted {name}\n{vertex.console_url(name)}")
    return 0


def run_register(args: argparse.Namespace) -> int:
    _, cfg = load_run_config(args.config_and_overrides)
    plan = jobs.plan_registration(cfg, args.model)
    if args.dry_run:
        print(registry.dump_request(plan.request))
        note = "" if plan.checked else " (not checked against the Vertex AI API types: pip install 'text2sql[vertex]')"
        print(
            f"dry run: would upload this model to the Model Registry in {plan.request['parent']}{note}", file=sys.stderr
        )
        return 0
    print(f"registered {jobs.register(plan, args.name_file)}")
    return 0


def run_pipeline_job(args: argparse.Namespace) -> int:
    path, overrides = split_config_args(args.config_and_overrides)
    if path is None:
        raise Text2SQLError("text2sql launch vertex-pipeline needs a config file first: CONFIG.yaml [key=value ...]")
    _, cfg = load_run_config(args.config_and_overrides)
    plan = jobs.plan_pipeline(cfg, path, overrides)
    if args.compile:
        out = pipeline.compile_pipeline(cfg, plan.steps, args.compile)
        print(f"pipeline spec written to {out} ({' → '.join(s['name'] for s in plan.steps)})")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        spec, template = jobs.compile_for_submission(plan, Path(tmp))
        request = pipeline.pipeline_job_request(cfg, str(spec) if args.dry_run else template, args.display_name)
        if args.dry_run:
            print("\n".join(plan.described_steps()))
            print(json.dumps({**request, "template_path": template}, indent=2))
            staged = f"upload {path} to {plan.staged.config_uri}, " if plan.staged.uploads else ""
            print(
                f"dry run: would {staged}upload the compiled spec to {template}, then submit this PipelineJob",
                file=sys.stderr,
            )
            return 0
        name = jobs.submit_pipeline(plan, spec, template, request)
    print(f"submitted {name}")
    return 0
