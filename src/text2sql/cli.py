"""The `text2sql` command: a table of verbs (`text2sql.commands`), each a thin call into library code."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from text2sql import __version__
from text2sql.commands import VERBS, module_name
from text2sql.errors import Text2SQLError, filesystem_error
from text2sql.huge_pages import use_huge_pages


class _IntermixedParser(argparse.ArgumentParser):
    """A verb parser that takes options between the config file and the key=value overrides
    (`train cfg.yaml --resume finetune.r=8`); verbs that pass their arguments on unparsed are left alone."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        passthrough = any(a.nargs in (argparse.REMAINDER, argparse.PARSER) for a in self._get_positional_actions())
        if passthrough or self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


class _UnsafeRole(argparse.Action):
    """`--unsafe-role`: lifts, for this process, the refusal of PostgreSQL roles that can do more than
    read (wherever the flag stands, before or after the verb)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from text2sql.sql.postgres import allow_unsafe_role

        allow_unsafe_role(True)


def build_parser() -> argparse.ArgumentParser:
    common = _IntermixedParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    common.add_argument(
        "--unsafe-role",
        action=_UnsafeRole,
        help="run model SQL on PostgreSQL even as a role that can do more than read (a superuser, a writer)",
    )

    parser = argparse.ArgumentParser(
        prog="text2sql",
        description="Fine-tune small models that answer with SQL only, and prove them on real databases.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"text2sql {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_IntermixedParser)
    for verb in VERBS:
        module = importlib.import_module(module_name(verb))
        p = verbs.add_parser(verb, parents=[common], help=module.HELP)
        if verb in ("launch", "db"):  # verbs with actions (launch vertex, db copy), each a parser of its own
            module.add_arguments(p, parents=[common])
        else:
            module.add_arguments(p)
            p.set_defaults(func=module.run)
    return parser


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("text2sql").setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        # transformers and datasets set their own level when imported (later, by the verb): tell them
        # now. Their warnings are notes for library developers (e.g. the tied lm_head.weight that every
        # resumed checkpoint "misses"); --debug shows them.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DATASETS_VERBOSITY", "error")
        # sqlglot reads model answers; its "unsupported syntax" notes are about an answer, which the
        # scoring reports itself.
        logging.getLogger("sqlglot").setLevel(logging.ERROR)
    if not sys.stderr.isatty():
        # Library bars are carriage-return animations: in a file they glue into one long line. Our own
        # progress (text2sql.progress) writes whole lines there instead.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        # Libraries imported already (main() called in-process) read the variables too late.
        if "transformers" in sys.modules:
            sys.modules["transformers"].utils.logging.disable_progress_bar()
        if "datasets" in sys.modules:
            sys.modules["datasets"].disable_progress_bars()
        for noisy in ("transformers", "datasets", "httpx", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    use_huge_pages()  # before any verb imports torch, which reads it once
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
    except BrokenPipeError:
        # The reader went away (`text2sql config --keys | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        message = filesystem_error(exc)
        if message is None or args.debug:
            raise
        print(f"error: {message}", file=sys.stderr)
        return Text2SQLError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
