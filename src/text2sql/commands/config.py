"""`text2sql config [CFG] [k=v ...] [--keys]`: the resolved config, or every key with its default."""

from __future__ import annotations

import argparse

from text2sql.commands.common import load_run_config
from text2sql.config import add_config_argument, describe_fields

HELP = "print the resolved config, or every key with --keys"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--keys", action="store_true", help="list every config key with its default and description")


def run(args: argparse.Namespace) -> int:
    if args.keys:
        rows = describe_fields()
        width = max(len(key) for key, _, _ in rows)
        for key, default, help_text in rows:
            print(f"{key:<{width}}  {default:<16}  {help_text}")
        return 0
    # The config a run would use: file, overrides and defaults resolved and validated.
    _, cfg = load_run_config(args.config_and_overrides)
    print(cfg.to_yaml(), end="")
    return 0
