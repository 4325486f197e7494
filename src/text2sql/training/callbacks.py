"""Trainer callbacks: plain progress lines for logs, peak memory, and checkpoint copies.

Early stopping is transformers' own `EarlyStoppingCallback`, added by `build_callbacks`. Everything
here that prints or copies does so on the main process only (`state.is_world_process_zero`).
"""

from __future__ import annotations

import datetime
import logging
import sys
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from text2sql.config import Config
from text2sql.errors import ConfigError
from text2sql.storage import RemoteMirror, check_destination
from text2sql.threads import ThreadGovernor

log = logging.getLogger("text2sql.train")


def use_progress_lines(mode: str, stream: Any = None) -> bool:
    """`lines` → plain lines; `bar` → tqdm; `auto` → lines unless the output is a terminal."""
    if mode == "lines":
        return True
    if mode == "bar":
        return False
    stream = stream or sys.stderr
    return not (hasattr(stream, "isatty") and stream.isatty())


def _format_eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(0, seconds))))


def _format_rate(steps_per_second: float) -> str:
    if steps_per_second <= 0:
        return "- it/s"
    if steps_per_second < 1:
        return f"{1 / steps_per_second:.2f} s/it"
    return f"{steps_per_second:.1f} it/s" if steps_per_second < 100 else f"{steps_per_second:.0f} it/s"


def _mb(value: float | None) -> str:
    return "-" if value is None else (f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:.0f} MB")


# Between logging steps, a line at least this often (seconds), so a slow run never looks stuck.
QUIET_SECONDS = 30.0


class ProgressLinesCallback(TrainerCallback):
    """Whole lines, for output that is not a terminal (a file, a cloud job's log): one after the first
    step (so the speed and ETA show within seconds), one per logging step, and one whenever
    `QUIET_SECONDS` pass without any:

        step 40/300 | loss 1.234 | lr 1.9e-04 | 12.3 it/s | ETA 0:00:21

    Speed and ETA count only the steps of this run, so a resumed run does not look faster.
    """

    def __init__(self, logger: logging.Logger | None = None, quiet_seconds: float = QUIET_SECONDS):
        self.log = logger or log
        self.quiet_seconds = quiet_seconds
        self._start: float | None = None
        self._start_step = 0
        self._last_line = 0.0
        self._last_loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last_line = time.monotonic()
        self._start_step = state.global_step
        if state.is_world_process_zero:
            self.log.info("training: %d steps, starting at step %d", state.max_steps, state.global_step)

    def _speed(self, state) -> list[str]:
        elapsed = time.monotonic() - (self._start or time.monotonic())
        done = state.global_step - self._start_step
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [_format_rate(rate)]
        if rate > 0:
            parts.append(f"ETA {_format_eta((state.max_steps - state.global_step) / rate)}")
        return parts

    def on_step_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or _log_due(args, state):
            return  # the trainer logs this step: on_log prints its line
        first = state.global_step == self._start_step + 1
        if first or time.monotonic() - self._last_line >= self.quiet_seconds:
            loss = [] if self._last_loss is None else [f"loss {self._last_loss:.4f}"]
            self._emit(" | ".join([f"step {state.global_step}/{state.max_steps}", *loss, *self._speed(state)]))

    def _emit(self, text: str) -> None:
        self._last_line = time.monotonic()
        self.log.info(text)

    def line(self, state, logs: dict[str, Any]) -> str | None:
        parts = [f"step {state.global_step}/{state.max_steps}"]
        if "loss" in logs:
            self._last_loss = float(logs["loss"])
            parts.append(f"loss {logs['loss']:.4f}")
            if "learning_rate" in logs:
                parts.append(f"lr {logs['learning_rate']:.1e}")
            # RL (GRPO): the mean reward, the share of completions whose SQL returned the gold result
            # and the greedy execution accuracy when it was measured at this step.
            for key, label in (
                ("reward", "reward"),
                ("execution/correct", "correct"),
                ("eval_execution_accuracy", "eval_execution_accuracy"),
            ):
                if isinstance(logs.get(key), (int, float)):
                    parts.append(f"{label} {logs[key]:.3f}")
            parts.extend(self._speed(state))
        elif any(k.startswith("eval_") for k in logs):
            shown = {k: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, (int, float))}
            if not shown:
                return None
            preferred = [k for k in ("eval_loss", "eval_execution_accuracy") if k in shown]
            keys = preferred or sorted(shown)[:3]
            parts.extend(f"{k} {shown[k]:.4f}" for k in keys)
        else:
            return None
        if "peak_rss_mb" in logs:
            parts.append(f"rss {_mb(logs['peak_rss_mb'])}")
        if logs.get("peak_gpu_mb") is not None:
            parts.append(f"gpu {_mb(logs['peak_gpu_mb'])}")
        return " | ".join(parts)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        text = self.line(state, logs)
        if text:
            self._emit(text)


