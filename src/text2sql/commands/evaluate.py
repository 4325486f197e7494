"""`text2sql evaluate --model M --data D --output DIR`: score a model (or another system's SQL); an
output that already holds the same evaluation is skipped."""

from __future__ import annotations

import argparse

from text2sql.commands.common import MODEL_HELP, add_threads_argument
from text2sql.config import EvaluationConfig, add_section_flags

HELP = "score a model or predictions: exact match, token F1, execution accuracy"

# The evaluation settings a flag sets; every other field of EvaluationConfig concerns `text2sql run`.
FIELDS = (
    "split",
    "batch_size",
    "max_samples",
    "max_new_tokens",
    "num_beams",
    "num_samples",
    "temperature",
    "top_p",
    "sample_seed",
    "backend",
    "timeout",
    "max_steps",
    "result_match",
    "efficiency_runs",
    "exclude_unstable_gold",
    "text_metrics",
    "base_url",
    "concurrency",
    "max_retries",
    "request_timeout",
    "price_per_hour",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--model",
        metavar="M",
        help=MODEL_HELP,
    )
    what.add_argument(
        "--predictions",
        metavar="FILE",
        help="score another system's SQL without a model: a text file with one SQL per line in the data's "
        "order, or JSONL with an id and the SQL",
    )
    p.add_argument(
        "--data",
        required=True,
        metavar="D",
        help="anything 'prepare' reads ('bundled', a CSV, Spider dev.json, ...) or prepared data",
    )
    p.add_argument(
        "--output",
        required=True,
        metavar="DIR",
        help="folder for results.csv, predictions.jsonl, metrics.json, report.html",
    )
    p.add_argument(
        "--db",
        metavar="DB",
        help="one database for every row that names none: a SQLite or DuckDB file or a postgresql:// URL "
        "(with {db_id} in it: one per db_id)",
    )
    p.add_argument("--db-dir", help="folder holding <db_id>/<db_id>.sqlite databases")
    p.add_argument("--base", help="adapters: base model to load instead of the one the adapter records")
    p.add_argument("--checkpoint", help="a checkpoint folder inside or beside --model, e.g. checkpoint-500")
    p.add_argument(
        "--prompt-from",
        metavar="M",
        help="with --model openai:NAME: ask the endpoint with this fine-tuned model's prompt (its prompt settings, "
        "schema format and token budget); default: the default prompt with whole schemas",
    )
    add_section_flags(p, EvaluationConfig, FIELDS)
    p.add_argument("--no-loss", action="store_true", help="skip the teacher-forced loss / perplexity pass")
    p.add_argument("--num-examples", type=int, default=5, metavar="N", help="print N sample outputs (default 5)")
    p.add_argument("--force", action="store_true", help="evaluate again, replacing what --output holds")
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from text2sql.evaluation.evaluate import evaluate, format_samples, format_summary

    # Flags not given leave the model's own generation settings (its run's) and the defaults alone;
    # evaluate() checks the values given.
    given = {name: getattr(args, name) for name in FIELDS if getattr(args, name) is not None}
    result = evaluate(
        args.data,
        args.output,
        model=args.model,
        predictions=args.predictions,
        base=args.base,
        checkpoint=args.checkpoint,
        db_dir=args.db_dir,
        db=args.db,
        compute_loss=not args.no_loss,
        force=args.force,
        threads=args.threads,
        prompt_from=args.prompt_from,
        **given,
    )
    if result.skipped:
        print(f"evaluation up to date, skipped: {result.output_dir} (--force evaluates again)")
    if args.num_examples > 0:
        print(format_samples(result.scored, args.num_examples))
        print()
    print(format_summary(result.metrics))
    print(f"report: {result.report}")
    return 0
