"""BIRD's efficiency score, R-VES (reward-based valid efficiency score), when asked for
(`evaluation.efficiency_runs`).

Each right prediction and its gold query run N times on the row's database, alternating so that a
slow moment of the machine hits both; the ratio of their median times, gold / prediction, earns a
reward as BIRD's script grades it (>= 2: 1.25, >= 1: 1, >= 0.5: 0.75, >= 0.25: 0.5, else 0.25);
a wrong prediction earns 0. R-VES is the mean reward over the rows execution accuracy scores, so a
model that is always right and as fast as the gold gets 1.0. BIRD's script averages ratios after
dropping outliers beyond three standard deviations; medians serve the same purpose with fewer runs.
Wall-clock times vary between machines: compare R-VES of runs made on the same one.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from text2sql.evaluation.evalset import EvalRow
from text2sql.evaluation.scoring import ScoredExample
from text2sql.progress import progress as progress_bar
from text2sql.sql.execution import try_open
from text2sql.sql.results import ExecutionResult

# (lowest time ratio, reward), best first: BIRD's grading of gold time / predicted time.
REWARDS = ((2.0, 1.25), (1.0, 1.0), (0.5, 0.75), (0.25, 0.5), (0.0, 0.25))


def reward(ratio: float) -> float:
    return next(value for low, value in REWARDS if ratio >= low)


def r_ves(
    rows: Sequence[EvalRow],
    scored: Sequence[ScoredExample],
    runs: int,
    *,
    timeout: float,
    progress: bool = False,
) -> dict[str, Any]:
    """R-VES over the execution-scored rows, and how many right predictions were timed."""
    rewards: dict[int, float] = {i: 0.0 for i, s in enumerate(scored) if s.execution_match is not None}
    right = [i for i, s in enumerate(scored) if s.execution_match == 1.0]
    by_db: dict[str, list[int]] = defaultdict(list)
    for i in right:
        if rows[i].db_path:
            by_db[str(rows[i].db_path)].append(i)
    ratios = []
    bar = progress_bar(len(right), "timing", enabled=progress)
    try:
        for target, indices in by_db.items():
            db = try_open(target)
            if isinstance(db, ExecutionResult):
                continue
            with db:
                for i in indices:
                    gold, pred = _times(db, rows[i].sql, scored[i].predicted_sql, runs, timeout)
                    ratio = gold / pred if pred > 0 else 2.0
                    ratios.append(ratio)
                    rewards[i] = reward(ratio)
                    bar.update(1)
    finally:
        bar.close()
    return {
        "r_ves": sum(rewards.values()) / len(rewards) if rewards else None,
        "runs": runs,
        "timed_rows": len(ratios),
        "median_time_ratio": statistics.median(ratios) if ratios else None,
    }


def _times(db, gold_sql: str, pred_sql: str, runs: int, timeout: float) -> tuple[float, float]:
    """Median seconds of the gold and the predicted query over `runs` alternating runs."""
    gold: list[float] = []
    pred: list[float] = []
    for _ in range(runs):
        for sql, times in ((gold_sql, gold), (pred_sql, pred)):
            start = time.perf_counter()
            db.execute(sql, timeout=timeout)
            times.append(time.perf_counter() - start)
    return statistics.median(gold), statistics.median(pred)
