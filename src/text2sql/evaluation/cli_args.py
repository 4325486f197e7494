"""Arguments and terminal output of `text2sql evaluate` and `text2sql compare` (cli.py stays thin)."""

from __future__ import annotations

import argparse
from pathlib import Path

from text2sql.config import EvaluationConfig

_D = EvaluationConfig()


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--model", metavar="M",
        help="a merged model folder, an adapter folder (base + adapter), a run folder, a base model folder, "
        "a hub id, or tiny:<arch>",
    )
    what.add_argument(
        "--predictions", metavar="FILE",
        help="score another system's SQL without a model: a text file with one SQL per line in the data's "
        "order, or JSONL with an id and the SQL",
    )
    p.add_argument("--data", required=True, metavar="D", help="anything 'prepare' reads ('bundled', a CSV, Spider dev.json, ...) or prepared data")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for results.csv, predictions.jsonl, metrics.json, report.html")
    p.add_argument("--split", help=f"split of a multi-split source or prepared DatasetDict (default: {_D.split})")
    p.add_argument("--db-dir", help="folder holding <db_id>/<db_id>.sqlite databases")
    p.add_argument("--base", help="adapters: base model to load instead of the one the adapter records")
    p.add_argument("--checkpoint", help="a checkpoint folder inside or beside --model, e.g. checkpoint-500 (seed 001)")
    p.add_argument("--batch-size", type=int, default=_D.batch_size, help="prompts generated per batch")
    p.add_argument("--max-samples", type=int, default=None, metavar="N", help="evaluate only the first N rows")
    p.add_argument("--max-new-tokens", type=int, default=_D.max_new_tokens, help="longest answer generated, in tokens")
    p.add_argument("--num-beams", type=int, default=_D.num_beams, help="beam width (1: greedy)")
    p.add_argument("--backend", choices=("hf", "vllm"), default=_D.backend, help="generation backend")
    p.add_argument("--timeout", type=float, default=_D.timeout, help="seconds one SQL query may run")
    p.add_argument("--text-metrics", action="store_true", help="also compute BLEU-4 and ROUGE-L on the SQL text")
    p.add_argument("--no-loss", action="store_true", help="skip the teacher-forced loss / perplexity pass")
    p.add_argument("--num-examples", type=int, default=5, metavar="N", help="print N sample outputs (default 5)")
    p.add_argument("--force", action="store_true", help="write into a non-empty --output folder")


def run_evaluate(args: argparse.Namespace) -> int:
    from text2sql.evaluation.evaluate import evaluate, format_samples, format_summary

    result = evaluate(
        args.data, args.output, model=args.model, predictions=args.predictions, base=args.base,
        checkpoint=args.checkpoint, db_dir=args.db_dir, split=args.split, batch_size=args.batch_size,
        max_samples=args.max_samples, max_new_tokens=args.max_new_tokens, num_beams=args.num_beams,
        backend=args.backend, timeout=args.timeout, text_metrics=args.text_metrics, compute_loss=not args.no_loss,
        force=args.force,
    )
    if args.num_examples > 0:
        print(format_samples(result.scored, args.num_examples))
        print()
    print(format_summary(result.metrics))
    print(f"report: {result.report}")
    return 0


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="DIR", help="evaluation folders; the first is the reference")
    p.add_argument("--output", metavar="DIR", help="folder for compare.html (default: the current folder)")


def run_compare(args: argparse.Namespace) -> int:
    from text2sql.evaluation.compare_runs import compare_runs, format_table, render_compare_html

    comparison = compare_runs(args.runs)
    print(format_table(comparison))
    page = render_compare_html(comparison, Path(args.output or ".") / "compare.html")
    print(f"comparison page: {page}")
    return 0
