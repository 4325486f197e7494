"""Which run each tracker logged to: `<output_dir>/tracking.json`, written during training by
`TrackingRunCallback` and read when evaluation metrics are added to the same run (`backends`) or when
Vertex AI Experiments continues it (`vertex`)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

RECORD = "tracking.json"
# The trackers transformers integrates, whose run the callback records.
INTEGRATED = ("mlflow", "tensorboard", "wandb")


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
        if any(b in INTEGRATED and b not in self.record for b in args.report_to or []):
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
