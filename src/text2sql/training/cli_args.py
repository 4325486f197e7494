"""Command-line options of `text2sql train`, including seed 000's `train.py` flags.

Seed 000 trained with `python train.py --model_dir=... --train_data=... --lora_r=16 --target_modules q v`;
the same flags work with `text2sql train` and become config overrides (shown by `--help`), applied
after the YAML config and before any `key=value` override. Both `--flag=value` and `--flag value`.
"""

from __future__ import annotations

import argparse
import json

# flag → (config key, value kind); kind "str" values are quoted so paths survive YAML parsing.
SEED_000_FLAGS: dict[str, tuple[str, str]] = {
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
    "lora_r": ("lora.r", "num"),
    "lora_alpha": ("lora.alpha", "num"),
    "lora_dropout": ("lora.dropout", "num"),
    "target_modules": ("lora.target_modules", "list"),
    "max_source_length": ("data.max_source_length", "num"),
    "max_target_length": ("data.max_target_length", "num"),
}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    parser.add_argument(
        "--init-from", metavar="DIR", help="start from this adapter's weights (fresh optimizer, step 0)"
    )
    parser.add_argument("--force", action="store_true", help="replace outputs made by a different run")
    seed = parser.add_argument_group("seed 000 flags (each sets the config key shown)")
    for flag, (key, kind) in SEED_000_FLAGS.items():
        seed.add_argument(
            f"--{flag}",
            nargs="+" if kind == "list" else None,
            metavar="NAME" if kind == "list" else "VALUE",
            help=f"sets {key}",
        )


def seed_flag_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(overrides from the seed-000 flags, config / key=value items that `--target_modules` swallowed)."""
    overrides: list[str] = []
    stray: list[str] = []
    for flag, (key, kind) in SEED_000_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if kind == "list":
            # `--target_modules q v lora.r=8`: nargs="+" cannot tell a module from an override
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
