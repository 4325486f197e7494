"""An OpenAI-compatible endpoint evaluated like any model (`--model openai:NAME`,
`evaluation.reference`).

It is asked the messages a fine-tuned model's prompt is made of (`inference.endpoint_prompts`):
`prompt_from` names the model whose prompt settings and token budget to use (a run uses its own
fine-tuned model), else the defaults with whole schemas. Its answers go through `extract_sql`, are
executed and scored by the same code as a local model's; an answer that holds no SQL (prose, a
refusal) is a wrong answer that says so. Answers are kept in an `AnswerCache`, so a rerun pays
for nothing twice.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sql.config import EvaluationConfig
from text2sql.data.prompt import PromptBuilder
from text2sql.data.readers import ReadOptions
from text2sql.evaluation.cost import endpoint_cost
from text2sql.evaluation.evalset import EvalRow
from text2sql.evaluation.sampling import Voted, vote_rows
from text2sql.evaluation.scoring import ScoredExample
from text2sql.inference.answer_cache import AnswerCache, answers_folder, cache_file
from text2sql.inference.endpoint_prompts import endpoint_builder, endpoint_messages
from text2sql.inference.loading import load_for_inference
from text2sql.inference.openai_model import Answer, Decoding, OpenAIModel
from text2sql.sql.extract import extract_sql, looks_like_sql
from text2sql.sql.match import GOLD_ERROR
from text2sql.sql.results import DEFAULT_MAX_ROWS, NO_DATABASE
from text2sql.sql.targets import dialect_of

_SHOWN = 80  # characters of a prose answer quoted in its reason


@dataclass
class Endpoint:
    """An endpoint and the prompt it is asked with: `builder` (a fine-tuned model's, or the
    defaults') and the schema rendering of `read_options`."""

    model: OpenAIModel
    builder: PromptBuilder
    schema_format: str = "sql"
    schema_sample_rows: int = 0
    prompt_from: str | None = None

    @property
    def spec(self) -> str:
        return self.model.spec

    def read_options(self, *, db_dir: str | None = None, db: str | None = None) -> ReadOptions:
        return ReadOptions(
            db_dir=db_dir, db=db, schema_format=self.schema_format, schema_sample_rows=self.schema_sample_rows
        )

    def describe(self) -> dict[str, Any]:
        return {
            **self.model.describe(),
            "prompt": self.builder.describe(),
            "prompt_from": self.prompt_from or "defaults (whole schemas, no token budget)",
            "schema_format": self.schema_format,
            "schema_sample_rows": self.schema_sample_rows,
        }


def open_endpoint(
    spec: str,
    settings: EvaluationConfig,
    *,
    prompt_from: str | None = None,
    db: str | None = None,
    cache_dir: str | Path | None = None,
) -> Endpoint:
    """The endpoint `spec` (openai:NAME) with `settings`' base URL, timeout, retries and
    concurrency, its answers kept under `cache_dir` (default: the cache root's answers folder).
    `prompt_from`: the model whose prompt it is given (loaded without weights); `db` sets the
    dialect a standalone prompt names."""
    if prompt_from:
        im = load_for_inference(prompt_from, load_weights=False)
        builder, fmt, rows = im.builder, im.schema_format, im.schema_sample_rows
    else:
        builder = endpoint_builder(dialect=dialect_of(db.replace("{db_id}", "x")) if db else None)
        fmt, rows = builder.schema.fmt, builder.schema.sample_rows
    model = OpenAIModel(
        spec,
        base_url=settings.base_url,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        concurrency=settings.concurrency,
    )
    model.cache = AnswerCache(cache_file(cache_dir or answers_folder(), model.base_url, model.name))
    return Endpoint(model, builder, fmt, rows, prompt_from)


@dataclass
class EndpointAnswers:
    """Per row: the answer's text, its SQL, whether max_tokens cut it, why it holds no SQL (or
    None); the greedy requests; with num_samples > 1 the votes; the cost summary."""

    raw: list[str]
    sql: list[str]
    cut: list[bool]
    reasons: list[str | None]
    answers: list[Answer]
    voted: list[Voted] | None
    cost: dict[str, Any]


def answer_rows(
    endpoint: Endpoint, rows: Sequence[EvalRow], settings: EvaluationConfig, progress: bool, timing: dict[str, float]
) -> EndpointAnswers:
    """Ask the endpoint every row (greedy, `max_new_tokens`), and with `num_samples` > 1 for
    num_samples - 1 sampled answers more, voted on by result as a local model's are."""
    conversations = endpoint_messages(endpoint.builder, rows)
    model = endpoint.model
    start = time.perf_counter()
    answers = model.complete_many(conversations, Decoding(max_tokens=settings.max_new_tokens), progress=progress)
    elapsed = time.perf_counter() - start
    timing["generation_seconds"] = elapsed
    timing["examples_per_second"] = len(rows) / elapsed if elapsed > 0 else 0.0
    raw = [a.text for a in answers]
    sql = [extract_sql(text) for text in raw]
    cut = [bool(a.finish_reasons) and a.finish_reasons[0] == "length" for a in answers]
    reasons = [_no_sql_reason(a, s) for a, s in zip(answers, sql)]
    voted = None
    sampled: list[Answer] = []
    if settings.num_samples > 1:
        decoding = Decoding(
            settings.max_new_tokens,
            settings.temperature,
            settings.top_p,
            settings.num_samples - 1,
            settings.sample_seed,
        )
        start = time.perf_counter()
        sampled = model.complete_many(conversations, decoding, progress=progress, desc="sampling")
        timing["sampling_seconds"] = time.perf_counter() - start
        candidates = [[s, *(extract_sql(t) for t in more.texts)] for s, more in zip(sql, sampled)]
        start = time.perf_counter()
        voted = vote_rows(
            rows,
            candidates,
            [[None] * len(c) for c in candidates],  # no likelihoods from an endpoint: the greedy one ranks first
            timeout=settings.timeout,
            max_rows=DEFAULT_MAX_ROWS,
            progress=progress,
            max_steps=settings.max_steps,
            result_match=settings.result_match,
        )
        timing["voting_seconds"] = time.perf_counter() - start
    cost = endpoint_cost(answers, settings, elapsed, extra=sampled)
    return EndpointAnswers(raw, sql, cut, reasons, answers, voted, cost)


def _no_sql_reason(answer: Answer, sql: str) -> str | None:
    """Why an answer is no query, for its error detail: withheld by a filter, empty, or prose."""
    reason = answer.finish_reasons[0] if answer.finish_reasons else None
    if reason == "content_filter":
        return "the endpoint withheld the answer (content_filter)"
    if not answer.text.strip():
        return "the endpoint answered with empty text"
    if not looks_like_sql(sql):
        text = " ".join(answer.text.split())
        shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "…"
        return f"the answer holds no SQL (prose or a refusal): {shown!r}"
    return None


def explain_wrong(scored: Sequence[ScoredExample], reasons: Sequence[str | None]) -> None:
    """Put each wrong answer's no-SQL reason before the engine's error in its error detail."""
    for example, reason in zip(scored, reasons):
        if reason and example.error and example.error not in (NO_DATABASE, GOLD_ERROR):
            detail = example.error_detail
            example.error_detail = f"{reason}; {detail}" if detail else reason
