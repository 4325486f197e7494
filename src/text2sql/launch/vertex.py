"""A Vertex AI CustomJob that runs `text2sql run` (or `train`) with a config read from GCS.

`vertex_job_spec` builds the job as a plain dict shaped like the Vertex AI REST `CustomJob` resource
(snake_case field names, as `google.cloud.aiplatform_v1.types.CustomJob(**spec)` takes them), so
that `--dry-run` prints exactly what `submit` sends. Defaults come from the config's `launch`
section (a g2-standard-4 with one NVIDIA_L4 by default); flags override them.

The job runs the image built from the repo's Dockerfile. One GPU: `text2sql VERB CONFIG ...`.
Several GPUs on one machine: `accelerate launch --multi_gpu -m text2sql ...`, one process per GPU.
Several machines: worker pool 0 holds the primary replica (Vertex requires replica_count 1 there)
and pool 1 the others; each runs `accelerate launch` with the rendezvous Vertex provides on every
replica for PyTorch (MASTER_ADDR, MASTER_PORT, RANK).
"""

from __future__ import annotations

import hashlib
import os
import shlex
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.data.readers.bundled import is_bundled
from text2sql.errors import ConfigError
from text2sql.models import vertex_api
from text2sql.storage import is_remote

VERBS = ("run", "train")
MAX_DISPLAY_NAME = 128  # Vertex AI limit, characters


def vertex_job_spec(
    cfg: Config,
    *,
    config_uri: str,
    overrides: list[str] | tuple[str, ...] = (),
    machine_type: str | None = None,
    accelerator_type: str | None = None,
    accelerator_count: int | None = None,
    replica_count: int | None = None,
    image_uri: str | None = None,
    display_name: str | None = None,
    command: str = "run",
) -> dict[str, Any]:
    """The CustomJob for running `text2sql <command> <config_uri> <overrides>`; None → cfg.launch."""
    launch = cfg.launch
    machine_type = machine_type or launch.machine_type
    accelerator_type = accelerator_type if accelerator_type is not None else launch.accelerator_type
    accelerator_count = launch.accelerator_count if accelerator_count is None else accelerator_count
    replica_count = launch.replica_count if replica_count is None else replica_count
    image_uri = image_uri or launch.image_uri

    problems = []
    if command not in VERBS:
        problems.append(f"the job's command must be one of {', '.join(VERBS)}, not {command!r}")
    if not image_uri:
        problems.append("no training image: set launch.image_uri or pass --image (build it from the repo's Dockerfile)")
    if not is_remote(config_uri):
        problems.append(f"the job reads its config from a gs:// URI, not {config_uri}")
    if accelerator_count < 0 or replica_count < 1:
        problems.append("accelerator count must be >= 0 and replica count >= 1")
    if accelerator_count > 0 and not accelerator_type:
        problems.append(f"{accelerator_count} accelerator(s) asked for without a type: set launch.accelerator_type")
    if problems:
        raise ConfigError("cannot build the Vertex AI job: " + "; ".join(problems))

    machine: dict[str, Any] = {"machine_type": machine_type}
    if accelerator_count > 0:
        machine.update(accelerator_type=accelerator_type, accelerator_count=accelerator_count)
    container = {
        "image_uri": image_uri,
        **_entrypoint(accelerator_count, replica_count),
        "args": [command, config_uri, *overrides],
    }
    pools = [{"machine_spec": machine, "replica_count": 1, "container_spec": container}]
    if replica_count > 1:  # pool 0 is the primary replica; the other machines form pool 1
        pools.append(
            {"machine_spec": dict(machine), "replica_count": replica_count - 1, "container_spec": dict(container)}
        )

    name = display_name or f"text2sql-{command}-{cfg.tracking.run_name or Path(str(cfg.output_dir).rstrip('/')).name}"
    spec: dict[str, Any] = {"display_name": name[:MAX_DISPLAY_NAME], "job_spec": {"worker_pool_specs": pools}}
    if str(cfg.output_dir).startswith("gs://"):
        spec["job_spec"]["base_output_directory"] = {"output_uri_prefix": str(cfg.output_dir)}
    return spec


