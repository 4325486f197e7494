"""`text2sql launch vertex CONFIG.yaml [key=value ...] [--dry-run] [--register] [--machine-type ...]`,
`text2sql launch vertex-register CONFIG.yaml [--model URI] [--dry-run]` and
`text2sql launch vertex-pipeline CONFIG.yaml [--dry-run | --compile FILE]`."""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from text2sql import storage
from text2sql.commands.common import load_run_config
from text2sql.config import split_config_args
from text2sql.errors import ConfigError, Text2SQLError
from text2sql.launch import pipeline, vertex
from text2sql.models import registry
from text2sql.models.registry import check_registration
from text2sql.storage import is_remote, upload

HELP = "launch on Vertex AI: a custom job, a pipeline, or register a model"


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
    if cfg.launch.register_model:
        if args.verb != "run":
            raise ConfigError("--register needs --verb run: the model is registered at the end of `text2sql run`")
        # The job registers, not this machine: the SDK is needed here only to submit.
        check_registration(cfg, str(cfg.output_dir), need_sdk=not args.dry_run)
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


def run_register(args: argparse.Namespace) -> int:
    from text2sql.stages import evaluated_model

    _, cfg = load_run_config(args.config_and_overrides)
    remote = str(cfg.output_dir).rstrip("/")
    model = args.model
    if model is None:
        if not remote.startswith("gs://"):
            raise ConfigError(
                f"output_dir={cfg.output_dir} is not on gs://: give --model gs://... (the registry reads gs://)"
            )
        model = f"{remote}/{Path(evaluated_model(cfg, 'finetuned')).name}"
    request = registry.run_upload_request(cfg, model, _remote_metrics(remote))
    checked = registry.validate_upload_request(request)
    if args.dry_run:
        print(registry.dump_request(request))
        note = "" if checked else " (not checked against the Vertex AI API types: pip install 'text2sql[vertex]')"
        print(f"dry run: would upload this model to the Model Registry in {request['parent']}{note}", file=sys.stderr)
        return 0
    registry.require_sdk()
    if is_remote(model):  # written through a FUSE mount or by other tools: finished, now marked so
        storage.mark_complete(model)
    name = registry.upload_model(request)
    if args.name_file:
        Path(args.name_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.name_file).write_text(name, encoding="utf-8")
    print(f"registered {name}")
    return 0


def _remote_metrics(output_dir: str) -> dict | None:
    """The run's fine-tuned evaluation metrics, for the registered model's labels; None when not there."""
    url = f"{output_dir}/eval/finetuned/metrics.json"
    try:
        if storage.is_remote(url):
            with storage.filesystem(url).open(url, "r") as f:
                return json.load(f)
        return json.loads(Path(url).read_text(encoding="utf-8"))
    except (OSError, ValueError, Text2SQLError) as exc:  # not evaluated yet, or no gcsfs here
        print(f"note: no metrics for the labels ({exc})", file=sys.stderr)
        return None


def run_pipeline_job(args: argparse.Namespace) -> int:
    path, overrides = split_config_args(args.config_and_overrides)
    if path is None:
        raise Text2SQLError("text2sql launch vertex-pipeline needs a config file first: CONFIG.yaml [key=value ...]")
    _, cfg = load_run_config(args.config_and_overrides)
    config_uri = path if is_remote(path) else vertex.staged_config_uri(path, cfg.launch.staging_bucket)
    steps = pipeline.pipeline_steps(cfg, config_uri, overrides)  # every problem, before compiling
    pipeline.require_kfp()
    if args.compile:
        out = pipeline.compile_pipeline(cfg, steps, args.compile)
        print(f"pipeline spec written to {out} ({' → '.join(s['name'] for s in steps)})")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        spec = pipeline.compile_pipeline(cfg, steps, Path(tmp) / "pipeline.yaml")
        digest = hashlib.sha256(spec.read_bytes()).hexdigest()[:12]  # an unchanged pipeline is one template
        template = f"{pipeline.pipeline_root(cfg).rstrip('/')}/templates/{spec.stem}-{digest}.yaml"
        request = pipeline.pipeline_job_request(cfg, str(spec) if args.dry_run else template, args.display_name)
        if args.dry_run:
            shown = {"{model}": "<the name register wrote>", "{name_file}": "<output parameter model_name>"}
            for step in steps:
                line = shlex.join(shown.get(a, a) for a in step["args"])
                print(f"{step['name']:>9}: text2sql {line}" + (f"  [{step['gpus']} GPU]" if step["gpus"] else ""))
            print(json.dumps({**request, "template_path": template}, indent=2))
            staged = "" if config_uri == path else f"upload {path} to {config_uri}, "
            print(
                f"dry run: would {staged}upload the compiled spec to {template}, then submit this PipelineJob",
                file=sys.stderr,
            )
            return 0
        vertex.require_sdk()
        if config_uri != path:
            upload(path, config_uri)
        upload(spec, template)
        name = pipeline.submit(request)
    print(f"submitted {name}")
    return 0
