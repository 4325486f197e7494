"""Resource monitoring during training, on any machine: CPU and memory use of the process and the
machine, GPU utilisation and memory through NVML when there is a GPU (`pip install 'text2sql[gpu-monitor]'`),
and training speed (samples/s and, when the trainer counts them, tokens/s) between two log entries.

`ResourceMonitorCallback` adds the figures to every log entry before the trackers read it, so
TensorBoard, MLflow, W&B and Vertex AI Experiments show them beside the loss, and they land in
`training_log.json`, which the evaluation report summarises (`resource_summary`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from text2sql.training.callbacks import PeakMemoryCallback

log = logging.getLogger("text2sql.train")

CPU = "resources/cpu_percent"  # this process, summed over its threads: 200 = two cores busy
SYSTEM_CPU = "resources/system_cpu_percent"  # the whole machine, 100 = every core busy
RSS = "resources/rss_mb"
SYSTEM_MEMORY = "resources/system_memory_percent"
GPU_UTIL = "resources/gpu_util_percent"  # mean over the visible GPUs (CUDA_VISIBLE_DEVICES)
GPU_MEMORY = "resources/gpu_memory_mb"  # used, summed over the visible GPUs (every process on them)
SAMPLES = "throughput/samples_per_second"
TOKENS = "throughput/tokens_per_second"
KEYS = (CPU, SYSTEM_CPU, RSS, SYSTEM_MEMORY, GPU_UTIL, GPU_MEMORY, SAMPLES, TOKENS)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _visible(count: int) -> list[int]:
    """The NVML indices of the GPUs this process may use: CUDA_VISIBLE_DEVICES when it lists indices
    (NVML itself sees every GPU of the machine), else all of them."""
    import os

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return list(range(count))
    parts = [p.strip() for p in listed.split(",") if p.strip()]
    if all(p.isdigit() for p in parts):
        return [int(p) for p in parts if int(p) < count]
    return list(range(count))  # UUIDs or MIG names: not resolved here


class _Nvml:
    """GPU utilisation and used memory from NVML; `available` is False without a GPU or nvidia-ml-py."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml  # type: ignore[import-not-found,import-untyped]

            pynvml.nvmlInit()
            self._nvml = pynvml
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in _visible(pynvml.nvmlDeviceGetCount())]
        except ImportError:
            if _cuda_available():
                log.info("GPU utilisation is not logged: pip install 'text2sql[gpu-monitor]' (NVML)")
        except Exception as exc:  # no driver, no GPU: CPU figures only
            log.debug("GPU monitoring off: %s", exc)

    @property
    def available(self) -> bool:
        return bool(self.handles)

    def sample(self) -> dict[str, float]:
        """The figures, or none at all once NVML fails (a MIG slice, a lost GPU): monitoring never
        stops training."""
        try:
            util = [self._nvml.nvmlDeviceGetUtilizationRates(h).gpu for h in self.handles]
            used = [self._nvml.nvmlDeviceGetMemoryInfo(h).used for h in self.handles]
        except Exception as exc:
            log.info("GPU utilisation is no longer logged: NVML failed (%s)", exc)
            self.handles = []
            return {}
        return {GPU_UTIL: round(sum(util) / len(util), 1), GPU_MEMORY: round(sum(used) / 2**20, 1)}


class ResourceMonitorCallback(PeakMemoryCallback):
    """Adds resource use and training speed to every log entry (and the peak memory figures of
    `PeakMemoryCallback`). Register it first in the trainer's callback list, before the trackers."""

    def __init__(self) -> None:
        super().__init__()
        import psutil

        self._process = psutil.Process()
        self._psutil = psutil
        self._gpu = _Nvml()
        self._last: tuple[float, int, int] | None = None  # (time, step, tokens) at the last log

    def on_train_begin(self, args, state, control, **kwargs):
        # cpu_percent measures from its previous call: start both clocks here.
        self._process.cpu_percent(None)
        self._psutil.cpu_percent(None)
        self._last = (time.perf_counter(), state.global_step, int(state.num_input_tokens_seen or 0))

    def sample(self, args: Any, state: Any) -> dict[str, float]:
        memory = self._psutil.virtual_memory()
        values = {
            CPU: round(self._process.cpu_percent(None), 1),
            SYSTEM_CPU: round(self._psutil.cpu_percent(None), 1),
            RSS: round(self._process.memory_info().rss / 2**20, 1),
            SYSTEM_MEMORY: round(memory.percent, 1),
        }
        if self._gpu.available:
            values.update(self._gpu.sample())
        now, tokens = time.perf_counter(), int(state.num_input_tokens_seen or 0)
        if self._last is not None:
            then, step, seen = self._last
            seconds = now - then
            if seconds > 0 and state.global_step > step:
                per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
                values[SAMPLES] = round((state.global_step - step) * per_step / seconds, 2)
                if tokens > seen:
                    values[TOKENS] = round((tokens - seen) / seconds, 1)
        self._last = (now, state.global_step, tokens)
        return values

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None:
            return
        if "train_loss" not in logs:  # the end-of-training summary is no sample
            values = self.sample(args, state)
            logs.update(values)
            if state.log_history:  # the trainer appended a copy of `logs` just before calling us
                state.log_history[-1].update(values)
        super().on_log(args, state, control, logs=logs, **kwargs)


def resource_summary(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per resource figure logged during training: its mean, peak and last value (for reports)."""
    rows = []
    for key in KEYS:
        values = [float(e[key]) for e in log_history if isinstance(e.get(key), (int, float))]
        if values:
            rows.append(
                {
                    "metric": key,
                    "mean": sum(values) / len(values),
                    "peak": max(values),
                    "last": values[-1],
                    "n": len(values),
                }
            )
    return rows
