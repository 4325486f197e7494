"""`text2sql run CFG [k=v ...] [--force]`: the whole pipeline, each stage skipped when current."""

from __future__ import annotations

import argparse

from text2sql.commands.common import add_threads_argument, load_run_config, threads_override
from text2sql.config import add_config_argument

HELP = "the whole pipeline: prepare, train, merge, evaluate (and a baseline), compare"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--force", action="store_true", help="redo every stage, replacing outputs of a different run")
    p.add_argument(
        "--no-estimate",
        action="store_true",
        help="start at once, without the estimate of each stage's time and memory (a short probe when "
        "text2sql init or validate left none for this config)",
    )
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from text2sql.pipeline import run_pipeline, summary

    _, cfg = load_run_config(args.config_and_overrides, threads_override(args))
    result = run_pipeline(cfg, force=args.force, estimate=not args.no_estimate)
    if result.metrics:  # the other processes of a distributed run have nothing to report
        print(summary(result))
    return 0
