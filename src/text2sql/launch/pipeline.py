"""A Vertex AI Pipeline (KFP v2): prepare → train → merge (adapter methods) → rl (when rl.enabled) →
register → evaluate the model loaded from the registry by its resource name, each step a container
of the training image running one `text2sql` verb.

The steps share the run folder through Cloud Storage FUSE, which Vertex AI mounts at `/gcs/` in
every step: `output_dir=gs://B/runs/x` is worked on as `/gcs/B/runs/x`, so each verb sees the
folder the previous one wrote and skips what is current, exactly as `text2sql run` does on one
machine. `register` writes the registered model's resource name as its output parameter, and
`evaluate` takes it as `--model` (the seed's Airflow DAG passes the name the same way, by XCom).
KFP's own step cache is off: the stages decide for themselves what is current.

`compile_pipeline` writes the pipeline spec offline with the KFP compiler; `pipeline_job_request`
is what `submit` sends (`aiplatform.PipelineJob`), printed by `--dry-run`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.errors import ConfigError, MissingExtraError
from text2sql.launch.vertex import launch_problems
from text2sql.models import vertex_api
from text2sql.training.methods import is_peft_method

FUSE_ROOT = "/gcs/"


def require_kfp() -> None:
    if importlib.util.find_spec("kfp") is None:
        raise MissingExtraError("text2sql launch vertex-pipeline", "kfp", "vertex")


def fuse_path(uri: str) -> str:
    """gs://BUCKET/path as Vertex AI mounts it in a step: /gcs/BUCKET/path."""
    if not uri.startswith("gs://"):
        raise ConfigError(
            f"output_dir={uri}: a Vertex AI Pipeline keeps its run on gs://; set output_dir=gs://BUCKET/runs/NAME"
        )
    return FUSE_ROOT + uri.removeprefix("gs://").rstrip("/")


