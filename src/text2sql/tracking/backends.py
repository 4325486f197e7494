"""The trackers of `tracking.backend`: the trainer's reporting integrations (MLflow, TensorBoard,
W&B) set up before training, Vertex AI Experiments as a callback of ours, and evaluation metrics with
the resolved config logged into the run the trainer logged to (`record`)."""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import time
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.errors import MissingExtraError, Text2SQLError
from text2sql.tracking.record import RECORD, read_record, write_record

log = logging.getLogger("text2sql.tracking")

# backend -> (importable module, pip package, text2sql extra)
_PACKAGES = {
    "mlflow": ("mlflow", "mlflow", "mlflow"),
    "tensorboard": ("tensorboard", "tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb", "wandb"),
}
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")  # MLflow metric names allow exactly these characters


def report_to(cfg: Config) -> list[str]:
    """The trainer's `report_to` for `tracking.backend`: `["mlflow"]`, ..., or `[]` for none (and for
    vertex, which transformers has no integration for: `tracking_callbacks` adds ours)."""
    backend = cfg.tracking.backend
    return [] if backend in ("none", "vertex") else [backend]


def tracking_callbacks(cfg: Config) -> list[Any]:
    """TrainerCallbacks of the trackers transformers does not integrate: Vertex AI Experiments."""
    if cfg.tracking.backend != "vertex":
        return []
    from text2sql.tracking.vertex import VertexExperimentsCallback

    return [VertexExperimentsCallback(cfg, _flat_config(cfg))]


def check_backend(cfg: Config) -> None:
    """MissingExtraError naming the pip command when the backend's package is not installed."""
    backend = cfg.tracking.backend
    if backend == "none":
        return
    if backend == "vertex":
        from text2sql.tracking import vertex

        vertex.check_names(cfg)
        if not cfg.tracking.dry_run:
            vertex.require_sdk()
        return
    import importlib.util

    module, package, extra = _PACKAGES[backend]
    candidates = (module, "tensorboardX") if backend == "tensorboard" else (module,)
    if not any(importlib.util.find_spec(name) for name in candidates):
        raise MissingExtraError(f"tracking.backend={backend}", package, extra)


def tensorboard_dir(cfg: Config) -> Path:
    """Where TensorBoard event files go: `<output_dir>/logs` (`tensorboard --logdir` it)."""
    return Path(cfg.output_dir) / "logs"


def tracking_env(cfg: Config, *, resume: bool = False) -> dict[str, str]:
    """The environment variables the transformers integration for `tracking.backend` reads.

    With `resume`, a run recorded in `<output_dir>/tracking.json` is continued instead of a new one
    started (MLFLOW_RUN_ID, WANDB_RUN_ID)."""
    backend = cfg.tracking.backend
    record = (read_record(cfg.output_dir) or {}) if resume else {}
    env: dict[str, str] = {}
    if backend == "mlflow":
        env["MLFLOW_EXPERIMENT_NAME"] = cfg.tracking.project
        if (record.get("mlflow") or {}).get("run_id"):
            env["MLFLOW_RUN_ID"] = record["mlflow"]["run_id"]
    elif backend == "tensorboard":
        env["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(cfg))
    elif backend == "wandb":
        env["WANDB_PROJECT"] = cfg.tracking.project
        if (record.get("wandb") or {}).get("run_id"):
            env.update(WANDB_RUN_ID=record["wandb"]["run_id"], WANDB_RESUME="allow")
    return env


def setup_tracking(cfg: Config, *, resume: bool = False) -> list[str]:
    """Check the backend, export its environment (`tracking_env`), return the trainer's `report_to`.

    Call before the Trainer is built: the integrations read the environment when they are created.
    """
    check_backend(cfg)
    os.environ.update(tracking_env(cfg, resume=resume))
    return report_to(cfg)


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics → {"prefix/a/b": number}; strings, booleans, NaN and lists are left out."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{_UNSAFE_KEY.sub('_', str(key))}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}/"))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value)):
            flat[name] = float(value)
    return flat


def log_evaluation(
    cfg: Config,
    metrics: dict[str, Any],
    run_dir: str | os.PathLike[str] | None = None,
    *,
    prefix: str | None = None,
    step: int | None = None,
) -> dict[str, float]:
    """Log evaluation `metrics` and the resolved config to the run the trainer logged to (found in
    `<run_dir>/tracking.json`, run_dir defaulting to `cfg.output_dir`); a new run when there is none.

    Metric names are `<prefix><key>/<sub key>`, prefix defaulting to `<evaluation.split>/`; they are
    logged at `step`, default the last training step. Returns the metrics logged.
    """
    backend = cfg.tracking.backend
    if backend == "none":
        return {}
    check_backend(cfg)
    run_dir = Path(run_dir or cfg.output_dir)
    record = read_record(run_dir) or {}
    values = flatten_metrics(metrics, f"{cfg.evaluation.split}/" if prefix is None else prefix)
    step = int(record.get("global_step", 0) if step is None else step)
    if backend == "mlflow":
        from mlflow.exceptions import MlflowException

        try:
            _log_mlflow(cfg, values, step, record, run_dir)
        except MlflowException as exc:
            where = (record.get("mlflow") or {}).get("tracking_uri") or os.environ.get(
                "MLFLOW_TRACKING_URI", "the default store"
            )
            raise Text2SQLError(
                f"cannot log evaluation metrics to MLflow at {where}: {str(exc).strip().splitlines()[0]}; "
                f"check MLFLOW_TRACKING_URI and {run_dir / RECORD}"
            ) from exc
    elif backend == "tensorboard":
        _log_tensorboard(cfg, values, step, record)
    elif backend == "wandb":
        _log_wandb(cfg, values, record, run_dir)
    elif backend == "vertex":
        _log_vertex(cfg, values, run_dir)
    return values


