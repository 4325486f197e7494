"""What answering costs, per model, in the same units for an endpoint and a local model: latency,
tokens in and out, and the price of 1,000 questions.

An endpoint is priced by its tokens (`evaluation.price_per_1m_tokens: {input, output}`, per million
tokens, as providers quote them); its latency is each request's own, retries included, so p50 and
p95 are what a user waits. A local model is priced by its measured generation time
(`evaluation.price_per_hour`, the machine's price): it answers in batches, so its latency is not
seen per question; `seconds_per_question` (generation time over questions) is its throughput cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from text2sql.config import EvaluationConfig
from text2sql.inference.openai_model import Answer

PER = 1000  # questions the cost is given for


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100, linear interpolation); None for no values."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else None


def endpoint_cost(
    answers: Sequence[Answer], settings: EvaluationConfig, wall_seconds: float, *, extra: Sequence[Answer] = ()
) -> dict[str, Any]:
    """Latency p50/p95 over the requests of `answers` (one per question), tokens in and out with
    those of the `extra` requests (sampled candidates), and the cost of 1,000 questions when
    `settings.price_per_1m_tokens` is set (None when the endpoint reported no usage)."""
    n = len(answers)
    latencies = [a.seconds for a in answers]
    tokens_in = _total([a.prompt_tokens for a in [*answers, *extra]])
    tokens_out = _total([a.completion_tokens for a in [*answers, *extra]])
    price = settings.price_per_1m_tokens
    cost = None
    if price is not None and tokens_in is not None and tokens_out is not None and n:
        cost = PER * (tokens_in * price.input + tokens_out * price.output) / 1e6 / n
    return {
        "kind": "endpoint",
        "questions": n,
        "latency_p50_seconds": percentile(latencies, 50),
        "latency_p95_seconds": percentile(latencies, 95),
        "seconds_per_question": wall_seconds / n if n else None,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens_in_per_question": tokens_in / n if n and tokens_in is not None else None,
        "tokens_out_per_question": tokens_out / n if n and tokens_out is not None else None,
        "cost_per_1000_questions": cost,
        "price": {"per_1m_tokens": price.model_dump()} if price is not None else None,
        "cached_answers": sum(1 for a in answers if a.cached),
    }


def local_cost(
    settings: EvaluationConfig, questions: int, seconds: float, tokens_in: int, tokens_out: int
) -> dict[str, Any]:
    """Seconds per question from the generation time, tokens in and out, and the cost of 1,000
    questions when `settings.price_per_hour` is set."""
    per_question = seconds / questions if questions else None
    hourly = settings.price_per_hour
    cost = PER * per_question * hourly / 3600 if per_question is not None and hourly is not None else None
    return {
        "kind": "local",
        "questions": questions,
        "latency_p50_seconds": None,
        "latency_p95_seconds": None,
        "seconds_per_question": per_question,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "tokens_in_per_question": tokens_in / questions if questions else None,
        "tokens_out_per_question": tokens_out / questions if questions else None,
        "cost_per_1000_questions": cost,
        "price": {"per_hour": hourly} if hourly is not None else None,
        "cached_answers": 0,
    }


def _total(values: Sequence[int | None]) -> int | None:
    """The sum, or None when any value is unknown (a partial count would understate the cost)."""
    if any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None)


def format_cost(cost: dict[str, Any] | None) -> str:
    """One line for the terminal summary."""
    if not cost:
        return ""
    parts = []
    if cost.get("latency_p50_seconds") is not None:
        parts.append(f"latency p50 {cost['latency_p50_seconds']:.2f} s, p95 {cost['latency_p95_seconds']:.2f} s")
    elif cost.get("seconds_per_question") is not None:
        parts.append(f"{cost['seconds_per_question']:.3f} s per question (batched)")
    if cost.get("tokens_in_per_question") is not None:
        parts.append(
            f"{cost['tokens_in_per_question']:.0f} tokens in, {cost['tokens_out_per_question']:.0f} out per question"
        )
    if cost.get("cost_per_1000_questions") is not None:
        parts.append(f"{cost['cost_per_1000_questions']:.4g} per 1,000 questions")
    if cost.get("cached_answers"):
        parts.append(f"{cost['cached_answers']} answers from the cache")
    return "; ".join(parts)
