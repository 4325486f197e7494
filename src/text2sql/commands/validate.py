"""`text2sql validate CFG [k=v ...] [--budget 30m]`: config, data files and databases checked, then the
run's time and memory estimated here from a short probe of the model, with the settings that suit
this machine (no GPU: a CPU-sized run) or a budget."""

from __future__ import annotations

import argparse

from text2sql.commands.common import load_run_config
from text2sql.config import add_config_argument
from text2sql.errors import ConfigError, Text2SQLError

HELP = "check a config, its data files and databases, and estimate the run's time and memory here"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument(
        "--gold-limit",
        type=int,
        default=500,
        metavar="N",
        help="execute the gold SQL of up to N rows per split on their databases (0: skip)",
    )
    p.add_argument(
        "--budget",
        metavar="TIME",
        help="also print the settings that make the run fit TIME here (30m, 2h, 1h30m), as key=value overrides",
    )
    p.add_argument("--no-estimate", action="store_true", help="check only: no probe of the model, no estimate")


def run(args: argparse.Namespace) -> int:
    from text2sql.validate import validate

    budget = None
    if args.budget is not None:
        from text2sql.sizing import parse_budget

        budget = parse_budget(args.budget)
        if args.no_estimate:
            raise ConfigError("--budget needs the estimate, which --no-estimate leaves out; drop one of them")
    path, cfg = load_run_config(args.config_and_overrides)
    report = validate(cfg, gold_limit=args.gold_limit, config_path=path)
    print(report.render())
    if report.problems:
        raise Text2SQLError(report.problem_line())
    print("config, data and databases are valid")
    if not args.no_estimate:
        _estimate(cfg, path, budget)
    return 0


def _estimate(cfg, path: str | None, budget: float | None) -> None:
    """The estimate of the config as given, and what this machine or the budget suggests changing."""
    import torch

    from text2sql.sizing import ProbeError, estimate_table, format_duration, save_estimate, size_run

    cpu = not torch.cuda.is_available()
    try:
        sized = size_run(cfg, budget=budget, cpu=cpu)
    except ProbeError as exc:
        if budget is not None:
            raise ConfigError(f"--budget: {exc}") from None
        print(f"no estimate: {exc}")
        return
    assert sized.original is not None
    print(estimate_table(sized.original))
    save_estimate(cfg, sized.original, "text2sql validate")
    if not sized.changes:
        print("the settings suit this machine" + (" and the budget" if budget else ""))
        return
    why = f"to fit {format_duration(budget)}" if budget else "for this machine (no GPU)"
    print(
        f"suggested {why}: estimated {format_duration(sized.estimate.seconds)} instead of "
        f"{format_duration(sized.original.seconds)}"
    )
    for line in sized.summary():
        print(f"  {line}")
    print(f"  text2sql run {path or 'CFG'} " + " ".join(sized.overrides()))
    save_estimate(sized.cfg, sized.estimate, "text2sql validate")
