"""What `text2sql launch` does, as library calls: plan a Vertex AI custom job, a Model Registry upload
or a pipeline from a loaded config (every problem found offline, before anything is uploaded), then
submit it. A dry run is the plan, printed; `commands/launch.py` only parses and prints.

    plan = plan_custom_job(cfg, "run.yaml", overrides, verb="run")
    name = submit_custom_job(cfg, plan)
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql import storage
from text2sql.config import Config
from text2sql.errors import ConfigError, Text2SQLError
from text2sql.launch import pipeline, vertex
from text2sql.models import registry
from text2sql.models.registry import check_registration
from text2sql.storage import is_remote, upload

log = logging.getLogger("text2sql.launch")


@dataclass
class Staged:
    """Where the job reads its config: the local file uploaded to the staging bucket, or the remote one."""

    path: str
    config_uri: str

    @classmethod
    def of(cls, cfg: Config, path: str) -> Staged:
        return cls(path, path if is_remote(path) else vertex.staged_config_uri(path, cfg.launch.staging_bucket))

    @property
    def uploads(self) -> bool:
        return self.config_uri != self.path

    def upload(self) -> None:
        if self.uploads:
            upload(self.path, self.config_uri)


# --------------------------------------------------------------------------------- custom jobs


@dataclass
class JobPlan:
    spec: dict[str, Any]
    staged: Staged
    checked: bool  # checked against the Vertex AI API types (the SDK is installed)
    where: str  # projects/P/locations/L

    def dry_run_note(self) -> str:
        staged = f"upload {self.staged.path} to {self.staged.config_uri}, then " if self.staged.uploads else ""
        unchecked = (
            "" if self.checked else " (not checked against the Vertex AI API types: pip install text2sql[vertex])"
        )
        return f"dry run: would {staged}create this job in {self.where}{unchecked}"


def plan_custom_job(
    cfg: Config, path: str, overrides: list[str], *, verb: str, dry_run: bool = False, **machine: Any
) -> JobPlan:
    """The CustomJob running `text2sql VERB` on the config at `path` (with `overrides`); `machine`:
    machine_type, accelerator_type, accelerator_count, replica_count, image_uri, display_name."""
    if cfg.launch.register_model:
        if verb != "run":
            raise ConfigError("--register needs --verb run: the model is registered at the end of `text2sql run`")
        # The job registers, not this machine: the SDK is needed here only to submit.
        check_registration(cfg, str(cfg.output_dir), need_sdk=not dry_run)
    problems = vertex.launch_problems(cfg)
    if problems:
        raise ConfigError(f"cannot launch on Vertex AI ({len(problems)} problem(s)): " + "; ".join(problems))
    staged = Staged.of(cfg, path)
    spec = vertex.vertex_job_spec(cfg, config_uri=staged.config_uri, overrides=overrides, command=verb, **machine)
    where = f"projects/{cfg.launch.project or '<launch.project is unset>'}/locations/{cfg.launch.region}"
    return JobPlan(spec, staged, vertex.validate_with_api_types(spec), where)


def submit_custom_job(cfg: Config, plan: JobPlan) -> str:
    """Upload the config when it is local, create the job; its resource name."""
    if not cfg.launch.project:
        raise ConfigError("no Google Cloud project: set launch.project (or pass launch.project=ID)")
    vertex.require_sdk()  # before uploading anything
    plan.staged.upload()
    return vertex.submit(plan.spec, cfg.launch.project, cfg.launch.region)


# ------------------------------------------------------------------------------ the registry


@dataclass
class RegistrationPlan:
    request: dict[str, Any]
    model: str
    checked: bool


def plan_registration(cfg: Config, model: str | None = None) -> RegistrationPlan:
    """The UploadModelRequest of the run's fine-tuned model (or `model`), labelled with its metrics."""
    from text2sql.stages import evaluated_model

    remote = str(cfg.output_dir).rstrip("/")
    if model is None:
        if not remote.startswith("gs://"):
            raise ConfigError(
                f"output_dir={cfg.output_dir} is not on gs://: give --model gs://... (the registry reads gs://)"
            )
        model = f"{remote}/{Path(evaluated_model(cfg, 'finetuned')).name}"
    request = registry.run_upload_request(cfg, model, _run_metrics(remote))
    return RegistrationPlan(request, model, registry.validate_upload_request(request))


def register(plan: RegistrationPlan, name_file: str | None = None) -> str:
    """Upload the model to the registry; its resource name (also written to `name_file`)."""
    registry.require_sdk()
    if is_remote(plan.model):  # written through a FUSE mount or by other tools: finished, now marked so
        storage.mark_complete(plan.model)
    name = registry.upload_model(plan.request)
    if name_file:
        Path(name_file).parent.mkdir(parents=True, exist_ok=True)
        Path(name_file).write_text(name, encoding="utf-8")
    return name


def _run_metrics(output_dir: str) -> dict | None:
    """The run's fine-tuned evaluation metrics, for the registered model's labels; None when not there."""
    url = f"{output_dir}/eval/finetuned/metrics.json"
    try:
        if storage.is_remote(url):
            with storage.filesystem(url).open(url, "r") as f:
                return json.load(f)
        return json.loads(Path(url).read_text(encoding="utf-8"))
    except (OSError, ValueError, Text2SQLError) as exc:  # not evaluated yet, or no gcsfs here
        log.warning("no metrics for the labels (%s)", exc)
        return None


# ------------------------------------------------------------------------------- pipelines


@dataclass
class PipelinePlan:
    cfg: Config
    staged: Staged
    steps: list[dict[str, Any]]

    def described_steps(self) -> list[str]:
        """One line per step, as a dry run shows them."""
        shown = {"{model}": "<the name register wrote>", "{name_file}": "<output parameter model_name>"}
        lines = []
        for step in self.steps:
            line = shlex.join(shown.get(a, a) for a in step["args"])
            lines.append(f"{step['name']:>9}: text2sql {line}" + (f"  [{step['gpus']} GPU]" if step["gpus"] else ""))
        return lines


def plan_pipeline(cfg: Config, path: str, overrides: list[str]) -> PipelinePlan:
    """prepare → train → merge → register → evaluate, every problem found before compiling."""
    staged = Staged.of(cfg, path)
    steps = pipeline.pipeline_steps(cfg, staged.config_uri, overrides)
    pipeline.require_kfp()
    return PipelinePlan(cfg, staged, steps)


def compile_for_submission(plan: PipelinePlan, folder: Path) -> tuple[Path, str]:
    """The compiled spec in `folder`, and the template URI it is uploaded to (named by its digest,
    so that an unchanged pipeline is one template)."""
    spec = pipeline.compile_pipeline(plan.cfg, plan.steps, folder / "pipeline.yaml")
    digest = hashlib.sha256(spec.read_bytes()).hexdigest()[:12]
    return spec, f"{pipeline.pipeline_root(plan.cfg).rstrip('/')}/templates/{spec.stem}-{digest}.yaml"


def submit_pipeline(plan: PipelinePlan, spec: Path, template: str, request: dict[str, Any]) -> str:
    """Upload the config and the compiled spec, submit the PipelineJob; its resource name."""
    vertex.require_sdk()
    plan.staged.upload()
    upload(spec, template)
    return pipeline.submit(request)
