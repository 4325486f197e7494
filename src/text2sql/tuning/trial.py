"""One trial: the study's config with the sampled values, trained in `<output_dir>/tuning/trial-<n>/`
on the study's one prepared dataset and scored on its validation split (never the test split: it
stays unseen until the final `text2sql run` of the best config reports on it).
"""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql.config import Config, save_config
from text2sql.errors import Text2SQLError
from text2sql.evaluation.evaluate import evaluate
from text2sql.models.loading import ResolvedModel
from text2sql.training.arguments import CHECKPOINTS
from text2sql.training.train import train

SPLIT = "validation"
# Metrics kept with each trial beside the optimized one, for the table and trials.csv.
SHOWN_METRICS = ("execution_accuracy", "exact_match", "f1_score", "valid_sql_rate", "loss")


class TrialFailed(Exception):
    """Something specific to this trial's values went wrong (e.g. the loss became NaN); the study
    records the trial as failed and goes on."""


@dataclass
class TrialOutcome:
    value: float
    metrics: dict[str, Any]  # the numbers of metrics.json, nested groups left out
    path: Path  # the trained adapter or model


def share_data(data_dir: Path, trial_dir: Path) -> None:
    """Give a trial folder the study's prepared data: `train` then finds it current and skips
    preparing (a link, so N trials hold one copy; a copy where links are not allowed)."""
    target = trial_dir / "data"
    if target.exists() or target.is_symlink():
        return
    try:
        os.symlink(os.path.relpath(data_dir, trial_dir), target, target_is_directory=True)
    except OSError:
        shutil.copytree(data_dir, target)


def _pruning_callback(trial: Any, metric: str):
    """Reports the trainer's `eval_<metric>` at each evaluation and stops a trial the pruner gives up on."""
    import optuna
    from transformers import TrainerCallback

    key = f"eval_{metric}"

    class ReportToStudy(TrainerCallback):
        last_step = -1

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get(key)
            # train() evaluates once more after the last step; a step is reported once.
            if value is None or state.global_step == self.last_step:
                return
            self.last_step = state.global_step
            trial.report(float(value), step=state.global_step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"at step {state.global_step}, {key} {value:.4g}")

    return ReportToStudy()


def metric_value(metrics: dict[str, Any], metric: str) -> float:
    """The optimized number; a metric the evaluation cannot give is an error of the study, not of one trial."""
    numeric = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
    if metric not in metrics:
        raise Text2SQLError(
            f"tuning.metric={metric} is not among the validation metrics ({', '.join(numeric)}); choose one of them"
        )
    value = metrics[metric]
    if value is None:
        why = " (no validation row has a database to run SQL on)" if metric == "execution_accuracy" else ""
        raise Text2SQLError(
            f"tuning.metric={metric} could not be measured on the validation split{why}; choose another tuning.metric"
        )
    value = float(value)
    if not math.isfinite(value):
        raise TrialFailed(f"{metric} is {value}")
    return value


def run_trial(
    cfg: Config, data_dir: Path, *, model: ResolvedModel | None = None, trial: Any = None, pruning: bool = False
) -> TrialOutcome:
    """Train `cfg` (its output_dir is the trial folder) and score it on the validation split; `model`
    is cfg's base model, resolved once for the whole study."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)  # the trial's resolved config, sampled values included
    share_data(data_dir, out)
    callbacks = [_pruning_callback(trial, cfg.tuning.metric)] if pruning and trial is not None else []
    try:
        trained = train(cfg, model=model, callbacks=callbacks)
    finally:
        # Checkpoints only serve to resume a trial, and a trial is never resumed: it is rerun.
        shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)
    if trained.train_loss is not None and not math.isfinite(trained.train_loss):
        raise TrialFailed(f"training loss is {trained.train_loss} (learning rate too high?)")

    result = evaluate(
        str(data_dir),
        out / "eval" / SPLIT,
        model=str(trained.path),
        settings=cfg.evaluation,
        split=SPLIT,
        force=True,
        progress=False,
    )
    value = metric_value(result.metrics, cfg.tuning.metric)
    flat = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return TrialOutcome(value=value, metrics=flat, path=trained.path)
