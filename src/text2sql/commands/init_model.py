"""`text2sql init-model --arch A --output DIR`: a tiny random model and tokenizer, built offline."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from text2sql.errors import Text2SQLError
from text2sql.models.tiny import ARCHS, build_tiny_model

HELP = "build a tiny random model + tokenizer offline"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, choices=ARCHS, help="model architecture")
    p.add_argument("--output", required=True, help="folder to write the model to")
    p.add_argument("--hidden-size", type=int, default=128, help="hidden size (d_model)")
    p.add_argument("--num-layers", type=int, default=2, help="transformer layers")
    p.add_argument("--num-heads", type=int, default=4, help="attention heads")
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size to train")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise Text2SQLError(f"{out} already exists and is not empty; pass --force to replace it")
    if out.exists() and args.force:
        shutil.rmtree(out)
    path = build_tiny_model(
        args.arch,
        out,
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        vocab_size=args.vocab_size,
        seed=args.seed,
    )
    print(f"tiny {args.arch} model written to {path}")
    return 0
