"""Several candidates per question, voted on by the database: `evaluation.num_samples`.

The greedy answer is candidate 0; `num_samples - 1` more are sampled (temperature, top-p, a seed).
The sampled copies of a question's prompt sit next to each other when batched, so a batch computes
their shared prompt (the system prompt and schema) once and reuses its KV cache (`inference.prefix`).
Per question the candidates then run on its database and are voted on (`sql.voting.vote`); the
gold query runs once and each candidate's result is compared with it, which gives

- maj@k: the voted answer is right;
- pass@k: at least one candidate is right (an upper bound for any way of choosing among them).

Both use execution accuracy's comparison and denominator, so the three numbers line up.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from text2sql.config import EvaluationConfig
from text2sql.inference.generate import RawOutput, Sampling
from text2sql.progress import progress as progress_bar
from text2sql.sql.execution import try_open
from text2sql.sql.extract import extract_sql
from text2sql.sql.match import GoldRow, judge
from text2sql.sql.results import ExecutionResult
from text2sql.sql.voting import vote


@dataclass
class Voted:
    """One question's vote: the chosen SQL, whether it and whether any candidate is right (None:
    not executable), how many candidates agree with it, out of how many."""

    sql: str
    match: float | None
    any_match: float | None
    support: int
    candidates: int


def sample(
    generator, prompt_ids: Sequence[Sequence[int]], settings: EvaluationConfig, *, progress: bool
) -> tuple[list[list[RawOutput]], float]:
    """`num_samples - 1` sampled answers per prompt, and the seconds it took."""
    import torch

    extra = settings.num_samples - 1
    expanded = [ids for ids in prompt_ids for _ in range(extra)]
    torch.manual_seed(settings.sample_seed)
    start = time.perf_counter()
    outputs = generator.generate(
        expanded,
        settings.max_new_tokens,
        Sampling(settings.temperature, settings.top_p),
        batch_size=settings.batch_size,
        progress=progress,
        desc="sampling",
        with_logprobs=True,
    )
    seconds = time.perf_counter() - start
    return [outputs[i * extra : (i + 1) * extra] for i in range(len(prompt_ids))], seconds


def vote_rows(
    rows: Sequence[GoldRow],
    candidates: Sequence[Sequence[str]],
    scores: Sequence[Sequence[float | None]],
    *,
    timeout: float,
    max_rows: int,
    progress: bool = False,
    max_steps: int | None = None,
    result_match: str = "default",
) -> list[Voted]:
    """The vote of every row with a database, one connection per database; rows without one keep
    their first (greedy) candidate."""
    out = [Voted(c[0] if c else "", None, None, 0, len(c)) for c in candidates]
    by_db: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if row.db_path and candidates[i]:
            by_db[row.db_path].append(i)
    bar = progress_bar(sum(len(v) for v in by_db.values()), "voting", enabled=progress)
    try:
        for db_path, indices in by_db.items():
            db = try_open(db_path, max_steps=max_steps)
            if isinstance(db, ExecutionResult):
                continue  # scored as no_database by the greedy pass already
            with db:
                gold_cache: dict[str, ExecutionResult] = {}
                for i in indices:
                    sql = rows[i].sql
                    if sql not in gold_cache:
                        gold_cache[sql] = db.execute(sql, timeout=timeout, max_rows=max_rows)
                    gold = gold_cache[sql]
                    result = vote(db, candidates[i], scores[i], timeout=timeout, max_rows=max_rows)
                    matches = [judge(sql, gold, r, result_match)[0] for r in result.results]
                    chosen = matches[result.chosen]
                    known = [m for m in matches if m is not None]
                    out[i] = Voted(
                        candidates[i][result.chosen],
                        chosen,
                        max(known) if known else None,
                        result.support,
                        len(candidates[i]),
                    )
                    bar.update(1)
    finally:
        bar.close()
    return out


def candidate_sql(greedy: Sequence[str], sampled: Sequence[Sequence[RawOutput]], decode) -> list[list[str]]:
    """Each row's candidates as SQL: the greedy answer first, then the sampled ones."""
    return [[g, *(extract_sql(decode(o)) for o in s)] for g, s in zip(greedy, sampled)]


def sampling_summary(settings: EvaluationConfig, timing: dict[str, float], voted, rows: int) -> dict[str, Any]:
    """What k candidates per question cost, next to what the greedy answer alone cost."""
    per = max(rows, 1)
    return {
        "num_samples": settings.num_samples,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "seed": settings.sample_seed,
        "greedy_seconds_per_question": timing.get("generation_seconds", 0.0) / per,
        "seconds_per_question": (
            timing.get("generation_seconds", 0.0)
            + timing.get("sampling_seconds", 0.0)
            + timing.get("voting_seconds", 0.0)
        )
        / per,
        "greedy_tokens_per_question": timing.get("generated_tokens", 0) / per,
        "tokens_per_question": (timing.get("generated_tokens", 0) + timing.get("sampled_tokens", 0)) / per,
        "mean_support": sum(v.support for v in voted) / per,
    }
