"""Estimates kept for the run they describe: `text2sql init` and `validate` leave theirs in the cache,
and `text2sql run` of the same config on the same machine prints it instead of probing again."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from text2sql.config import Config
from text2sql.paths import cache_root
from text2sql.rundir import source_identity
from text2sql.sizing.estimate import Estimate

log = logging.getLogger("text2sql.sizing")

MAX_AGE = 24 * 3600.0  # seconds an estimate is reused: machines and their load change
# Settings that change neither the work of a run nor its speed on a given machine's cores.
_IGNORED = {"tracking": None, "launch": None, "serving": None, "tuning": None}


def config_key(cfg: Config) -> str:
    """Identifies what a run of `cfg` does on this machine: its settings (not the thread count, which
    follows the machine), the data files it reads, and the machine's cores and GPU."""
    import torch

    from text2sql.threads import available_cores

    values = cfg.model_dump(mode="json")
    values.update(_IGNORED)
    values["model"].pop("threads", None)
    values["callbacks"].pop("progress", None)
    d = cfg.data
    inputs = {
        k: source_identity(v) for k, v in (("train", d.train), ("validation", d.validation), ("test", d.test)) if v
    }
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    text = json.dumps({"config": values, "inputs": inputs, "cores": available_cores(), "gpu": gpu}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _path(cfg: Config) -> Path:
    return cache_root() / "estimates" / f"{config_key(cfg)}.json"


def save_estimate(cfg: Config, estimate: Estimate, made_by: str) -> None:
    """Keep `estimate` for later runs of `cfg` here (`made_by`: the command that made it)."""
    path = _path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**estimate.to_dict(), "made_by": made_by}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)  # whole or not at all: a run reading it never sees half a file
    except OSError as exc:  # a read-only cache costs the next run a probe, nothing more
        log.debug("estimate not kept: %s", exc)


def load_estimate(cfg: Config, max_age: float = MAX_AGE) -> tuple[Estimate, str] | None:
    """(the estimate kept for `cfg` on this machine, the command that made it), when fresh enough."""
    path = _path(cfg)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        estimate = Estimate.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if time.time() - estimate.created > max_age:
        return None
    return estimate, str(data.get("made_by", "an earlier probe"))
