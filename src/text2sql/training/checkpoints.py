"""Checkpoints that are known to be whole.

The trainer writes `checkpoint-<step>/` file by file (weights, optimizer, scheduler, RNG, state); a
process killed half-way leaves a folder that looks like a checkpoint but cannot be resumed. After the
trainer has finished writing (on every process), `CompleteCheckpointCallback` adds a small marker
file; `latest_complete_checkpoint` only ever returns marked folders.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

MARKER = "text2sql_complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(path: str | Path) -> int | None:
    match = _CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Every `checkpoint-<step>` folder in `directory`, complete or not, by step."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0)


def is_complete(checkpoint: str | Path) -> bool:
    return (Path(checkpoint) / MARKER).is_file()


def latest_complete_checkpoint(directory: str | Path) -> Path | None:
    """The highest-step checkpoint whose marker is there; partial checkpoints are never chosen."""
    complete = [p for p in list_checkpoints(directory) if is_complete(p)]
    return complete[-1] if complete else None


def remove_partial_checkpoints(directory: str | Path) -> list[Path]:
    """Delete unmarked checkpoint folders (left by a crash); returns what was removed."""
    removed = []
    for path in list_checkpoints(directory):
        if not is_complete(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d incomplete checkpoint(s): %s", len(removed), ", ".join(p.name for p in removed))
    return removed


def write_marker(checkpoint: str | Path, info: dict[str, Any]) -> Path:
    """Atomically write the completion marker (a temp file renamed into place)."""
    target = Path(checkpoint) / MARKER
    tmp = target.with_name(f".{MARKER}.tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, target)
    return target


def _barrier() -> None:
    """Wait for every process: with sharded optimizers (ZeRO, FSDP) each one writes its own shard."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch always has it
        return
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class CompleteCheckpointCallback(TrainerCallback):
    """Marks `checkpoint-<step>` complete once the trainer has written all of it (main process writes)."""

    def __init__(self, fingerprint: str | None = None):
        self.fingerprint = fingerprint

    def on_save(self, args, state, control, **kwargs):
        _barrier()
        if state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if checkpoint.is_dir():
                write_marker(
                    checkpoint,
                    {
                        "step": state.global_step,
                        "fingerprint": self.fingerprint,
                        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    },
                )
        _barrier()
        return control
