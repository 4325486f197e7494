"""`text2sql tune CFG [k=v ...]`: an Optuna study over the config's search space."""

from __future__ import annotations

import argparse

from text2sql.commands.common import add_threads_argument, load_run_config, threads_override
from text2sql.config import add_config_argument, split_config_args
from text2sql.errors import Text2SQLError

HELP = "search hyperparameters with Optuna: trials train and are scored on the validation split"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--n-trials", type=int, metavar="N", help="trials in the study in all (tuning.n_trials)")
    p.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds (tuning.timeout)")
    p.add_argument("--force", action="store_true", help="start a new study, replacing one of a different config")
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from text2sql.tuning.report import format_report
    from text2sql.tuning.study import tune

    path, overrides = split_config_args(args.config_and_overrides)
    if path is None and not overrides:
        # A study trains tuning.n_trials models: it should not start from a bare `text2sql tune`.
        raise Text2SQLError("text2sql tune needs a config: text2sql tune CONFIG.yaml [key=value ...]")
    flags = []
    if args.n_trials is not None:
        flags.append(f"tuning.n_trials={args.n_trials}")
    if args.timeout is not None:
        flags.append(f"tuning.timeout={args.timeout}")
    # The flags win over the config file and its overrides.
    _, cfg = load_run_config([*args.config_and_overrides, *flags, *threads_override(args)])
    result = tune(cfg, force=args.force)
    print(format_report(result))
    return 0
