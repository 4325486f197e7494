"""The `text2sql` command: verbs map 1:1 to stages; each is a thin call into library code."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from text2sql import __version__
from text2sql.errors import Text2SQLError

log = logging.getLogger("text2sql")


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config_and_overrides",
        nargs="*",
        metavar="CONFIG.yaml [key=value ...]",
        help="a YAML config (optional) followed by dotted overrides, e.g. data.train=train.csv output_dir=runs/x",
    )


class _IntermixedParser(argparse.ArgumentParser):
    """A verb parser that takes options between the config file and the key=value overrides
    (`train cfg.yaml --resume lora.r=8`); verbs that pass their arguments on unparsed are left alone."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        passthrough = any(a.nargs in (argparse.REMAINDER, argparse.PARSER) for a in self._get_positional_actions())
        if passthrough or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


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


def cmd_merge(args: argparse.Namespace) -> int:
    from text2sql.models.merge import merge_adapter

    result = merge_adapter(args.adapter, args.output, dtype=args.dtype, base=args.base, force=args.force)
    print(
        f"merged model ({result.dtype}) written to {result.path}\n"
        f"largest logit difference, merged vs adapter (float32): {result.max_abs_diff:.3g} "
        f"(tolerance {result.tolerance:.3g}); saved {result.dtype} vs float32 merge: "
        f"{result.saved_max_abs_diff:.3g} (tolerance {result.saved_tolerance:.3g})"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from text2sql.config import load_config
    from text2sql.training.cli_args import seed_flag_overrides
    from text2sql.training.train import train

    flag_overrides, stray = seed_flag_overrides(args)
    path, overrides = split_config_args([*[s for s in stray if "=" not in s], *args.config_and_overrides])
    cfg = load_config(path, [*flag_overrides, *overrides, *[s for s in stray if "=" in s]])
    result = train(cfg, resume=args.resume, init_from=args.init_from, force=args.force)
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from text2sql.evaluation.cli_args import run_evaluate

    return run_evaluate(args)


def cmd_compare(args: argparse.Namespace) -> int:
    from text2sql.evaluation.cli_args import run_compare

    return run_compare(args)


def cmd_predict(args: argparse.Namespace) -> int:
    from text2sql.serving.cli_args import run_predict

    return run_predict(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from text2sql.serving.cli_args import run_serve

    return run_serve(args)


def cmd_run(args: argparse.Namespace) -> int:
    from text2sql.pipeline import run_pipeline, summary

    cfg = _load(args)
    result = run_pipeline(cfg, force=args.force)
    if result.metrics:  # the other processes of a distributed run have nothing to report
        print(summary(result))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from text2sql.config import describe_fields

    if args.keys:
        rows = describe_fields()
        width = max(len(key) for key, _, _ in rows)
        for key, default, help_text in rows:
            print(f"{key:<{width}}  {default:<16}  {help_text}")
        return 0
    # The config a run would use: file, overrides and defaults resolved and validated.
    print(_load(args).to_yaml(), end="")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from text2sql.config import load_config
    from text2sql.tuning.report import format_report
    from text2sql.tuning.study import tune

    path, overrides = split_config_args(args.config_and_overrides)
    if path is None and not overrides:
        # A study trains tuning.n_trials models: it should not start from a bare `text2sql tune`.
        raise Text2SQLError("text2sql tune needs a config: text2sql tune CONFIG.yaml [key=value ...]")
    if args.n_trials is not None:
        overrides.append(f"tuning.n_trials={args.n_trials}")
    if args.timeout is not None:
        overrides.append(f"tuning.timeout={args.timeout}")
    result = tune(load_config(path, overrides), force=args.force)
    print(format_report(result))
    return 0


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
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_IntermixedParser)

    p = verbs.add_parser("prepare", parents=[common], help="read, split and tokenize data into <output_dir>/data/")
    _config_args(p)
    p.add_argument("--force", action="store_true", help="replace prepared data made from a different config")
    p.set_defaults(func=cmd_prepare)

    p = verbs.add_parser("config", parents=[common], help="print the resolved config, or every key with --keys")
    _config_args(p)
    p.add_argument("--keys", action="store_true", help="list every config key with its default and description")
    p.set_defaults(func=cmd_config)

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

    p = verbs.add_parser(
        "merge", parents=[common], help="merge a LoRA/DoRA adapter into its base, verify the logits, save a standalone model"
    )
    p.add_argument("--adapter", required=True, help="adapter folder written by 'text2sql train' (holds adapter_config.json)")
    p.add_argument("--output", required=True, help="folder to write the merged model to")
    p.add_argument(
        "--dtype", choices=("bf16", "fp16", "fp32"), default=None,
        help="dtype of the saved weights (default: the run config's model.dtype, else the base model's own)",
    )
    p.add_argument("--base", help="base model to merge into (default: the one recorded in the adapter)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder once the new one is complete")
    p.set_defaults(func=cmd_merge)

    from text2sql.training.cli_args import add_train_arguments

    p = verbs.add_parser(
        "train", parents=[common], help="train on the prepared data (LoRA, QLoRA, DoRA, rsLoRA or full fine-tuning)"
    )
    _config_args(p)
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    from text2sql.evaluation.cli_args import add_compare_arguments, add_evaluate_arguments

    p = verbs.add_parser(
        "evaluate", parents=[common], help="score a model or predictions: exact match, token F1, execution accuracy"
    )
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = verbs.add_parser("compare", parents=[common], help="put evaluation runs side by side (terminal table + compare.html)")
    add_compare_arguments(p)
    p.set_defaults(func=cmd_compare)

    from text2sql.serving.cli_args import add_predict_arguments, add_serve_arguments

    p = verbs.add_parser("predict", parents=[common], help="answer one question with SQL only (and its rows with --execute)")
    add_predict_arguments(p)
    p.set_defaults(func=cmd_predict)

    p = verbs.add_parser(
        "serve", parents=[common], help="serve a model over HTTP: OpenAI-compatible chat/completions and /v1/sql"
    )
    add_serve_arguments(p)
    p.set_defaults(func=cmd_serve)

    from text2sql.launch.cli_args import add_launch_arguments

    p = verbs.add_parser("launch", parents=[common], help="launch a run on a cloud platform (Vertex AI custom job)")
    add_launch_arguments(p, parents=[common])

    p = verbs.add_parser(
        "run", parents=[common], help="the whole pipeline: prepare, train, merge, evaluate (and a baseline), compare"
    )
    _config_args(p)
    p.add_argument("--force", action="store_true", help="redo every stage, replacing outputs of a different run")
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser(
        "tune", parents=[common],
        help="search hyperparameters with Optuna: trials train and are scored on the validation split",
    )
    _config_args(p)
    p.add_argument("--n-trials", type=int, metavar="N", help="trials in the study in all (tuning.n_trials)")
    p.add_argument("--timeout", type=float, metavar="S", help="start no new trial after S seconds (tuning.timeout)")
    p.add_argument("--force", action="store_true", help="start a new study, replacing one of a different config")
    p.set_defaults(func=cmd_tune)
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
    except BrokenPipeError:
        # The reader went away (`text2sql config --keys | head`): stop quietly, as Unix tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
