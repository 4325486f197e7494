"""`text2sql prepare CFG [k=v ...]`: the prepare stage alone."""

from __future__ import annotations

import argparse

from text2sql.commands.common import load_run_config
from text2sql.config import add_config_argument

HELP = "read, split and tokenize data into <output_dir>/data/"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--force", action="store_true", help="replace prepared data made from a different config")


def run(args: argparse.Namespace) -> int:
    from text2sql.stages import Prepare, StageContext

    _, cfg = load_run_config(args.config_and_overrides)
    outcome = Prepare().run(StageContext(cfg, force=args.force))  # prints the table of rows per split
    print(f"prepared data {'up to date, skipped' if outcome.skipped else 'written'}: {outcome.path}")
    return 0
