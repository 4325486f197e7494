"""Vertex AI Experiments as a tracker (`tracking.backend: vertex`): training logs (loss, learning rate,
resource use and speed) as time series, the resolved config as parameters, and evaluation metrics
as the run's metrics, all in one experiment run (`tracking.project` is the experiment, as the seed's
`queryhub-experiments`; `tracking.run_name` the run, default the output_dir name).

Calls go through the `google-cloud-aiplatform` SDK's experiment functions (`aiplatform.init`,
`start_run`, `log_params`, `log_time_series_metrics`, `log_metrics`, `end_run`) in
`launch.project` / `launch.region`. With `tracking.dry_run: true` nothing is sent: each call, with
its arguments, is appended to `<output_dir>/vertex_experiments.jsonl` instead, after the same
checks of names and values the service makes.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import re
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from text2sql.config import Config
from text2sql.errors import ConfigError, MissingExtraError

log = logging.getLogger("text2sql.tracking")

DRY_RUN_FILE = "vertex_experiments.jsonl"
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")  # experiment and run IDs, as Vertex AI Metadata allows
_KEY = re.compile(r"[^A-Za-z0-9_\-./]")
MAX_PARAM_LENGTH = 1000


def run_id(cfg: Config) -> str:
    """The experiment run's name: tracking.run_name, else the output_dir name, as Vertex allows it."""
    raw = cfg.tracking.run_name or Path(str(cfg.output_dir).rstrip("/")).name
    return re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")[:100] or "run"


def check_names(cfg: Config) -> None:
    experiment = cfg.tracking.project
    if not _NAME.match(experiment):
        raise ConfigError(
            f"tracking.project={experiment!r} cannot name a Vertex AI experiment: lowercase letters, digits and '-', "
            "starting with a letter or digit"
        )
    if len(f"{experiment}-{run_id(cfg)}") > 128:
        raise ConfigError("tracking.project and the run name are too long together for Vertex AI (128 characters)")
    if not cfg.tracking.dry_run and not cfg.launch.project:
        raise ConfigError("tracking.backend=vertex needs launch.project (the Google Cloud project of the experiment)")


def require_sdk() -> None:
    import importlib.util

    if importlib.util.find_spec("google.cloud.aiplatform") is None:
        raise MissingExtraError("tracking.backend=vertex", "google-cloud-aiplatform", "vertex")


def numeric(values: dict[str, Any]) -> dict[str, float]:
    """Numbers only (finite, not booleans), under keys Vertex AI accepts."""
    return {
        _KEY.sub("_", str(k)): float(v)
        for k, v in values.items()
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))
    }


class Experiments:
    """One experiment run, through the SDK or (dry run) into a file."""

    def __init__(self, cfg: Config, run_dir: str | Path):
        check_names(cfg)
        self.cfg = cfg
        self.dry_run = cfg.tracking.dry_run
        self.run_dir = Path(run_dir)
        self.file = self.run_dir / DRY_RUN_FILE
        if not self.dry_run:
            require_sdk()

    def _call(self, name: str, **kwargs: Any) -> None:
        if self.dry_run:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"call": f"aiplatform.{name}", "kwargs": kwargs}) + "\n")
            return
        from google.cloud import aiplatform

        from text2sql.models.vertex_api import api_call

        with api_call(
            f"Vertex AI Experiments refused aiplatform.{name}",
            "check launch.project, launch.region and your permissions (aiplatform.metadataStores.*)",
        ):
            getattr(aiplatform, name)(**kwargs)

    def start(self) -> None:
        """Start the run, or resume it when this run folder's `tracking.json` records one (training
        first, then RL and evaluation add to it)."""
        from text2sql.tracking.record import read_record, write_record

        launch = self.cfg.launch
        record = read_record(self.run_dir) or {}
        experiment, run = self.cfg.tracking.project, run_id(self.cfg)
        # The runs this folder started, by experiment: SFT's, RL's (`<run>-rl`); evaluation resumes one.
        started = dict((record.get("vertex") or {}).get("runs") or {})
        self._call("init", project=launch.project, location=launch.region, experiment=experiment)
        try:
            self._call("start_run", run=run, resume=run in started.get(experiment, []))
        except RuntimeError as exc:  # the run exists, but this folder's record was lost (a fresh mirror)
            if "already exists" not in str(exc):
                raise
            self._call("start_run", run=run, resume=True)
        if run not in started.get(experiment, []):
            started[experiment] = [*started.get(experiment, []), run]
            write_record(self.run_dir, {**record, "vertex": {"runs": started}})
        if self.dry_run:
            log.info("tracking.dry_run: the Vertex AI Experiments calls are written to %s, not sent", self.file)

    def params(self, values: dict[str, Any]) -> None:
        params = {
            _KEY.sub("_", k): v
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else str(v)[:MAX_PARAM_LENGTH]
            for k, v in values.items()
        }
        self._call("log_params", params=params)

    def series(self, values: dict[str, Any], step: int) -> None:
        metrics = numeric(values)
        if metrics:
            self._call("log_time_series_metrics", metrics=metrics, step=int(step))

    def metrics(self, values: dict[str, Any]) -> None:
        self._call("log_metrics", metrics=numeric(values))

    def end(self) -> None:
        self._call("end_run")


class VertexExperimentsCallback(TrainerCallback):
    """Training in a Vertex AI experiment run: the config as parameters at the start, every log
    entry as time series at its step, the run ended with training (evaluation resumes it)."""

    def __init__(self, cfg: Config, flat_config: dict[str, str]):
        self.cfg, self.flat_config = cfg, flat_config
        self.experiments: Experiments | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        self.experiments = Experiments(self.cfg, self.cfg.output_dir)
        self.experiments.start()
        self.experiments.params(self.flat_config)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.experiments is not None and logs:
            self.experiments.series(logs, state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.experiments is not None:
            self.experiments.end()
            self.experiments = None
