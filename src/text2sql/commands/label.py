"""`text2sql label --data questions.csv --db DB --teacher openai:NAME --output pairs.jsonl`: questions
without SQL become training pairs, written by a teacher endpoint and checked on the database."""

from __future__ import annotations

import argparse
import re

from text2sql.config import EvaluationConfig
from text2sql.errors import ConfigError

HELP = "turn questions without SQL into training pairs: a teacher endpoint writes the SQL, the database checks it"

_DATABASE_ID = re.compile(r"^([A-Za-z_][\w-]*)=(.+)$")  # ID=TARGET (a URL's '=' comes after '://' or '?')


def add_arguments(p: argparse.ArgumentParser) -> None:
    defaults = EvaluationConfig()
    p.add_argument("--data", required=True, metavar="FILE", help="questions: a CSV or JSONL file, SQL not needed")
    p.add_argument(
        "--db",
        action="append",
        required=True,
        metavar="DB",
        help="the database the questions are about: a SQLite or DuckDB file, a postgresql:// URL, a {db_id} "
        "pattern; ID=TARGET (repeatable) for rows whose db_id is ID",
    )
    p.add_argument("--teacher", required=True, metavar="openai:NAME", help="the endpoint that writes the SQL")
    p.add_argument("--output", required=True, metavar="FILE", help="the kept pairs (JSONL); the report goes beside it")
    p.add_argument(
        "--samples",
        type=int,
        default=1,
        metavar="K",
        help="candidates per question: the greedy one, then K-1 sampled ones, voted on by result (default 1)",
    )
    p.add_argument(
        "--min-agreement",
        type=int,
        metavar="M",
        help="with K > 1, candidates that must agree with the chosen SQL (default: half of K, rounded up)",
    )
    p.add_argument(
        "--base-url", metavar="URL", help="the teacher's endpoint (default: $OPENAI_BASE_URL, else OpenAI's)"
    )
    p.add_argument(
        "--question-column",
        metavar="NAME",
        help="the column holding the question (default: input_text or question, whichever the file has)",
    )
    p.add_argument("--max-tokens", type=int, default=defaults.max_new_tokens, metavar="N", help="longest answer")
    p.add_argument("--temperature", type=float, default=defaults.temperature, help="of the sampled candidates")
    p.add_argument("--top-p", type=float, default=defaults.top_p, help="of the sampled candidates")
    p.add_argument("--seed", type=int, default=0, help="sent with the sampled requests, for endpoints that use one")
    p.add_argument("--concurrency", type=int, default=defaults.concurrency, metavar="N", help="requests in flight")
    p.add_argument("--max-retries", type=int, default=defaults.max_retries, metavar="N", help="retries of 429 and 5xx")
    p.add_argument(
        "--request-timeout", type=float, default=defaults.request_timeout, metavar="S", help="seconds per request"
    )
    p.add_argument("--timeout", type=float, default=defaults.timeout, metavar="S", help="seconds a query may run")
    p.add_argument("--force", action="store_true", help="replace --output when it exists")


def databases(values: list[str]) -> tuple[str | None, dict[str, str]]:
    """(data.db, data.databases) from the --db values: ID=TARGET pairs, and at most one plain target."""
    plain: list[str] = []
    named: dict[str, str] = {}
    for value in values:
        found = _DATABASE_ID.match(value) if "://" not in value.split("=", 1)[0] else None
        if found:
            named[found.group(1)] = found.group(2)
        else:
            plain.append(value)
    if len(plain) > 1:
        raise ConfigError(
            f"--db given {len(plain)} databases ({', '.join(plain)}); give one, or name them ID=TARGET for rows "
            "whose db_id is ID"
        )
    return (plain[0] if plain else None), named


def run(args: argparse.Namespace) -> int:
    from text2sql.data.readers import ReadOptions
    from text2sql.inference.label import LabelSettings, label, question_column, report_path
    from text2sql.inference.openai_model import is_endpoint
    from text2sql.serving.predict import resolve_database

    if not is_endpoint(args.teacher):
        raise ConfigError(f"--teacher {args.teacher!r} is not an endpoint; write openai:NAME, e.g. openai:gpt-4o-mini")
    if args.samples < 1 or args.samples > 16:
        raise ConfigError(f"--samples {args.samples}: give 1 to 16 candidates per question")
    if args.min_agreement is not None and not 1 <= args.min_agreement <= args.samples:
        raise ConfigError(f"--min-agreement {args.min_agreement}: give 1 to --samples ({args.samples})")
    db, named = databases(args.db)
    settings = LabelSettings(
        args.teacher,
        samples=args.samples,
        min_agreement=args.min_agreement,
        base_url=args.base_url,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        concurrency=args.concurrency,
        max_retries=args.max_retries,
        request_timeout=args.request_timeout,
        timeout=args.timeout,
    )
    opts = ReadOptions(
        question_column=question_column(args.data, args.question_column),
        db=resolve_database(db),
        databases={k: resolve_database(v) or v for k, v in named.items()},
        require_sql=False,
    )
    report = label(args.data, args.output, settings, opts, force=args.force)
    print(report.table())
    print(f"pairs: {args.output} (report: {report_path(args.output)})")
    return 0