def _log_due(args, state) -> bool:
    """Whether the trainer logs at this step (it calls on_log right after on_step_end)."""
    strategy = str(getattr(args.logging_strategy, "value", args.logging_strategy))
    steps = args.logging_steps
    if state.global_step == 1 and args.logging_first_step:
        return True
    if strategy != "steps" or not steps:
        return False
    every = steps if steps >= 1 else max(1, int(steps * state.max_steps))  # < 1: a share of all steps
    return state.global_step % every == 0


class ProgressBarCallback(TrainerCallback):
    """A progress bar on a terminal, labelled and showing the last loss: `training: 40%|... | loss 1.23`.
    Evaluations during training print a line above it."""

    def __init__(self):
        self.bar: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="training", unit="step", dynamic_ncols=True
            )

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is None or not logs:
            return
        if "loss" in logs:
            self.bar.set_postfix_str(f"loss {logs['loss']:.4f}", refresh=False)
        evals = {k: v for k, v in logs.items() if k.startswith("eval_") and isinstance(v, (int, float))}
        if evals:
            shown = [k for k in ("eval_loss", "eval_execution_accuracy") if k in evals] or sorted(evals)[:3]
            self.bar.write(f"step {state.global_step}: " + " | ".join(f"{k} {evals[k]:.4f}" for k in shown))

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def peak_memory_mb() -> dict[str, float | None]:
    """Peak resident memory of this process and peak GPU memory allocated by torch, in MiB."""
    rss = None
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        rss = maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)
    except (ImportError, OSError):  # pragma: no cover - Windows
        pass
    gpu = None
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            gpu = torch.cuda.max_memory_allocated() / 2**20
    except Exception:  # pragma: no cover - a broken CUDA setup must not stop logging
        gpu = None
    return {
        "peak_rss_mb": round(rss, 1) if rss is not None else None,
        "peak_gpu_mb": round(gpu, 1) if gpu is not None else None,
    }


class PeakMemoryCallback(TrainerCallback):
    """Adds `peak_rss_mb` (and `peak_gpu_mb` on a GPU) to every log entry (resource monitoring).

    Registered before the reporting integrations, so trackers see the values too.
    """

    def __init__(self):
        self.peak: dict[str, float | None] = {}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None:
            return
        self.peak = peak_memory_mb()
        values = {k: v for k, v in self.peak.items() if v is not None}
        logs.update(values)
        # The trainer appended a copy of `logs` to the history just before calling us.
        if state.log_history:
            state.log_history[-1].update(values)

    def on_train_end(self, args, state, control, **kwargs):
        self.peak = peak_memory_mb()


class ThreadFollowCallback(TrainerCallback):
    """Keeps torch's CPU threads at the cores left to this process as other work comes and goes
    (`text2sql.threads.ThreadGovernor`): a look every few steps, at most every 30 s. A count the
    user fixed (`--threads`, TEXT2SQL_THREADS) is left alone."""

    def __init__(self, setting: int, governor: ThreadGovernor | None = None):
        self.governor = governor or ThreadGovernor(setting)

    def on_train_begin(self, args, state, control, **kwargs):
        self.governor.start(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.governor.tick(state.global_step)


def check_sync_destination(dest: str | None) -> None:
    """Fail before training when the sync destination cannot be written (missing extra, no bucket)."""
    if dest:
        check_destination(dest, probe=True)


class CheckpointSyncCallback(TrainerCallback):
    """Copies each saved checkpoint to `destination/checkpoint-<step>` (a folder, gs:// or s3://)
    from the main process only (checkpoints to S3 or GCS as a job trains). Uploads go through
    `storage.upload`: retried, and never a half-written checkpoint that looks complete."""

    def __init__(self, destination: str | Path):

        self.mirror = RemoteMirror(destination)
        self.destination = destination
        self.synced: list[str] = []

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        source = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not source.is_dir():
            return
        target = self.mirror.push(source)
        self.synced.append(target)
        log.info("copied %s to %s", source.name, target)


def require_evaluations(cfg: Config, has_validation: bool, key: str) -> None:
    """ConfigError unless the run evaluates on a validation split during training, which the
    callback set by `key` works from."""
    if not has_validation:
        raise ConfigError(f"{key} needs a validation split; set data.validation or data.validation_size > 0")
    if str(cfg.training.get("eval_strategy", "no")) == "no":
        raise ConfigError(
            f"{key} needs evaluations during training; set training.eval_strategy=steps and training.eval_steps=N"
        )


def early_stopping_callback(cfg: Config, has_validation: bool):
    """transformers' EarlyStoppingCallback for cfg.callbacks.early_stopping_patience, checked up front."""
    patience = cfg.callbacks.early_stopping_patience
    if not patience:
        return None
    require_evaluations(cfg, has_validation, "callbacks.early_stopping_patience")
    from transformers import EarlyStoppingCallback

    return EarlyStoppingCallback(early_stopping_patience=patience)
