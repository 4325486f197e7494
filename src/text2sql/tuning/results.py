"""What a study produced, as the table, trials.csv and best.yaml show it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.config.space import Spec


@dataclass
class TrialRow:
    """One trial as the table and trials.csv show it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL or RUNNING
    value: float | None
    params: dict[str, Any]
    seconds: float | None
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    started: str | None = None


@dataclass
class TuneResult:
    root: Path  # <output_dir>/tuning
    study_name: str
    storage: str
    metric: str
    direction: str
    space: dict[str, Spec]
    default_space: bool
    trials: list[TrialRow]
    best: TrialRow | None
    best_config: Path | None
    trials_csv: Path
    data: Path
    ran: int  # trials run by this call


def public_url(url: str) -> str:
    """A storage URL fit to print: without the password of postgresql://user:password@host/db."""
    return re.sub(r"//([^/@:]+):[^/]*@", r"//\1:***@", url)
