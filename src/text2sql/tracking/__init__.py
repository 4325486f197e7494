"""Experiment tracking: the trainer's reporting integration for `tracking.backend`, and evaluation
results logged into the same run the trainer logged to.

- `setup_tracking(cfg)` checks that the backend's package is installed, sets the environment the
  transformers integrations read (experiment / project name, TensorBoard folder
  `<output_dir>/logs`) and returns the trainer's `report_to` list.
- `TrackingRunCallback(output_dir)` records which run the trainer logged to (MLflow run id and
  tracking URI, W&B run id, TensorBoard folder, last step) in `<output_dir>/tracking.json`.
- `log_evaluation(cfg, metrics)` reads that record and adds the evaluation metrics (flattened,
  numbers only, at the last training step) and the resolved config to that run. MLflow and
  TensorBoard are tested with their local stores; the W&B path needs a W&B server and is not.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from text2sql.config import Config
from text2sql.errors import MissingExtraError, Text2SQLError

log = logging.getLogger(__name__)

RECORD = "tracking.json"
# backend -> (importable module, pip package, text2sql extra)
_PACKAGES = {
    "mlflow": ("mlflow", "mlflow", "mlflow"),
    "tensorboard": ("tensorboard", "tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb", "wandb"),
}
_UNSAFE_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")  # MLflow metric names allow exactly these characters


# ----------------------------------------------------------------------------- before training


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


# ------------------------------------------------------------------------------ during training


class TrackingRunCallback(TrainerCallback):
    """Writes `<output_dir>/tracking.json`: the run each reporting integration logged to and the last
    global step, so that `log_evaluation` adds to the same run. Main process only.

    Add it after the reporting integrations (the Trainer puts `report_to` callbacks first), so that
    the MLflow / W&B run exists when training begins.
    """

    def __init__(self, output_dir: str | os.PathLike[str]):
        self.output_dir = Path(output_dir)
        self.record: dict[str, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        self._capture(args, state)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # An integration that sets up lazily (at its first log) has its run only now.
        if any(b in _PACKAGES and b not in self.record for b in args.report_to or []):
            self._capture(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        if not self.record:
            self._capture(args, state)
        # What other trackers recorded meanwhile (Vertex AI Experiments' run) stays.
        self.record = {**(read_record(self.output_dir) or {}), **self.record, "global_step": state.global_step}
        write_record(self.output_dir, self.record)

    def _capture(self, args, state) -> None:
        if not state.is_world_process_zero:
            return
        backends = set(args.report_to or [])
        record = dict(read_record(self.output_dir) or {})
        if "mlflow" in backends:
            import mlflow

            run = mlflow.active_run()
            if run is not None:
                record["mlflow"] = {
                    "run_id": run.info.run_id,
                    "experiment_id": run.info.experiment_id,
                    "tracking_uri": mlflow.get_tracking_uri(),
                    "run_name": run.info.run_name,
                }
        if "tensorboard" in backends:
            # TensorBoardCallback's folder: TENSORBOARD_LOGGING_DIR (set by setup_tracking), else its
            # own default under the trainer's output_dir, which has a timestamp we cannot know.
            log_dir = os.environ.get("TENSORBOARD_LOGGING_DIR")
            record["tensorboard"] = {"log_dir": str(Path(log_dir).expanduser().resolve()) if log_dir else None}
        if "wandb" in backends:
            import wandb

            if wandb.run is not None:
                record["wandb"] = {"run_id": wandb.run.id, "project": wandb.run.project, "entity": wandb.run.entity}
        record["global_step"] = state.global_step
        self.record = record
        write_record(self.output_dir, record)


def read_record(output_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        return json.loads((Path(output_dir) / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_record(output_dir: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    target = Path(output_dir) / RECORD
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{RECORD}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)
    return target


# ------------------------------------------------------------------------------- after training


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
