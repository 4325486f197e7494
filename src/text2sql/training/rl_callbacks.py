"""Callbacks of the rl stage: a wall-time limit, and execution accuracy on a validation sample at
eval steps, which also keeps the weights of the best step so that the stage can save those."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from transformers import TrainerCallback

from text2sql.training.accuracy import ExecutionAccuracyCallback, unwrap_model

log = logging.getLogger("text2sql.rl")


class TimeLimitCallback(TrainerCallback):
    """Stops training once `minutes` of wall time have passed since it began (the step under way finishes)."""

    def __init__(self, minutes: float | None):
        self.seconds = None if minutes is None else minutes * 60.0
        self.start = time.monotonic()
        self.stopped = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and time.monotonic() - self.start >= self.seconds:
            if state.global_step < state.max_steps:
                self.stopped = True
                log.info("rl.max_minutes reached after step %d of %d: stopping", state.global_step, state.max_steps)
            control.should_training_stop = True


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """A CPU copy of the parameters training changes (the LoRA matrices, or every weight)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in unwrap_model(model).named_parameters() if p.requires_grad}


class RLAccuracyCallback(TrainerCallback):
    """Every `every` steps, greedy execution accuracy on a validation sample (`ExecutionAccuracyCallback`);
    the value joins the next log entry as `eval_execution_accuracy` (trackers see it too).

    With `keep_best`, the starting model is measured too (step 0), and the trainable weights of the
    best-scoring step are kept in memory; `restore_best(model)` puts them back after training, so
    the stage saves the best checkpoint by execution accuracy, never one worse than where RL began.
    Ties keep the earlier step."""

    def __init__(self, accuracy: ExecutionAccuracyCallback, every: int, *, keep_best: bool = False):
        self.accuracy, self.every, self.keep_best = accuracy, every, keep_best
        self.pending: float | None = None
        self.values: list[tuple[int, float]] = []
        self.best_step: int | None = None
        self.best_value: float | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def _measure(self, model: Any, step: int) -> float:
        value = self.accuracy.compute(model)
        self.values.append((step, value))
        log.info("step %d: eval_execution_accuracy = %.4f (%d rows)", step, value, len(self.accuracy.rows))
        if self.keep_best and (self.best_value is None or value > self.best_value):
            self.best_step, self.best_value = step, value
            self._best_state = trainable_state(model)
        return value

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.keep_best and model is not None:
            # An entry of its own at step 0: the next log entry belongs to a later step.
            value = self._measure(model, state.global_step)
            state.log_history.append({self.accuracy.metric_name: value, "step": state.global_step})

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is None or state.global_step % self.every:
            return
        self.pending = self._measure(model, state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.pending is None or logs is None:
            return
        logs[self.accuracy.metric_name] = self.pending
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1][self.accuracy.metric_name] = self.pending
        self.pending = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        measured_last = bool(self.values) and self.values[-1][0] == state.global_step
        if self.keep_best and model is not None and not measured_last:
            self.pending = self._measure(model, state.global_step)  # the weights training ended with
        if self.pending is not None:  # computed after the last log: its own entry
            state.log_history.append({self.accuracy.metric_name: self.pending, "step": state.global_step})
            self.pending = None

    def restore_best(self, model: Any, last_step: int) -> int | None:
        """Load the best step's weights into `model` when that step is not the last; the step loaded, else None."""
        if not self.keep_best or self._best_state is None or self.best_step == last_step:
            return None
        params = dict(unwrap_model(model).named_parameters())
        with torch.no_grad():
            for name, value in self._best_state.items():
                params[name].copy_(value.to(params[name].device))
        log.info(
            "rl: keeping step %d's weights (eval_execution_accuracy %.4f, best of %s)",
            self.best_step,
            self.best_value,
            ", ".join(f"{s}: {v:.3f}" for s, v in self.values),
        )
        return self.best_step
