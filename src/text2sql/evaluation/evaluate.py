"""`text2sql evaluate`: score a model (or any system's predictions) on a dataset.

    result = evaluate("bundled", "runs/x/eval", model="runs/x/adapter", settings=cfg.evaluation)
    result = evaluate("spider/dev.json", "eval/", predictions="pred.sql", max_samples=100)
    result = evaluate("bundled", "eval/", model="openai:gpt-4o-mini", prompt_from="runs/x/merged")

Steps: load the model with its training-time prompt settings (`inference.load_for_inference`),
read the rows (`evalset`), generate in length-sorted batches and extract the SQL, or read the
predictions file; score every row (`scoring`), teacher-forced loss for models, aggregate, and write
results.csv, predictions.jsonl, metrics.json and report.html into the output folder, a stage
folder with its `stage.json` record (an unchanged evaluation is skipped). An `openai:NAME` model is
an endpoint (`remote`): asked the same messages, its SQL scored by the same code. Every model's
latency, tokens and cost per 1,000 questions go into metrics.json (`cost`).
"""

from __future__ import annotations

import csv
import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from text2sql.config import Config, EvaluationConfig
from text2sql.data.readers import ReadOptions
from text2sql.data.tokenizer_identity import tokenizer_fingerprint
from text2sql.errors import ConfigError, OutputExistsError
from text2sql.evaluation.aggregate import aggregate, notes
from text2sql.evaluation.cost import format_cost, local_cost
from text2sql.evaluation.efficiency import r_ves
from text2sql.evaluation.evalset import EvalSet, load_eval_set
from text2sql.evaluation.gold_audit import UNSTABLE, audit_rows, audit_summary
from text2sql.evaluation.loss import encode_rows, teacher_forced_loss
from text2sql.evaluation.predictions import read_predictions
from text2sql.evaluation.remote import Endpoint, answer_rows, explain_wrong, open_endpoint
from text2sql.evaluation.report import render_report, shorten
from text2sql.evaluation.sampling import Voted, candidate_sql, sample, sampling_summary, vote_rows
from text2sql.evaluation.scoring import ScoredExample, score_predictions
from text2sql.inference.loading import find_run_config, load_for_inference, resolve_model_folder
from text2sql.inference.openai_model import is_endpoint
from text2sql.inference.vllm import require_vllm
from text2sql.rundir import StageFolder, identity_of
from text2sql.sql.extract import extract_sql
from text2sql.sql.results import DEFAULT_MAX_ROWS
from text2sql.threads import following

log = logging.getLogger(__name__)

RESULTS_COLUMNS = (
    "input_text",
    "expected_sql",
    "predicted_sql",
    "sql_complexity",
    "exact_match",
    "f1_score",
    "execution_match",
    "valid_sql",
    "error",
    "id",
    "db_id",
    "error_detail",
)
OUTPUT_FILES = ("results.csv", "predictions.jsonl", "metrics.json", "report.html")


@dataclass
class EvaluationResult:
    """What an evaluation wrote (or found up to date: `skipped`, and then `evalset` is None)."""

    output_dir: Path
    metrics: dict[str, Any]
    scored: list[ScoredExample]
    evalset: EvalSet | None
    report: Path
    files: dict[str, Path] = field(default_factory=dict)
    skipped: bool = False


# What a model's own run decided about generation, used when evaluating it alone (`saved_settings`).
GENERATION_FIELDS = ("max_new_tokens", "num_beams")
# Settings of endpoints only: a local model's evaluation does not depend on them.
ENDPOINT_FIELDS = ("base_url", "concurrency", "max_retries", "request_timeout", "price_per_1m_tokens")
# Settings that never change what an evaluation scores or records (`reference` is the run's choice of
# a second model; concurrency changes speed only).
UNRECORDED_FIELDS = ("reference", "concurrency")


def saved_settings(model: str, checkpoint: str | None = None) -> EvaluationConfig | None:
    """The defaults with the generation settings of the run that trained `model` (its saved config),
    so that evaluating a model alone scores what its run scored; None for a model without one."""
    try:
        cfg = find_run_config(resolve_model_folder(model, checkpoint))
    except ConfigError:
        return None  # load_for_inference reports the problem with the spec
    if cfg is None:
        return None
    return EvaluationConfig(**{name: getattr(cfg.evaluation, name) for name in GENERATION_FIELDS})


