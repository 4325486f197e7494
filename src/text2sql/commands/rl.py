"""`text2sql rl CFG [k=v ...] [--init-from DIR]`: the rl stage alone: GRPO with rewards from executing
the generated SQL, from the run's fine-tuned model (or `--init-from`) into `<output_dir>/rl/`
(preparing the data first when needed). `text2sql run` runs the same stage when `rl.enabled`."""

from __future__ import annotations

import argparse
import json

from text2sql.commands.common import add_threads_argument, load_run_config, threads_override
from text2sql.config import add_config_argument

HELP = "reinforcement learning from execution (GRPO) on the fine-tuned model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--init-from", metavar="DIR", help="the model folder to start from (sets rl.init_from)")
    p.add_argument("--force", action="store_true", help="train again even when up to date; replace another run's rl/")
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from text2sql.stages import RL, StageContext, quiet

    extra = [f"rl.init_from={json.dumps(args.init_from)}"] if args.init_from else []
    _, cfg = load_run_config(args.config_and_overrides, [*extra, *threads_override(args)])
    result = RL().run(StageContext(cfg, force=args.force, say=quiet)).result
    if result.skipped:
        print(f"rl model up to date, skipped: {result.path} (--force trains again)")
        return 0
    print(f"rl model written to {result.path} ({result.global_step} steps on {result.rows} prompts)")
    print(f"completions by outcome: {result.counts}")
    if result.accuracy_by_step:
        steps = ", ".join(f"{step}: {value:.3f}" for step, value in result.accuracy_by_step)
        print(f"validation execution accuracy by step: {steps}; saved step {result.saved_step}")
    return 0
