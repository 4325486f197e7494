"""`text2sql validate CFG [k=v ...]`: config, data files and databases checked without a model."""

from __future__ import annotations

import argparse

from text2sql.commands.common import load_run_config
from text2sql.config import add_config_argument
from text2sql.errors import Text2SQLError

HELP = "check a config, its data files and databases (no model)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument(
        "--gold-limit",
        type=int,
        default=500,
        metavar="N",
        help="execute the gold SQL of up to N rows per split on their databases (0: skip)",
    )


def run(args: argparse.Namespace) -> int:
    from text2sql.validate import validate

    path, cfg = load_run_config(args.config_and_overrides)
    report = validate(cfg, gold_limit=args.gold_limit, config_path=path)
    print(report.render())
    if report.problems:
        raise Text2SQLError(report.problem_line())
    print("config, data and databases are valid")
    return 0
