"""`text2sql export --model MODEL --format gguf|ollama [--dtype f16|bf16|q8_0|f32] [--output DIR]`.

`--model` as every other verb takes it; the model as a positional argument still works, with a note."""

from __future__ import annotations

import argparse
import sys

from text2sql.errors import ConfigError

HELP = "write a fine-tuned model as a GGUF file for llama.cpp, or with an Ollama Modelfile; checked by reloading"


def add_arguments(p: argparse.ArgumentParser) -> None:
    model_help = "a merged model folder, an adapter or run folder (merged on the fly), or a base model"
    p.add_argument("--model", metavar="MODEL", help=model_help)
    p.add_argument("positional_model", nargs="?", metavar="MODEL", help=f"the same as --model ({model_help})")
    p.add_argument(
        "--format",
        dest="fmt",
        choices=("gguf", "ollama"),
        default="gguf",
        help="gguf: one .gguf file; ollama: the .gguf and a Modelfile holding the training prompt (default gguf)",
    )
    p.add_argument(
        "--dtype",
        choices=("f16", "bf16", "q8_0", "f32"),
        default="f16",
        help="weights of the matrices in the file (default f16; q8_0 is about half its size)",
    )
    p.add_argument("--output", metavar="DIR", help="folder to write (default: MODEL/export)")
    p.add_argument("--base", help="adapters: base model to load instead of the one the adapter records")
    p.add_argument("--checkpoint", help="a checkpoint folder inside or beside MODEL, e.g. checkpoint-500")
    p.add_argument("--no-check", action="store_true", help="skip reading the file back and comparing answers")
    p.add_argument("--force", action="store_true", help="replace what --output holds")


def run(args: argparse.Namespace) -> int:
    from text2sql.inference.export import export

    if args.model and args.positional_model:
        raise ConfigError("give the model once: --model MODEL (the positional MODEL is the same thing)")
    if args.positional_model:
        print("note: `text2sql export MODEL` is `text2sql export --model MODEL` now; both work", file=sys.stderr)
    model = args.model or args.positional_model
    if not model:
        raise ConfigError("no model to export: give --model MODEL (a merged, adapter or run folder)")
    export(
        model,
        fmt=args.fmt,
        dtype=args.dtype,
        output=args.output,
        force=args.force,
        base=args.base,
        checkpoint=args.checkpoint,
        check=not args.no_check,
    )
    return 0