def _entrypoint(gpus: int, machines: int) -> dict[str, list[str]]:
    if machines == 1 and gpus <= 1:
        return {"command": ["text2sql"]}
    if machines == 1:
        return {"command": ["accelerate", "launch", "--multi_gpu", "--num_processes", str(gpus), "-m", "text2sql"]}
    per_machine = max(gpus, 1)
    script = (
        f"exec accelerate launch --multi_gpu --num_machines {machines} --num_processes {machines * per_machine} "
        '--machine_rank "$RANK" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" '
        '-m text2sql "$@"'
    )
    # sh -c SCRIPT NAME ARGS...: the container args become "$@".
    return {"command": ["sh", "-c", script, "text2sql"]}


def launch_problems(cfg: Config) -> list[str]:
    """What would make the job fail or lose its results, found on this machine before submitting:
    paths that exist only here, and a local output_dir (a job's disk is discarded when it ends)."""
    problems = []
    if not is_remote(str(cfg.output_dir)):
        problems.append(
            f"output_dir={cfg.output_dir} is a local folder: a Vertex AI job's disk is discarded when it ends; "
            "set output_dir=gs://BUCKET/runs/NAME"
        )
    sources = {
        "model.name_or_path": cfg.model.name_or_path,
        "data.train": cfg.data.train,
        "data.validation": cfg.data.validation,
        "data.test": cfg.data.test,
        "data.db_dir": cfg.data.db_dir,
        "callbacks.checkpoint_sync": cfg.callbacks.checkpoint_sync,
    }
    for key, value in sources.items():
        if value and _is_local_path(value):
            problems.append(
                f"{key}={value} is a path on this machine; the job cannot read it: copy it to gs:// and set {key}=gs://..."
            )
    return problems


def _is_local_path(value: str) -> bool:
    if is_remote(value) or is_bundled(value) or value.startswith("tiny:"):
        return False
    return value.startswith((".", "/", "~")) or Path(value).expanduser().exists()


def staged_config_uri(config_path: str | os.PathLike[str], staging_bucket: str | None) -> str:
    """Where a local config file goes in the staging bucket; named by its content, so the dry run
    shows the exact URI and an unchanged file is uploaded once."""
    if not staging_bucket:
        raise ConfigError(
            f"{config_path} is a local file and the job reads its config from GCS: set launch.staging_bucket=gs://BUCKET/staging"
        )
    if not staging_bucket.startswith("gs://"):
        raise ConfigError(f"launch.staging_bucket={staging_bucket} must be a gs:// URL")
    path = Path(config_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"{staging_bucket.rstrip('/')}/text2sql/configs/{path.stem}-{digest}{path.suffix or '.yaml'}"


def validate_with_api_types(spec: dict[str, Any]) -> bool:
    """Build `aiplatform_v1.types.CustomJob(**spec)` when the vertex extra is installed: unknown
    fields and unknown accelerator names fail here instead of at submit. False when not installed."""
    return vertex_api.valid_as(
        "CustomJob", spec, "the Vertex AI job is not valid", "check launch.machine_type / launch.accelerator_type"
    )


def require_sdk() -> None:
    """MissingExtraError naming `text2sql[vertex]` when google-cloud-aiplatform is not installed."""
    vertex_api.require_sdk("text2sql launch vertex")


def submit(spec: dict[str, Any], project: str | None, region: str) -> str:
    """Create the CustomJob in `project`/`region`; returns its resource name. Does not wait."""
    if not project:
        raise ConfigError("no Google Cloud project: set launch.project (or pass launch.project=ID)")
    require_sdk()
    from google.cloud import aiplatform_v1

    with vertex_api.api_call(
        f"Vertex AI refused the job in projects/{project}/locations/{region}",
        "check launch.project, launch.region, the Vertex AI API and your permissions (aiplatform.customJobs.create)",
    ):
        client = aiplatform_v1.JobServiceClient(client_options={"api_endpoint": f"{region}-aiplatform.googleapis.com"})
        job = client.create_custom_job(
            parent=f"projects/{project}/locations/{region}", custom_job=aiplatform_v1.types.CustomJob(**spec)
        )
    return job.name


def console_url(resource_name: str) -> str:
    """The Cloud console page of a job: projects/P/locations/R/customJobs/ID → its URL."""
    parts = resource_name.split("/")
    if len(parts) == 6:
        return f"https://console.cloud.google.com/vertex-ai/locations/{parts[3]}/training/{parts[5]}?project={parts[1]}"
    return resource_name


def shell_command(spec: dict[str, Any]) -> str:
    """The primary replica's command line, for people reading a dry run."""
    container = spec["job_spec"]["worker_pool_specs"][0]["container_spec"]
    return shlex.join([*container["command"], *container["args"]])
