"""`text2sql train CFG [k=v ...] [--resume] [--init-from DIR]`: the train stage alone (preparing data
first when needed).

The flags of a classic `python train.py --model_dir=... --train_data=... --lora_r=16 --target_modules q v`
script work too and become config overrides (shown by `--help`), applied after the YAML config and
before any `key=value` override; both `--flag=value` and `--flag value`.
"""

from __future__ import annotations

import argparse
import json

from text2sql.commands.common import add_threads_argument, load_run_config, threads_override
from text2sql.config import add_config_argument

HELP = "train on the prepared data (LoRA, QLoRA, DoRA, rsLoRA or full fine-tuning)"

# flag → (config key, value kind); kind "str" values are quoted so paths survive YAML parsing.
SCRIPT_FLAGS: dict[str, tuple[str, str]] = {
    "model_dir": ("model.name_or_path", "str"),
    "train_data": ("data.train", "str"),
    "val_data": ("data.validation", "str"),
    "output_dir": ("output_dir", "str"),
    "num_train_epochs": ("training.num_train_epochs", "num"),
    "per_device_train_batch_size": ("training.per_device_train_batch_size", "num"),
    "per_device_eval_batch_size": ("training.per_device_eval_batch_size", "num"),
    "learning_rate": ("training.learning_rate", "num"),
    "warmup_steps": ("training.warmup_steps", "num"),
    "weight_decay": ("training.weight_decay", "num"),
    "lora_r": ("finetune.r", "num"),
    "lora_alpha": ("finetune.alpha", "num"),
    "lora_dropout": ("finetune.dropout", "num"),
    "target_modules": ("finetune.target_modules", "list"),
    "max_source_length": ("data.max_source_length", "num"),
    "max_target_length": ("data.max_target_length", "num"),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_argument(p)
    p.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    p.add_argument("--init-from", metavar="DIR", help="start from this adapter's weights (fresh optimizer, step 0)")
    p.add_argument("--force", action="store_true", help="replace outputs made by a different run")
    add_threads_argument(p)
    script = p.add_argument_group("train.py-style flags (each sets the config key shown)")
    for flag, (key, kind) in SCRIPT_FLAGS.items():
        script.add_argument(
            f"--{flag}",
            nargs="+" if kind == "list" else None,
            metavar="NAME" if kind == "list" else "VALUE",
            help=f"sets {key}",
        )


def script_flag_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(overrides from the script flags, config / key=value items that `--target_modules` swallowed)."""
    overrides: list[str] = []
    stray: list[str] = []
    for flag, (key, kind) in SCRIPT_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if kind == "list":
            # `--target_modules q v finetune.r=8`: nargs="+" cannot tell a module from an override
            # (or from a config file given after the flags).
            swallowed = [v for v in value if "=" in v or v.endswith((".yaml", ".yml"))]
            stray.extend(swallowed)
            value = [v for v in value if v not in swallowed]
            overrides.append(f"{key}={json.dumps(value)}")
        elif kind == "str":
            overrides.append(f"{key}={json.dumps(value)}")
        else:
            overrides.append(f"{key}={value}")
    return overrides, stray


def run(args: argparse.Namespace) -> int:
    from text2sql.stages import StageContext, Train

    flag_overrides, stray = script_flag_overrides(args)
    items = [*[s for s in stray if "=" not in s], *args.config_and_overrides, *[s for s in stray if "=" in s]]
    _, cfg = load_run_config(items, [*flag_overrides, *threads_override(args)])
    result = Train(resume=args.resume, init_from=args.init_from).run(StageContext(cfg, force=args.force)).result
    if not result.main_process:  # under accelerate launch, one report is enough
        return 0
    what = "adapter" if result.stage == "adapter" else "model"
    if result.skipped:
        print(f"{what} up to date, skipped: {result.path}")
        return 0
    p = result.parameters
    print(f"trainable parameters: {p['trainable']:,} of {p['total']:,} ({p['percent']:.2f}%)")
    loss = "-" if result.train_loss is None else f"{result.train_loss:.4f}"
    resumed = f", resumed from {result.resumed_from.name}" if result.resumed_from else ""
    print(f"{what} written to {result.path} (step {result.global_step}{resumed}; final train loss {loss})")
    return 0
