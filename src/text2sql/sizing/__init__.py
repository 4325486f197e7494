"""A run sized before it starts: a short probe of the model on this machine (`probe`), the time and
peak memory of every stage from it (`estimate`), settings for a CPU and a time budget (`fit`), and
the tables that show them (`table`). `text2sql init` and `validate` size a run; `text2sql run`
prints its estimate first and compares it with the actual times at the end.
"""

from __future__ import annotations

from text2sql.config import Config
from text2sql.sizing.budget import format_duration, parse_budget
from text2sql.sizing.estimate import Estimate, StageEstimate, estimate_run
from text2sql.sizing.fit import LONG_SCHEMAS, Change, Sized, cpu_settings, fit_budget
from text2sql.sizing.probe import Probe, ProbeError, run_probe
from text2sql.sizing.store import load_estimate, save_estimate
from text2sql.sizing.table import comparison_table, estimate_table

__all__ = [
    "Change",
    "Estimate",
    "Probe",
    "ProbeError",
    "Sized",
    "StageEstimate",
    "comparison_table",
    "estimate_run",
    "estimate_table",
    "format_duration",
    "load_estimate",
    "parse_budget",
    "run_probe",
    "save_estimate",
    "size_run",
]


def size_run(cfg: Config, *, budget: float | None = None, cpu: bool = False) -> Sized:
    """Probe `cfg` here and size it: with `cpu`, the settings a CPU run should have (`cpu_settings`);
    with `budget` (seconds), cut to fit it (`fit_budget`). ProbeError when the probe cannot run."""
    formats = ("compact",) if (cpu or budget is not None) and cfg.data.schema_format in LONG_SCHEMAS else ()
    probe = run_probe(cfg, schema_formats=formats)
    original = estimate_run(cfg, probe)
    changes: list[Change] = []
    if cpu:
        cfg, changes = cpu_settings(cfg, probe)
    if budget is not None:
        sized = fit_budget(cfg, probe, budget, changes)
    else:
        sized = Sized(cfg, estimate_run(cfg, probe), changes)
    sized.original = original
    return sized
