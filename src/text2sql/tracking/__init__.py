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

from text2sql.tracking.backends import (
    check_backend,
    flatten_metrics,
    log_evaluation,
    report_to,
    setup_tracking,
    tensorboard_dir,
    tracking_callbacks,
    tracking_env,
)
from text2sql.tracking.record import RECORD, TrackingRunCallback, read_record, write_record

__all__ = [
    "RECORD",
    "TrackingRunCallback",
    "check_backend",
    "flatten_metrics",
    "log_evaluation",
    "read_record",
    "report_to",
    "setup_tracking",
    "tensorboard_dir",
    "tracking_callbacks",
    "tracking_env",
    "write_record",
]
