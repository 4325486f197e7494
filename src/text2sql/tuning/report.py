"""What a study shows: one progress line per trial, the table of trials sorted by the metric, and the
two files it leaves beside the study: `trials.csv` (every trial) and `best.yaml` (the full config
with the best trial's values, headed by the command that runs it)."""

from __future__ import annotations

import csv
import datetime
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.config.space import Spec
from text2sql.tuning.results import TrialRow, TuneResult, public_url
from text2sql.tuning.trial import SHOWN_METRICS

_STATE_ORDER = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 4}


def fmt(value: Any) -> str:
    """Numbers short enough for a table: 0.412, 3.2e-04, 16."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.4g}"


def fmt_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt(v)}" for k, v in params.items())


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else str(datetime.timedelta(seconds=int(round(seconds))))


def progress_line(
    done: int,
    want: int,
    number: int,
    params: dict[str, Any],
    state: str,
    value: float | None,
    error: str | None,
    seconds: float,
    best: TrialRow | None,
    metric: str,
    eta: float | None,
) -> str:
    """trial 3/20 (#2) lr=3.2e-04 -> execution_accuracy 0.412 in 0:00:41 | best 0.455 (#1) | ETA 0:12:10"""
    if state == "COMPLETE":
        outcome = f"{metric} {fmt_metric(value)}"
    else:
        outcome = state.lower() + (f" ({error})" if error else "")
    parts = [f"trial {done}/{want} (#{number}) {_params(params)} -> {outcome} in {_duration(seconds)}"]
    parts.append(f"best {fmt_metric(best.value)} (#{best.number})" if best else "best -")
    parts.append(f"ETA {_duration(eta)}")
    return " | ".join(parts)


def sorted_rows(rows: list[TrialRow], direction: str) -> list[TrialRow]:
    """Completed trials best first, then pruned, failed and unfinished ones by number."""
    sign = -1 if direction == "maximize" else 1

    def key(r: TrialRow):
        done = r.state == "COMPLETE" and r.value is not None
        return (_STATE_ORDER.get(r.state, 9), sign * r.value if done and r.value is not None else 0.0, r.number)

    return sorted(rows, key=key)


def format_table(result: TuneResult) -> str:
    keys = list(result.space)
    header = ["trial", "state", result.metric, "time", *keys]
    table = [header]
    for r in sorted_rows(result.trials, result.direction):
        table.append(
            [
                f"#{r.number}",
                r.state.lower(),
                fmt_metric(r.value),
                _duration(r.seconds),
                *(fmt(r.params.get(k)) for k in keys),
            ]
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
        for row in table
    ]
    for r in result.trials:
        if r.error and r.state != "COMPLETE":
            lines.append(f"#{r.number} {r.state.lower()}: {r.error}")
    return "\n".join(lines)


def format_report(result: TuneResult) -> str:
    """The table, the best trial and where its config is."""
    lines = [format_table(result)]
    counts: dict[str, int] = {}
    for r in result.trials:
        counts[r.state.lower()] = counts.get(r.state.lower(), 0) + 1
    lines.append(
        f"{len(result.trials)} trials ({', '.join(f'{n} {s}' for s, n in counts.items())}); {result.ran} run now"
    )
    if result.best is not None:
        b = result.best
        lines.append(
            f"best: trial #{b.number}, {result.metric} {fmt_metric(b.value)} on the validation split: "
            f"{_params(b.params)}"
        )
        lines.append(f"best config: {result.best_config}  (next: text2sql run {result.best_config})")
    lines.append(f"all trials: {result.trials_csv}")
    return "\n".join(lines)


def write_trials_csv(path: Path, rows: list[TrialRow], space: dict[str, Spec], metric: str) -> Path:
    """Every trial, by number: state, the metric, time, the sampled values, other metrics, error."""
    keys = list(space)
    extra = [m for m in SHOWN_METRICS if m != metric]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "state", metric, "seconds", "started", *keys, *extra, "error"])
        for r in sorted(rows, key=lambda r: r.number):
            writer.writerow(
                [
                    r.number,
                    r.state,
                    "" if r.value is None else r.value,
                    "" if r.seconds is None else r.seconds,
                    r.started or "",
                    *("" if r.params.get(k) is None else r.params[k] for k in keys),
                    *("" if r.metrics.get(m) is None else r.metrics[m] for m in extra),
                    r.error or "",
                ]
            )
    tmp.replace(path)
    return path


def write_best_config(path: Path, cfg: Config, result: TuneResult) -> Path:
    """The full config with the best values, headed (like the presets) by the command that runs it."""
    b = result.best
    assert b is not None
    completed = sum(1 for r in result.trials if r.state == "COMPLETE")
    header = [
        f"# text2sql run {path}",
        "#",
        f"# Best of {completed} completed trials of study '{result.study_name}' ({public_url(result.storage)}):",
        f"# {result.metric} {fmt_metric(b.value)} on the validation split, trial #{b.number} "
        f"({result.root / f'trial-{b.number}'}).",
        f"# Tuned: {_params(b.params)}",
        "# The test split was not used while tuning; `text2sql run` on this file trains with these values",
        "# and reports on it (reusing the prepared data in output_dir).",
    ]
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text("\n".join(header) + "\n" + cfg.to_yaml(), encoding="utf-8")
    tmp.replace(path)
    return path
