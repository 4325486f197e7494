"""The `text2sql` command: verbs map 1:1 to stages; each is a thin call into library code."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from text2sql import __version__
from text2sql.errors import Text2SQLError

log = logging.getLogger("text2sql")

PLANNED = {
    "train": "train a model on the prepared data (LoRA, QLoRA, DoRA or full fine-tuning)",
    "merge": "merge a LoRA adapter into a standalone model",
    "evaluate": "score a model or predictions: exact match, token F1, execution accuracy",
    "run": "the whole pipeline: prepare, train, merge, evaluate, compare",
    "compare": "put evaluation runs side by side",
    "predict": "answer one question with SQL",
    "serve": "serve a model behind an OpenAI-compatible HTTP API",
    "tune": "search hyperparameters with Optuna",
    "launch": "launch a run on a cloud platform (Vertex AI)",
}


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config_and_overrides",
        nargs="*",
        metavar="CONFIG.yaml [key=value ...]",
        help="a YAML config (optional) followed by dotted overrides, e.g. data.train=train.csv output_dir=runs/x",
    )


def split_config_args(items: Sequence[str]) -> tuple[str | None, list[str]]:
    if items and "=" not in items[0]:
        return items[0], list(items[1:])
    path = None
    overrides = []
    for item in items:
        if "=" not in item:
            raise Text2SQLError(
                f"'{item}' is neither the first argument (the config file) nor a key=value override; "
                "put the config file first"
            )
        overrides.append(item)
    return path, overrides


def _load(args: argparse.Namespace):
    from text2sql.config import load_config

    path, overrides = split_config_args(args.config_and_overrides)
    return load_config(path, overrides)


# ------------------------------------------------------------------------------------------ verbs


def cmd_prepare(args: argparse.Namespace) -> int:
    from text2sql.data.prepare import prepare, summarize

    cfg = _load(args)
    result = prepare(cfg, force=args.force)
    state = "up to date, skipped" if result.skipped else "written"
    print(summarize(result.report))
    print(f"prepared data {state}: {result.path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from text2sql.validate import validate

    cfg = _load(args)
    report = validate(cfg, gold_limit=args.gold_limit)
    print(report.render())
    if report.problems:
        raise Text2SQLError(report.problem_line())
    print("config, data and databases are valid")
    return 0


def cmd_init_model(args: argparse.Namespace) -> int:
    from text2sql.models.tiny import build_tiny_model

    out = Path(args.output)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise Text2SQLError(f"{out} already exists and is not empty; pass --force to replace it")
    if out.exists() and args.force:
        import shutil

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


def _planned(verb: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        raise Text2SQLError(f"'text2sql {verb}' is not implemented yet in this version ({__version__})")

    return run


# ------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")

    parser = argparse.ArgumentParser(
        prog="text2sql",
        description="Fine-tune small models that answer with SQL only, and prove them on real databases.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"text2sql {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    p = verbs.add_parser("prepare", parents=[common], help="read, split and tokenize data into <output_dir>/data/")
    _config_args(p)
    p.add_argument("--force", action="store_true", help="replace prepared data made from a different config")
    p.set_defaults(func=cmd_prepare)

    p = verbs.add_parser("validate", parents=[common], help="check a config, its data files and databases (no model)")
    _config_args(p)
    p.add_argument(
        "--gold-limit", type=int, default=500, metavar="N",
        help="execute the gold SQL of up to N rows per split on their databases (0: skip)",
    )
    p.set_defaults(func=cmd_validate)

    from text2sql.models.tiny import ARCHS

    p = verbs.add_parser("init-model", parents=[common], help="build a tiny random model + tokenizer offline")
    p.add_argument("--arch", required=True, choices=ARCHS, help="model architecture")
    p.add_argument("--output", required=True, help="folder to write the model to")
    p.add_argument("--hidden-size", type=int, default=128, help="hidden size (d_model)")
    p.add_argument("--num-layers", type=int, default=2, help="transformer layers")
    p.add_argument("--num-heads", type=int, default=4, help="attention heads")
    p.add_argument("--vocab-size", type=int, default=4096, help="BPE vocabulary size to train")
    p.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=cmd_init_model)

    for verb, help_text in PLANNED.items():
        p = verbs.add_parser(verb, parents=[common], help=f"{help_text} (not implemented yet)")
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_planned(verb))
    return parser


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("text2sql").setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        for noisy in ("transformers", "datasets", "httpx", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    _setup_logging(args.debug)
    try:
        return args.func(args)
    except Text2SQLError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
