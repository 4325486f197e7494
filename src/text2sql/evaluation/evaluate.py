"""`text2sql evaluate`: score a model (or any system's predictions) on a dataset.

    result = evaluate("bundled", "runs/x/eval", model="runs/x/adapter", split="test")
    result = evaluate("spider/dev.json", "eval/", predictions="pred.sql")

Steps: load the model with its training-time prompt settings (`inference.load_for_inference`),
read the rows (`evalset`), generate in length-sorted batches and extract the SQL, or read the
predictions file; score every row (`scoring`), teacher-forced loss for models, aggregate, and write
results.csv, predictions.jsonl, metrics.json and report.html into the output folder.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from text2sql.config import EvaluationConfig
from text2sql.errors import ConfigError, OutputExistsError
from text2sql.evaluation.aggregate import aggregate, notes
from text2sql.evaluation.evalset import EvalSet, load_eval_set
from text2sql.evaluation.scoring import ScoredExample, score_predictions

log = logging.getLogger(__name__)

_DEFAULTS = EvaluationConfig()
RESULTS_COLUMNS = (
    "input_text", "expected_sql", "predicted_sql", "sql_complexity", "exact_match", "f1_score",
    "execution_match", "valid_sql", "error", "id", "db_id", "error_detail",
)
OUTPUT_FILES = ("results.csv", "predictions.jsonl", "metrics.json", "report.html")


@dataclass
class EvaluationResult:
    output_dir: Path
    metrics: dict[str, Any]
    scored: list[ScoredExample]
    evalset: EvalSet
    report: Path
    files: dict[str, Path] = field(default_factory=dict)


def evaluate_with(
    settings: EvaluationConfig, data: str, output: str | Path, *, model: str, **overrides: Any
) -> EvaluationResult:
    """`evaluate` with a config's `evaluation` section (split, batch size, limits, backend, ...);
    `overrides` replace any of them (a tuning trial scores the validation split, quietly)."""
    options: dict[str, Any] = {
        "split": settings.split,
        "batch_size": settings.batch_size,
        "max_samples": settings.max_samples,
        "max_new_tokens": settings.max_new_tokens,
        "num_beams": settings.num_beams,
        "backend": settings.backend,
        "timeout": settings.timeout,
        "text_metrics": settings.text_metrics,
        "force": True,
    }
    return evaluate(data, output, model=model, **{**options, **overrides})


def evaluate(
    data: str,
    output: str | Path,
    *,
    model: str | None = None,
    predictions: str | Path | None = None,
    base: str | None = None,
    checkpoint: str | None = None,
    db_dir: str | None = None,
    split: str | None = None,
    batch_size: int = _DEFAULTS.batch_size,
    max_samples: int | None = _DEFAULTS.max_samples,
    max_new_tokens: int = _DEFAULTS.max_new_tokens,
    num_beams: int = _DEFAULTS.num_beams,
    backend: str = _DEFAULTS.backend,
    timeout: float = _DEFAULTS.timeout,
    text_metrics: bool = _DEFAULTS.text_metrics,
    compute_loss: bool = True,
    force: bool = False,
    progress: bool = True,
) -> EvaluationResult:
    """Evaluate `model` (a merged folder, adapter folder, base model or hub id) or a `predictions`
    file on `data` (anything `prepare` reads, or prepared data) and write the outputs to `output`.

    `split` picks the split of a multi-split source (default: test). Raises OutputExistsError when
    `output` is a non-empty folder and not `force`; ConfigError / DataError for unusable inputs.
    """
    if (model is None) == (predictions is None):
        raise ConfigError("give exactly one of --model (generate with a model) or --predictions (score a file)")
    if backend not in ("hf", "vllm"):
        raise ConfigError(f"--backend must be hf or vllm, not {backend!r}")
    if batch_size < 1 or max_new_tokens < 1 or num_beams < 1:
        raise ConfigError("--batch-size, --max-new-tokens and num_beams must be at least 1")
    out = _output_dir(output, force)
    split = split or _DEFAULTS.split
    extra_notes: list[str] = []
    timing: dict[str, float] = {}

    im = None
    if model is not None:
        from text2sql.evaluation.generate import require_vllm
        from text2sql.evaluation.inference import load_for_inference

        if backend == "vllm":
            require_vllm()
        start = time.perf_counter()
        im = load_for_inference(model, base=base, checkpoint=checkpoint, load_weights=backend == "hf")
        timing["load_seconds"] = time.perf_counter() - start
        opts = im.read_options(db_dir=db_dir)
    else:
        from text2sql.data.readers import ReadOptions

        opts = ReadOptions(db_dir=db_dir)
    evalset = load_eval_set(data, split=split, read_options=opts, max_samples=max_samples)
    rows = evalset.rows

    if im is not None:
        raw_outputs, preds = _generate(im, rows, backend, batch_size, max_new_tokens, num_beams, progress, timing)
    else:
        from text2sql.evaluation.predictions import read_predictions

        preds, raw_outputs = read_predictions(predictions, rows, limited=evalset.limited)
        extra_notes.append("loss and perplexity need a model: not computed for --predictions")

    start = time.perf_counter()
    scored = score_predictions(
        rows, preds, raw_outputs=raw_outputs, timeout=timeout,
        text_metrics=text_metrics, progress=progress,
    )
    timing["scoring_seconds"] = time.perf_counter() - start

    metrics = aggregate(scored, text_metrics=text_metrics)
    if im is not None and backend == "hf" and compute_loss:
        metrics.update(_loss(im, evalset, batch_size, progress, timing))
    elif im is not None and compute_loss:
        extra_notes.append("loss and perplexity are computed with --backend hf only")
    metrics["notes"] = extra_notes
    metrics["timing"] = timing
    if "examples_per_second" in timing:
        metrics["examples_per_second"] = timing["examples_per_second"]
    metrics["run"] = {
        "model": im.describe() if im is not None else None,
        "predictions": str(predictions) if predictions is not None else None,
        "data": evalset.describe(),
        "generation": {"backend": backend, "batch_size": batch_size, "max_new_tokens": max_new_tokens,
                       "num_beams": num_beams} if im is not None else None,
        "timeout": timeout,
    }
    files = write_outputs(out, scored, metrics)
    files["report.html"] = _report(out, metrics, scored, im, predictions, evalset, timeout)
    return EvaluationResult(out, metrics, scored, evalset, files["report.html"], files)


def _output_dir(output: str | Path, force: bool) -> Path:
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"--output {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out} already exists and is not empty; choose another --output or pass --force")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _generate(im, rows, backend, batch_size, max_new_tokens, num_beams, progress, timing) -> tuple[list[str], list[str]]:
    from text2sql.evaluation.extract import extract_sql
    from text2sql.evaluation.generate import generate_texts, generate_with_vllm

    prompts = [im.builder.prompt_text(r.question, r.schema, r.evidence) for r in rows]
    prompt_ids = im.builder.encode_prompts(prompts)
    start = time.perf_counter()
    if backend == "vllm":
        if im.kind != "decoder":
            raise ConfigError("--backend vllm serves decoder models; use --backend hf for seq2seq (T5) models")
        model_path, adapter = (im.base, im.path) if im.source == "adapter" else (im.path, None)
        if adapter is not None:
            from text2sql.models.loading import resolve_model

            model_path = resolve_model(model_path)
        raw = generate_with_vllm(model_path, prompt_ids, adapter_path=adapter, max_new_tokens=max_new_tokens, num_beams=num_beams)
    else:
        raw = generate_texts(
            im.model, im.tokenizer, im.kind, prompt_ids, batch_size=batch_size, max_new_tokens=max_new_tokens,
            num_beams=num_beams, progress=progress,
        )
    elapsed = time.perf_counter() - start
    timing["generation_seconds"] = elapsed
    timing["examples_per_second"] = len(rows) / elapsed if elapsed > 0 else 0.0
    return raw, [extract_sql(text) for text in raw]


def _loss(im, evalset: EvalSet, batch_size: int, progress: bool, timing: dict[str, float]) -> dict[str, Any]:
    from text2sql.data.prepare import tokenizer_fingerprint
    from text2sql.evaluation.loss import encode_rows, teacher_forced_loss

    start = time.perf_counter()
    use_prepared = evalset.prepared and evalset.tokenizer_fingerprint == tokenizer_fingerprint(im.tokenizer)
    encoded = encode_rows(evalset.rows, im.builder, use_prepared=use_prepared)
    pad_id = im.tokenizer.pad_token_id if im.tokenizer.pad_token_id is not None else im.tokenizer.eos_token_id
    result = teacher_forced_loss(im.model, im.kind, encoded, pad_id=pad_id, batch_size=batch_size, progress=progress)
    timing["loss_seconds"] = time.perf_counter() - start
    result["loss_labels"] = "prepared" if use_prepared else "prompt builder"
    return result


def _fmt_flag(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def write_outputs(out: Path, scored: Sequence[ScoredExample], metrics: dict[str, Any]) -> dict[str, Path]:
    """results.csv (seed 000's columns first), predictions.jsonl and metrics.json in `out`."""
    files = {name: out / name for name in OUTPUT_FILES[:3]}
    with open(files["results.csv"], "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(RESULTS_COLUMNS)
        for s in scored:
            writer.writerow([
                s.question, s.gold_sql, s.predicted_sql, s.complexity, s.exact_match, round(s.f1_score, 6),
                _fmt_flag(s.execution_match), _fmt_flag(s.valid_sql), s.error, s.id, s.db_id or "", s.error_detail,
            ])
    with open(files["predictions.jsonl"], "w", encoding="utf-8") as f:
        for s in scored:
            f.write(json.dumps(s.to_dict(), ensure_ascii=False) + "\n")
    files["metrics.json"].write_text(json.dumps(metrics, indent=2, default=str), encoding="utf-8")
    return files


def _report(out, metrics, scored, im, predictions, evalset: EvalSet, timeout: float) -> Path:
    from text2sql.evaluation.report import render_report

    generation = metrics["run"]["generation"]
    info = {
        "subject_label": "model" if im is not None else "predictions",
        "subject": im.spec if im is not None else str(predictions),
        "model_path": im.path if im is not None else None,
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

    header = f"{'':<16}{'rows':>7}{'exec':>7}{'EX %':>7}{'EM %':>7}{'F1 %':>7}{'valid %':>9}"
    lines = [header]

    def line(label: str, g: dict[str, Any]) -> str:
        return (f"{label[:15]:<16}{g['num_examples']:>7,}{g['num_execution_scored']:>7,}{pct(g['execution_accuracy']):>7}"
                f"{pct(g['exact_match']):>7}{pct(g['f1_score']):>7}{pct(g['valid_sql_rate']):>9}")

    lines.append(line("all", metrics))
    for label, group in metrics["by_complexity"].items():
        lines.append(line(f"  {label}", group))
    if metrics.get("loss") is not None:
        lines.append(f"loss {metrics['loss']:.4f}, perplexity {metrics['perplexity']:.3f}")
    if metrics.get("bleu") is not None:
        lines.append(f"BLEU-4 {metrics['bleu'] * 100:.1f}, ROUGE-L {metrics['rouge_l'] * 100:.1f}")
    if metrics.get("error_counts"):
        lines.append("errors: " + ", ".join(f"{k} {v:,}" for k, v in metrics["error_counts"].items()))
    lines.extend(f"note: {n}" for n in notes(metrics))
    return "\n".join(lines)


def format_samples(scored: Sequence[ScoredExample], n: int) -> str:
    """The first `n` examples, question / gold / predicted / verdict (seed 001's --num-examples)."""
    blocks = []
    for s in scored[:n]:
        verdict = "correct" if s.correct else (s.error or "wrong")
        blocks.append(f"[{s.id}] {s.question}\n  gold: {s.gold_sql}\n  pred: {s.predicted_sql}\n  -> {verdict}")
    return "\n".join(blocks)