def settings_with(settings: EvaluationConfig | None, overrides: dict[str, Any]) -> EvaluationConfig:
    """`settings` (default: the defaults) with some fields replaced, validated: ConfigError names a bad one."""
    base = settings or EvaluationConfig()
    if not overrides:
        return base
    unknown = sorted(set(overrides) - set(EvaluationConfig.model_fields))
    if unknown:
        raise TypeError(f"evaluate() got unknown evaluation settings: {', '.join(unknown)}")
    try:
        return EvaluationConfig.model_validate({**base.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(f"evaluation.{'.'.join(map(str, e['loc']))}: {e['msg'].lower()}" for e in exc.errors())
        raise ConfigError(f"invalid evaluation setting: {problems}") from None


def evaluation_depends_on(
    data: str,
    settings: EvaluationConfig,
    *,
    model: str | None,
    predictions: str | Path | None,
    base: str | None,
    checkpoint: str | None,
    db_dir: str | None,
    compute_loss: bool,
    db: str | None = None,
    prompt_from: str | None = None,
) -> dict[str, Any]:
    """What an evaluation's outputs depend on: the model (the fingerprint of a trained one, else its
    files or its name) or the predictions file, the data, and the settings that concern it (an
    endpoint's: also its base URL, retries, timeout and token price, and the model it takes its
    prompt from; a local model's: not those, and its hourly price only when set)."""
    skip = set(UNRECORDED_FIELDS)
    if not is_endpoint(model):
        skip.update(ENDPOINT_FIELDS)
        if settings.price_per_hour is None:
            skip.add("price_per_hour")
    else:
        skip.add("price_per_hour")
    depends_on: dict[str, Any] = {
        "model": identity_of(model) if model is not None else None,
        "data": identity_of(data),
        "evaluation": settings.model_dump(mode="json", exclude=skip),
    }
    if prompt_from is not None:
        depends_on["prompt_from"] = identity_of(prompt_from)
    if predictions is not None:
        depends_on["predictions"] = identity_of(predictions)
    options = {"base": base, "checkpoint": checkpoint, "db_dir": db_dir, "db": identity_of(db) if db else None}
    depends_on.update({k: v for k, v in options.items() if v is not None})
    if not compute_loss:
        depends_on["loss"] = False
    return depends_on


def evaluate(
    data: str,
    output: str | Path,
    *,
    model: str | None = None,
    predictions: str | Path | None = None,
    settings: EvaluationConfig | None = None,
    base: str | None = None,
    checkpoint: str | None = None,
    db_dir: str | None = None,
    db: str | None = None,
    compute_loss: bool = True,
    force: bool = False,
    progress: bool = True,
    run_config: Config | None = None,
    threads: int | None = None,
    prompt_from: str | None = None,
    answer_cache: str | Path | None = None,
    **overrides: Any,
) -> EvaluationResult:
    """Evaluate `model` (a merged folder, adapter folder, base model or hub id) or a `predictions`
    file on `data` (anything `prepare` reads, or prepared data) and write the outputs to `output`.

    `settings` is a config's `evaluation` section (split, batch size, limits, backend, ...); without
    it, a model's own run decides the generation settings (`saved_settings`). Keyword `overrides`
    replace any field (`max_samples=10`). `threads`: torch's CPU threads (see `text2sql.threads`). The output folder is a stage: when it
    already holds this same evaluation (same model, data and settings) nothing runs and the result
    says `skipped`; one made from other inputs is refused (OutputExistsError) unless `force`, as is
    a non-empty folder that is no evaluation. `run_config` (a run's evaluation stage) is saved beside
    the outputs. ConfigError / DataError for unusable inputs.

    `model` may be an endpoint, `openai:NAME` (settings: base_url, concurrency, max_retries,
    request_timeout, price_per_1m_tokens): it is asked with the prompt settings and token budget of
    the model `prompt_from` when given, else with the defaults and whole schemas; its answers are
    kept under `answer_cache` (default: the cache root). EndpointError when it cannot answer.
    """
    if settings is None and model is not None and not is_endpoint(model):
        settings = saved_settings(model, checkpoint)
    settings = settings_with(settings, overrides)
    if (model is None) == (predictions is None):
        raise ConfigError("give exactly one of --model (generate with a model) or --predictions (score a file)")
    out = _output_folder(output)
    stage = StageFolder(out, "evaluation")
    depends_on = evaluation_depends_on(
        data,
        settings,
        model=model,
        predictions=predictions,
        base=base,
        checkpoint=checkpoint,
        db_dir=db_dir,
        compute_loss=compute_loss,
        db=db,
        prompt_from=prompt_from if is_endpoint(model) else None,
    )
    if not stage.guard(depends_on, force):
        return _up_to_date(out)

    # The phases: open what answers, read and audit the rows, answer, score, measure, write.
    timing: dict[str, float] = {}
    if threads is None and run_config is not None and run_config.model.threads > 0:
        threads = run_config.model.threads  # the run's --threads, for a base model without a config of its own
    subject = _open_subject(model, settings, timing, base=base, checkpoint=checkpoint, threads=threads,
                            prompt_from=prompt_from, db=db, answer_cache=answer_cache)  # fmt: skip
    rows = _audited_rows(data, subject.read_options(db_dir=db_dir, db=db), settings, timing)
    if subject.endpoint is not None:
        answers = _endpoint_answers(subject.endpoint, rows.evalset.rows, settings, progress, timing)
    elif subject.im is not None:
        answers = _model_answers(subject.im, rows.evalset.rows, settings, progress, timing, threads)
    else:
        assert predictions is not None  # exactly one of model and predictions, checked above
        answers = _file_answers(predictions, rows)
    scored = _score(rows.evalset.rows, answers, settings, progress, timing)
    metrics = _metrics(scored, answers, rows, subject, settings, progress, timing, compute_loss, threads)
    metrics["run"] = _run_record(subject, predictions, rows.evalset, settings)
    described = subject.endpoint or subject.im
    if stage.record() is None and out.is_dir() and any(out.iterdir()):
        # --force on a folder that holds other things than an evaluation: add the outputs beside them.
        _write_all(out, scored, metrics, described, predictions, rows.evalset, settings.timeout)
        stage.write_record(out, depends_on, cfg=run_config)
    else:
        with stage.staging() as staged:
            _write_all(staged, scored, metrics, described, predictions, rows.evalset, settings.timeout)
            stage.commit(staged, depends_on, cfg=run_config)
    files = {name: out / name for name in OUTPUT_FILES}
    return EvaluationResult(out, metrics, scored, rows.evalset, files["report.html"], files)


def _output_folder(output: str | Path) -> Path:
    """The output folder, refused when it is a file or holds the current folder."""
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--output {out} is a file; give a folder")
    here = Path.cwd().resolve()
    if out.resolve() == here or out.resolve() in here.parents:
        raise OutputExistsError(f"--output {out} holds the current folder; give a folder of its own for the results")
    return out


@dataclass
class _Subject:
    """What answers the questions: an endpoint, a loaded model, or neither (a predictions file)."""

    endpoint: Endpoint | None = None
    im: Any = None

    def read_options(self, *, db_dir: str | None, db: str | None) -> ReadOptions:
        if self.endpoint is not None:
            return self.endpoint.read_options(db_dir=db_dir, db=db)
        if self.im is not None:
            return self.im.read_options(db_dir=db_dir, db=db)
        return ReadOptions(db_dir=db_dir, db=db)


def _open_subject(
    model: str | None,
    settings: EvaluationConfig,
    timing: dict[str, float],
    *,
    base: str | None,
    checkpoint: str | None,
    threads: int | None,
    prompt_from: str | None,
    db: str | None,
    answer_cache: str | Path | None,
) -> _Subject:
    if model is None:
        return _Subject()
    if is_endpoint(model):
        return _Subject(endpoint=open_endpoint(model, settings, prompt_from=prompt_from, db=db, cache_dir=answer_cache))
    if settings.backend == "vllm":
        require_vllm()
    start = time.perf_counter()
    im = load_for_inference(
        model, base=base, checkpoint=checkpoint, load_weights=settings.backend == "hf", threads=threads
    )
    timing["load_seconds"] = time.perf_counter() - start
    return _Subject(im=im)


@dataclass
class _Rows:
    """The evaluation set after the gold audit: `evalset.rows` are the rows scored, `all_rows` the
    rows read (unstable gold included), `unstable` the indices of rows whose gold is unstable."""

    evalset: EvalSet
    all_rows: list[Any]
    audit: dict[int, Any]
    unstable: set[int]
    audited_ids: list[Any]


def _audited_rows(data: str, opts: ReadOptions, settings: EvaluationConfig, timing: dict[str, float]) -> _Rows:
    evalset = load_eval_set(data, split=settings.split, read_options=opts, max_samples=settings.max_samples)
    start = time.perf_counter()
    audit = audit_rows(evalset.rows, timeout=settings.timeout)
    audited_ids = [r.id for r in evalset.rows]
    timing["gold_audit_seconds"] = time.perf_counter() - start
    unstable = {i for i, issues in audit.items() if any(issue.kind in UNSTABLE for issue in issues)}
    all_rows = evalset.rows
    if settings.exclude_unstable_gold and unstable:
        evalset.rows = [r for i, r in enumerate(all_rows) if i not in unstable]
    return _Rows(evalset, all_rows, audit, unstable, audited_ids)


@dataclass
class _Answers:
    """Every row's answer, and what came with it."""

    raw: list[str | None]
    sql: list[str]
    cut: list[bool] | None = None
    too_long: list[str | None] | None = None
    voted: list[Voted] | None = None
    reasons: list[str | None] | None = None
    cost: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def _endpoint_answers(endpoint: Endpoint, rows, settings: EvaluationConfig, progress: bool, timing) -> _Answers:
    asked = answer_rows(endpoint, rows, settings, progress, timing)
    return _Answers(
        list(asked.raw),
        asked.sql,
        cut=asked.cut,
        voted=asked.voted,
        reasons=asked.reasons,
        cost=asked.cost,
        notes=["loss and perplexity need a local model's weights: not computed for an endpoint"],
    )


def _model_answers(im, rows, settings: EvaluationConfig, progress: bool, timing, threads: int | None) -> _Answers:
    voted = None
    with following(im.model, _thread_setting(threads, im)):  # threads follow the machine between steps
        generated = _generate(im, rows, settings, progress, timing)
        if settings.num_samples > 1:
            voted = _vote(im, rows, generated, settings, progress, timing)
    cost = local_cost(
        settings,
        sum(1 for ids in generated.prompts if ids is not None),
        timing["generation_seconds"] + timing.get("sampling_seconds", 0.0),
        sum(len(ids) for ids in generated.prompts if ids is not None),
        int(timing["generated_tokens"] + timing.get("sampled_tokens", 0)),
    )
    return _Answers(
        list(generated.raw), generated.sql, cut=generated.cut, too_long=generated.too_long, voted=voted, cost=cost
    )


def _file_answers(predictions: str | Path, rows: _Rows) -> _Answers:
    # A predictions file follows the data's rows, unstable ones included.
    preds, raw_outputs = read_predictions(predictions, rows.all_rows, limited=rows.evalset.limited)
    if len(rows.evalset.rows) < len(rows.all_rows):
        kept = [i for i in range(len(rows.all_rows)) if i not in rows.unstable]
        preds, raw_outputs = [preds[i] for i in kept], [raw_outputs[i] for i in kept]
    return _Answers(raw_outputs, preds, notes=["loss and perplexity need a model: not computed for --predictions"])


def _score(rows, answers: _Answers, settings: EvaluationConfig, progress: bool, timing) -> list[ScoredExample]:
    start = time.perf_counter()
    scored = score_predictions(
        rows,
        answers.sql,
        raw_outputs=answers.raw,
        cut=answers.cut,
        too_long=answers.too_long,
        voted=answers.voted,
        timeout=settings.timeout,
        text_metrics=settings.text_metrics,
        progress=progress,
        max_steps=settings.max_steps,
        result_match=settings.result_match,
    )
    timing["scoring_seconds"] = time.perf_counter() - start
    if answers.reasons is not None:
        explain_wrong(scored, answers.reasons)
    return scored


def _metrics(
    scored: list[ScoredExample],
    answers: _Answers,
    rows: _Rows,
    subject: _Subject,
    settings: EvaluationConfig,
    progress: bool,
    timing: dict[str, float],
    compute_loss: bool,
    threads: int | None,
) -> dict[str, Any]:
    """The aggregate metrics, with sampling, efficiency, loss, the gold audit, cost and timing."""
    metrics = aggregate(scored, text_metrics=settings.text_metrics)
    evaluated = rows.evalset.rows
    extra_notes = list(answers.notes)
    if answers.voted is not None:
        metrics["sampling"] = sampling_summary(settings, timing, answers.voted, len(evaluated))
    if settings.efficiency_runs:
        start = time.perf_counter()
        metrics["efficiency"] = r_ves(
            evaluated, scored, settings.efficiency_runs, timeout=settings.timeout, progress=progress
        )
        metrics["r_ves"] = metrics["efficiency"]["r_ves"]
        timing["efficiency_seconds"] = time.perf_counter() - start
    im = subject.im
    if im is not None and settings.backend == "hf" and compute_loss:
        with following(im.model, _thread_setting(threads, im)):
            metrics.update(_loss(im, rows.evalset, settings.batch_size, progress, timing, settings.loss_samples))
    elif im is not None and compute_loss:
        extra_notes.append("loss and perplexity are computed with --backend hf only")
    metrics["gold_audit"] = audit_summary(
        rows.audit, rows.unstable, rows.audited_ids, excluded=settings.exclude_unstable_gold
    )
    metrics["notes"] = extra_notes
    if answers.cost is not None:
        metrics["cost"] = answers.cost
    metrics["timing"] = timing
    if "examples_per_second" in timing:
        metrics["examples_per_second"] = timing["examples_per_second"]
    return metrics


def _run_record(subject: _Subject, predictions, evalset: EvalSet, settings: EvaluationConfig) -> dict[str, Any]:
    """What was evaluated, on what, and how (metrics.json's `run`)."""
    described = subject.endpoint or subject.im
    if subject.im is not None:
        generation: dict[str, Any] | None = {
            "backend": settings.backend,
            "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens,
            "num_beams": settings.num_beams,
        }
    elif subject.endpoint is not None:
        generation = {
            "backend": "openai",
            "max_new_tokens": settings.max_new_tokens,
            "concurrency": settings.concurrency,
        }
    else:
        generation = None
    return {
        "model": described.describe() if described is not None else None,
        "predictions": str(predictions) if predictions is not None else None,
        "data": evalset.describe(),
        "generation": generation,
        "timeout": settings.timeout,
        # Which budget stopped queries: SQLite steps (the same on every machine) or wall-clock seconds.
        "step_budget": settings.max_steps,
        "result_match": settings.result_match,
    }


def _thread_setting(threads: int | None, im) -> int:
    """The thread count asked for: `threads`, else the model's own run's model.threads (0: follow the machine)."""
    if threads is not None:
        return threads
    return im.config.model.threads if im.config is not None else 0


def _write_all(folder: Path, scored, metrics, im, predictions, evalset: EvalSet, timeout: float) -> None:
    write_outputs(folder, scored, metrics)
    _report(folder, metrics, scored, im, predictions, evalset, timeout)


def _up_to_date(out: Path) -> EvaluationResult:
    """The result an earlier run of the same evaluation wrote."""
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    with open(out / "predictions.jsonl", encoding="utf-8") as f:
        scored = [ScoredExample(**json.loads(line)) for line in f if line.strip()]
    files = {name: out / name for name in OUTPUT_FILES}
    return EvaluationResult(out, metrics, scored, None, files["report.html"], files, skipped=True)


@dataclass
class _Generated:
    raw: list[str]  # the model's answers
    sql: list[str]  # their SQL
    cut: list[bool]  # answers cut by max_new_tokens before they ended
    too_long: list[str | None]  # why a row was not asked (prompt over budget), or None
    prompts: list[list[int] | None]  # the prompt ids of rows that were asked
    logprobs: list[float | None]  # the greedy answers' log-likelihoods, when candidates are voted on


def _generate(im, rows, settings: EvaluationConfig, progress: bool, timing: dict[str, float]) -> _Generated:
    """The greedy answer of every row whose prompt fits its budget (with its schema pruned)."""
    if settings.num_samples > 1 and settings.backend != "hf":
        raise ConfigError("evaluation.num_samples > 1 needs --backend hf (candidates are ranked by likelihood)")
    fitted = im.builder.fit(rows)
    asked = [i for i, f in enumerate(fitted) if f.fits]
    budget = im.builder.schema.budget
    too_long: list[str | None] = [
        None
        if f.fits
        else f"the prompt is {len(f.ids)} tokens, over the budget of {budget} even with the schema pruned; "
        "raise data.max_prompt_tokens (or data.max_length) and retrain"
        for f in fitted
    ]
    generator = im.generator(settings.backend)
    extra = {"with_logprobs": True} if settings.num_samples > 1 else {}
    start = time.perf_counter()
    outputs = generator.generate(
        [fitted[i].ids for i in asked],
        settings.max_new_tokens,
        batch_size=settings.batch_size,
        num_beams=settings.num_beams,
        progress=progress,
        **extra,
    )
    elapsed = time.perf_counter() - start
    n = len(rows)
    out = _Generated([""] * n, [], [False] * n, too_long, [None] * n, [None] * n)
    for i, output in zip(asked, outputs):
        out.raw[i], out.cut[i], out.logprobs[i] = generator.decode(output), not output.hit_eos, output.logprob
        out.prompts[i] = fitted[i].ids
    out.sql = [extract_sql(text) for text in out.raw]
    timing["generation_seconds"] = elapsed
    timing["examples_per_second"] = len(asked) / elapsed if elapsed > 0 else 0.0
    timing["generated_tokens"] = sum(len(o.token_ids) for o in outputs)
    return out


def _vote(im, rows, generated: _Generated, settings: EvaluationConfig, progress: bool, timing) -> list[Voted]:
    """num_samples candidates per asked row (the greedy one first), voted on by their results."""
    asked = [i for i, ids in enumerate(generated.prompts) if ids is not None]
    generator = im.generator(settings.backend)
    prompts = [ids for ids in generated.prompts if ids is not None]
    sampled, seconds = sample(generator, prompts, settings, progress=progress)
    timing["sampling_seconds"] = seconds
    timing["sampled_tokens"] = sum(len(o.token_ids) for outs in sampled for o in outs)
    candidates: list[list[str]] = [[] for _ in rows]
    scores: list[list[float | None]] = [[] for _ in rows]
    for i, outs in zip(asked, sampled):
        candidates[i] = candidate_sql([generated.sql[i]], [outs], generator.decode)[0]
        scores[i] = [generated.logprobs[i], *(o.logprob for o in outs)]
    start = time.perf_counter()
    voted = vote_rows(
        rows,
        candidates,
        scores,
        timeout=settings.timeout,
        max_rows=DEFAULT_MAX_ROWS,
        progress=progress,
        max_steps=settings.max_steps,
        result_match=settings.result_match,
    )
    timing["voting_seconds"] = time.perf_counter() - start
    return voted


def _loss(
    im, evalset: EvalSet, batch_size: int, progress: bool, timing: dict[str, float], samples: int | None = None
) -> dict[str, Any]:
    start = time.perf_counter()
    use_prepared = evalset.prepared and evalset.tokenizer_fingerprint == tokenizer_fingerprint(im.tokenizer)
    rows = list(evalset.rows)
    if samples is not None and len(rows) > samples:  # evaluation.loss_samples: a seeded sample
        rows = random.Random(0).sample(rows, samples)
    encoded = encode_rows(rows, im.builder, use_prepared=use_prepared)
    if im.config is not None:  # rows longer than training allowed are scored, but not teacher-forced
        d = im.config.data
        limit = d.max_source_length if im.kind == "seq2seq" else d.max_length
        encoded = [pair for pair in encoded if len(pair[0]) <= limit]
    pad_id = im.tokenizer.pad_token_id if im.tokenizer.pad_token_id is not None else im.tokenizer.eos_token_id
    result = teacher_forced_loss(im.model, im.kind, encoded, pad_id=pad_id, batch_size=batch_size, progress=progress)
    timing["loss_seconds"] = time.perf_counter() - start
    result["loss_labels"] = "prepared" if use_prepared else "prompt builder"
    result["loss_rows"] = len(encoded)
    return result


def _fmt_flag(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def write_outputs(out: Path, scored: Sequence[ScoredExample], metrics: dict[str, Any]) -> dict[str, Path]:
    """results.csv (the classic input_text/expected_sql/predicted_sql/... columns first), predictions.jsonl and metrics.json in `out`."""
    files = {name: out / name for name in OUTPUT_FILES[:3]}
    with open(files["results.csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(RESULTS_COLUMNS)
        for s in scored:
            writer.writerow(
                [
                    s.question,
                    s.gold_sql,
                    s.predicted_sql,
                    s.complexity,
                    s.exact_match,
                    round(s.f1_score, 6),
                    _fmt_flag(s.execution_match),
                    _fmt_flag(s.valid_sql),
                    s.error,
                    s.id,
                    s.db_id or "",
                    s.error_detail,
                ]
            )
    with open(files["predictions.jsonl"], "w", encoding="utf-8") as f:
        for s in scored:
            f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
    files["metrics.json"].write_text(json.dumps(metrics, indent=2, default=str), encoding="utf-8")
    return files


def _report(out, metrics, scored, im, predictions, evalset: EvalSet, timeout: float) -> Path:
    generation = metrics["run"]["generation"]
    info = {
        "subject_label": "predictions" if im is None else "endpoint" if isinstance(im, Endpoint) else "model",
        "subject": im.spec if im is not None else str(predictions),
        "model_path": getattr(im, "path", None),
        "data": evalset.source,
        "split": evalset.split if not Path(evalset.source).is_file() else None,
        "generation": ", ".join(f"{k}={v}" for k, v in generation.items()) if generation else None,
        "timeout": f"{timeout:g}",
        "complexity_source": evalset.complexity_source,
    }
    return render_report(metrics, scored, out / "report.html", info=info)


# ------------------------------------------------------------------------------------ terminal


def format_summary(metrics: dict[str, Any]) -> str:
    """A short table for the terminal: overall, then one line per complexity label."""

    def pct(value: float | None) -> str:
        return "  n/a" if value is None else f"{value * 100:5.1f}"

    k = (metrics.get("sampling") or {}).get("num_samples")
    voting = f"{f'maj@{k} %':>9}{f'pass@{k} %':>10}" if k else ""
    header = f"{'':<16}{'rows':>7}{'exec':>7}{'EX %':>7}{'EM %':>7}{'F1 %':>7}{'valid %':>9}{voting}"
    lines = [header]

    def line(label: str, g: dict[str, Any]) -> str:
        text = (
            f"{label[:15]:<16}{g['num_examples']:>7,}{g['num_execution_scored']:>7,}{pct(g['execution_accuracy']):>7}"
            f"{pct(g['exact_match']):>7}{pct(g['f1_score']):>7}{pct(g['valid_sql_rate']):>9}"
        )
        return text + (f"{pct(g.get('maj_at_k')):>9}{pct(g.get('pass_at_k')):>10}" if k else "")

    lines.append(line("all", metrics))
    for label, group in metrics["by_complexity"].items():
        lines.append(line(f"  {label}", group))
    extras = []
    if metrics.get("exact_set_match") is not None:
        extras.append(f"Spider exact-set match {pct(metrics['exact_set_match']).strip()} %")
    if metrics.get("r_ves") is not None:
        extras.append(f"R-VES {pct(metrics['r_ves']).strip()} % ({metrics['efficiency']['runs']} timed runs)")
    if extras:
        lines.append(", ".join(extras))
    if metrics.get("loss") is not None:
        lines.append(f"loss {metrics['loss']:.4f}, perplexity {metrics['perplexity']:.3f}")
    if metrics.get("bleu") is not None:
        lines.append(f"BLEU-4 {metrics['bleu'] * 100:.1f}, ROUGE-L {metrics['rouge_l'] * 100:.1f}")
    if k:
        c = metrics["sampling"]
        lines.append(
            f"{k} candidates per question (temperature {c['temperature']}, top-p {c['top_p']}): "
            f"{c['seconds_per_question']:.3f} s and {c['tokens_per_question']:.0f} tokens per question "
            f"(greedy alone: {c['greedy_seconds_per_question']:.3f} s, {c['greedy_tokens_per_question']:.0f} tokens)"
        )
    if metrics.get("cost") and format_cost(metrics["cost"]):
        lines.append(f"cost: {format_cost(metrics['cost'])}")
    if metrics.get("error_counts"):
        lines.append("errors: " + ", ".join(f"{k} {v:,}" for k, v in metrics["error_counts"].items()))
    lines.extend(f"note: {n}" for n in notes(metrics))
    return "\n".join(lines)


def format_samples(scored: Sequence[ScoredExample], n: int) -> str:
    """The first `n` examples, question / gold / predicted / verdict (`--num-examples`)."""
    blocks = []
    for s in scored[:n]:
        verdict = "correct" if s.correct else (s.error or "wrong")
        blocks.append(
            f"[{s.id}] {s.question}\n  gold: {s.gold_sql}\n  pred: {shorten(s.predicted_sql)}\n  -> {verdict}"
        )
    return "\n".join(blocks)
