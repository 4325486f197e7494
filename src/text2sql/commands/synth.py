"""`text2sql synth --db DB --n N --output pairs.jsonl`: training pairs sampled from the database alone.

    text2sql synth --db shop.sqlite --n 2000 --output pairs.jsonl
    text2sql synth --db bundled --n 2000 --seed 1 --output pairs.jsonl
    text2sql synth --db "postgresql://reader@localhost/shop" --n 500 --teacher openai:gpt-4o-mini --output pairs.jsonl

SQL of every complexity class is sampled from the schema and its real values and kept when it returns
a non-degenerate result on the read-only engine (`text2sql.data.synth`); questions come from
templates, or from the teacher when its own SQL for its question returns the same result. The pairs
are JSONL rows `data.train` reads; the report (counts per class and per drop reason) is printed and
written beside them as `<name>.report.json`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from text2sql.config import EvaluationConfig
from text2sql.errors import DataError

HELP = "sample question/SQL training pairs from a database's schema and values (no data needed)"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not above 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = EvaluationConfig()
    p.add_argument(
        "--db",
        action="append",
        required=True,
        metavar="DB",
        help="a SQLite or DuckDB file, a postgresql:// URL, ID=TARGET to name it, or bundled (repeatable)",
    )
    p.add_argument("--n", type=_positive, required=True, metavar="N", help="pairs in all, spread over the databases")
    p.add_argument("--output", required=True, metavar="FILE", help="the pairs (.jsonl); the report goes beside it")
    p.add_argument("--per-database", action="store_true", help="N pairs from each database instead of in all")
    p.add_argument("--seed", type=int, default=0, help="seed of every sampling choice (default 0)")
    p.add_argument(
        "--teacher",
        metavar="openai:NAME",
        help="an OpenAI-compatible endpoint that words the questions; a pair is kept when its SQL for the question "
        "returns the same result",
    )
    p.add_argument(
        "--base-url", metavar="URL", help="the teacher's endpoint (default: $OPENAI_BASE_URL, else OpenAI's)"
    )
    p.add_argument(
        "--request-timeout", type=float, default=defaults.request_timeout, metavar="S", help="seconds per request"
    )
    p.add_argument("--force", action="store_true", help="replace --output (and its report) when they exist")


def _teacher(args: argparse.Namespace):
    """The teacher endpoint, its answers kept in the answer cache (a rerun asks only what is new)."""
    if not args.teacher:
        return None
    from text2sql.inference.answer_cache import AnswerCache, answers_folder, cache_file
    from text2sql.inference.openai_model import OpenAIModel, endpoint_name, is_endpoint

    if not is_endpoint(args.teacher):
        raise DataError(f"--teacher {args.teacher!r}: write openai:NAME, e.g. openai:gpt-4o-mini")
    endpoint_name(args.teacher)  # an empty name is a one-line ConfigError
    model = OpenAIModel(args.teacher, base_url=args.base_url, timeout=args.request_timeout)
    model.cache = AnswerCache(cache_file(answers_folder(), model.base_url, model.name))
    return model


def run(args: argparse.Namespace) -> int:
    from text2sql.data.synth import check_output, databases_from_args, report_path, synthesize, write_pairs

    output = Path(args.output).expanduser()
    check_output(output, args.force)  # before any work: nothing is written on a refusal
    databases = databases_from_args(args.db)
    teacher = _teacher(args)
    pairs, report = synthesize(
        databases,
        args.n,
        seed=args.seed,
        per_database=args.per_database,
        teacher=teacher,
        teacher_name=args.teacher,
    )
    print(report.table())
    if not pairs:
        raise DataError(
            f"no pair could be sampled from {', '.join(sorted(databases))}; check that its tables hold rows the "
            "read-only role may see (drops are counted above)"
        )
    write_pairs(pairs, report, output)
    print(
        f"wrote {len(pairs)} pairs to {output} (report: {report_path(output)}) in {report.seconds:.1f} s",
        file=sys.stderr,
    )
    if len(pairs) < report.requested:
        print(
            f"note: {len(pairs)} of {report.requested} pairs: the databases hold no more distinct ones", file=sys.stderr
        )
    return 0