def pipeline_steps(cfg: Config, config_uri: str, overrides: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The steps in order: name, the verb's arguments, GPUs, and what it consumes. `{model}` in an
    argument is the registered model's resource name, the register step's output."""
    problems = launch_problems(cfg)
    if cfg.launch.project is None:
        problems.append("no Google Cloud project: set launch.project")
    if not cfg.launch.image_uri:
        problems.append("no training image: set launch.image_uri (build it from the repo's Dockerfile)")
    if problems:
        raise ConfigError(f"cannot build the Vertex AI pipeline ({len(problems)} problem(s)): " + "; ".join(problems))
    remote = str(cfg.output_dir).rstrip("/")
    run = fuse_path(remote)
    local = [*overrides, f"output_dir={run}"]  # the verbs work on the mounted folder
    gpus = cfg.launch.accelerator_count if cfg.launch.accelerator_type else 0
    steps: list[dict[str, Any]] = [
        {"name": "prepare", "args": ["prepare", config_uri, *local], "gpus": 0},
        {"name": "train", "args": ["train", config_uri, *local], "gpus": gpus},
    ]
    if is_peft_method(cfg.finetune.method):
        steps.append(
            {
                "name": "merge",
                "args": ["merge", "--adapter", f"{run}/adapter", "--output", f"{run}/merged"],
                "gpus": gpus,
            }
        )
    if cfg.rl.enabled:
        steps.append({"name": "rl", "args": ["rl", config_uri, *local], "gpus": gpus})
    steps.append(
        {
            "name": "register",
            "args": [
                "launch",
                "vertex-register",
                config_uri,
                *overrides,
                f"output_dir={remote}",
                "--name-file",
                "{name_file}",
            ],
            "gpus": 0,
        }
    )
    split = cfg.evaluation.split
    steps.append(
        {
            "name": "evaluate",
            "args": [
                "evaluate",
                "--model",
                "{model}",
                "--data",
                f"{run}/data",
                "--split",
                split,
                "--output",
                f"{run}/eval/registry",
            ],  # fmt: skip
            "gpus": gpus,
        }
    )
    return steps


def build_pipeline(cfg: Config, steps: list[dict[str, Any]]) -> Any:
    """The KFP pipeline function of `steps` (`pipeline_steps`; compile it with `compile_pipeline`)."""
    require_kfp()
    from kfp import dsl

    image = str(cfg.launch.image_uri)
    accelerator = cfg.launch.accelerator_type
    name = "text2sql-" + Path(str(cfg.output_dir).rstrip("/")).name.lower().replace("_", "-")

    def plain(step: dict[str, Any]):
        def component():
            return dsl.ContainerSpec(image=image, command=["text2sql"], args=list(step["args"]))

        component.__name__ = step["name"]
        return dsl.container_component(component)

    def register(step: dict[str, Any]):
        def component(model_name):
            args = [model_name if a == "{name_file}" else a for a in step["args"]]
            return dsl.ContainerSpec(image=image, command=["text2sql"], args=args)

        # Set as objects: this module's annotations are strings (postponed), which KFP cannot read.
        component.__annotations__ = {"model_name": dsl.OutputPath(str)}
        component.__name__ = "register"
        return dsl.container_component(component)

    def evaluate(step: dict[str, Any]):
        def component(model):
            args = [model if a == "{model}" else a for a in step["args"]]
            return dsl.ContainerSpec(image=image, command=["text2sql"], args=args)

        component.__annotations__ = {"model": str}
        component.__name__ = "evaluate"
        return dsl.container_component(component)

    @dsl.pipeline(name=name, description=f"text2sql: {' → '.join(s['name'] for s in steps)}")
    def pipeline():
        previous = None
        registered = None
        for step in steps:
            if step["name"] == "register":
                task = register(step)()
                registered = task
            elif step["name"] == "evaluate":
                assert registered is not None
                task = evaluate(step)(model=registered.outputs["model_name"])
            else:
                task = plain(step)()
            task.set_display_name(step["name"]).set_caching_options(False)
            if step["gpus"] and accelerator:
                task.set_accelerator_type(accelerator).set_accelerator_limit(step["gpus"])
            if previous is not None:
                task.after(previous)
            previous = task

    return pipeline


def compile_pipeline(cfg: Config, steps: list[dict[str, Any]], path: str | Path) -> Path:
    """Write the pipeline spec (YAML) of `steps` to `path`, offline."""
    from kfp import compiler

    pipeline = build_pipeline(cfg, steps)
    path = Path(path)
    if not path.suffix:
        path = path.with_name(path.name + ".yaml")
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline, str(path))
    return path


def pipeline_root(cfg: Config) -> str:
    launch = cfg.launch
    if launch.pipeline_root:
        return launch.pipeline_root
    if launch.staging_bucket:
        return launch.staging_bucket.rstrip("/") + "/pipeline_root"
    raise ConfigError("no pipeline root: set launch.pipeline_root=gs://BUCKET/pipeline_root (or launch.staging_bucket)")


def pipeline_job_request(cfg: Config, template_uri: str, display_name: str | None = None) -> dict[str, Any]:
    """What `submit` passes to `aiplatform.PipelineJob` (and then `.submit()`)."""
    return {
        "display_name": display_name or f"text2sql-pipeline-{Path(str(cfg.output_dir).rstrip('/')).name}",
        "template_path": template_uri,
        "pipeline_root": pipeline_root(cfg),
        "project": cfg.launch.project,
        "location": cfg.launch.region,
        "enable_caching": False,
    }


def submit(request: dict[str, Any]) -> str:
    """Create the PipelineJob; its resource name. Does not wait."""
    vertex_api.require_sdk("text2sql launch vertex-pipeline")
    from google.cloud import aiplatform

    with vertex_api.api_call(
        "Vertex AI refused the pipeline job", "check launch.project, launch.region and launch.pipeline_root"
    ):
        job = aiplatform.PipelineJob(**request)
        job.submit()
    return str(job.resource_name)
