"""`text2sql merge --adapter DIR --output DIR`: merge an adapter into its base, verified; skipped when
the output already holds this merge."""

from __future__ import annotations

import argparse

from text2sql.commands.common import add_threads_argument

HELP = "merge a LoRA/DoRA adapter into its base, verify the logits, save a standalone model"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--adapter", required=True, help="adapter folder written by 'text2sql train' (holds adapter_config.json)"
    )
    p.add_argument("--output", required=True, help="folder to write the merged model to")
    p.add_argument(
        "--dtype",
        choices=("bf16", "fp16", "fp32"),
        default=None,
        help="dtype of the saved weights (default: the run config's model.dtype, else the base model's own)",
    )
    p.add_argument("--base", help="base model to merge into (default: the one recorded in the adapter)")
    p.add_argument(
        "--force", action="store_true", help="redo the merge, replacing the output once the new one is complete"
    )
    add_threads_argument(p)


def run(args: argparse.Namespace) -> int:
    from text2sql.models.merge import merge_adapter

    result = merge_adapter(
        args.adapter, args.output, dtype=args.dtype, base=args.base, force=args.force, threads=args.threads
    )
    if result.skipped:
        print(f"merged model up to date, skipped: {result.path} (--force merges again)")
        return 0
    print(
        f"merged model ({result.dtype}) written to {result.path}\n"
        f"largest logit difference, merged vs adapter (float32): {result.max_abs_diff:.3g} "
        f"(tolerance {result.tolerance:.3g}); saved {result.dtype} vs float32 merge: "
        f"{result.saved_max_abs_diff:.3g} (tolerance {result.saved_tolerance:.3g})"
    )
    return 0