def _flat_config(cfg: Config) -> dict[str, str]:
    def walk(tree: Any, prefix: str) -> dict[str, str]:
        if not isinstance(tree, dict):
            return {prefix.rstrip("."): json.dumps(tree) if isinstance(tree, (list, dict)) else str(tree)}
        out: dict[str, str] = {}
        for key, value in tree.items():
            out.update(walk(value, f"{prefix}{key}."))
        return out

    return walk(cfg.to_dict(), "text2sql.")


def _log_mlflow(cfg: Config, values: dict[str, float], step: int, record: dict[str, Any], run_dir: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    entry = record.get("mlflow") or {}
    # The URI the trainer used; else MLFLOW_TRACKING_URI / the default, as the trainer would.
    client = MlflowClient(tracking_uri=entry.get("tracking_uri"))
    run_id = entry.get("run_id")
    created = False
    if not run_id:  # evaluating without a tracked training run: a run of its own, recorded for next time
        experiment = client.get_experiment_by_name(cfg.tracking.project)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(cfg.tracking.project)
        run = client.create_run(experiment_id, run_name=cfg.tracking.run_name or Path(cfg.output_dir).name)
        run_id, created = run.info.run_id, True
        record["mlflow"] = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "tracking_uri": client.tracking_uri,
            "run_name": run.info.run_name,
        }
        write_record(run_dir, record)
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for key, value in values.items()]
    # MLflow parameters cannot change once logged: keys already on the run keep their first value;
    # the config artifact below always holds the latest config.
    existing = client.get_run(run_id).data.params
    params = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in _flat_config(cfg).items() if k not in existing]
    for i in range(0, len(metrics), 1000):  # log_batch takes at most 1000 metrics and 100 params
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=params[i : i + 100])
    client.log_dict(run_id, cfg.to_dict(), "text2sql/config.yaml")
    if created:
        client.set_terminated(run_id)
    log.info("logged %d evaluation metrics to MLflow run %s", len(metrics), run_id)


def _log_tensorboard(cfg: Config, values: dict[str, float], step: int, record: dict[str, Any]) -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        from tensorboardX import SummaryWriter  # type: ignore[no-redef]

    log_dir = (record.get("tensorboard") or {}).get("log_dir") or str(tensorboard_dir(cfg))
    writer = SummaryWriter(log_dir=log_dir)  # a new event file in the same folder: the same run in TensorBoard
    try:
        for key, value in values.items():
            writer.add_scalar(key, value, step)
        # Indented four spaces: TensorBoard renders text as markdown, this keeps the YAML verbatim.
        writer.add_text("text2sql/config", "\n".join("    " + line for line in cfg.to_yaml().splitlines()), step)
    finally:
        writer.close()
    log.info("logged %d evaluation metrics to TensorBoard in %s", len(values), log_dir)


def _log_wandb(cfg: Config, values: dict[str, float], record: dict[str, Any], run_dir: Path) -> None:
    # Not exercised by the tests: resuming a run needs a W&B server (offline runs cannot be resumed).
    import wandb

    entry = record.get("wandb") or {}
    run = wandb.init(
        project=entry.get("project") or cfg.tracking.project,
        entity=entry.get("entity"),
        id=entry.get("run_id"),
        resume="must" if entry.get("run_id") else None,
        name=None if entry.get("run_id") else (cfg.tracking.run_name or Path(cfg.output_dir).name),
    )
    try:
        # No explicit step: W&B drops points at a step below the run's current one.
        run.log(values)
        run.summary.update(values)
        run.config.update({"text2sql": cfg.to_dict()}, allow_val_change=True)
        if not entry.get("run_id"):
            record["wandb"] = {"run_id": run.id, "project": run.project, "entity": run.entity}
            write_record(run_dir, record)
    finally:
        run.finish()


def _log_vertex(cfg: Config, values: dict[str, float], run_dir: Path) -> None:
    from text2sql.tracking.vertex import Experiments

    experiments = Experiments(cfg, run_dir)
    experiments.start()  # the run training logged to, or a new one
    experiments.params(_flat_config(cfg))
    experiments.metrics(values)
    experiments.end()
    log.info("logged %d evaluation metrics to Vertex AI experiment %s", len(values), cfg.tracking.project)
