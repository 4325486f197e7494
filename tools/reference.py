"""Writes the configuration and command-line references in docs/reference/ from the code itself: every
config key of the typed config (type, default, description) and every verb with its options, as
`text2sql VERB --help` has them. `--check` fails when a file is not current (the test suite runs it).

    python tools/reference.py            # write docs/reference/config.md and cli.md
    python tools/reference.py --check    # exit 1 when either is stale
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path

from pydantic import BaseModel

from text2sql.cli import build_parser
from text2sql.commands import VERBS
from text2sql.config import Config
from text2sql.config.loading import describe_fields

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "reference"
HEADER = "<!-- written by tools/reference.py from the code; do not edit by hand -->\n\n"


def _type_name(annotation: typing.Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation).replace("typing.", "")
    return text.replace("NoneType", "None").replace("|", "or").replace("  ", " ")


def _types(model: type[BaseModel] = Config, prefix: str = "") -> dict[str, str]:
    found: dict[str, str] = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(_types(annotation, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = _type_name(annotation)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def config_reference() -> str:
    types = _types()
    lines = [
        "# Configuration reference\n",
        "Every key of a text2sql config, with its type, default and what it does. A config is YAML; any key",
        "can also be given as a `key=value` override after the config on the command line. `training.*`",
        "keys are transformers `TrainingArguments` (the ones listed are those text2sql sets; any other",
        "argument name works too). `text2sql config --keys` prints the same list.\n",
    ]
    section = None
    for key, default, description in describe_fields():
        head = key.split(".", 1)[0]
        if head != section:
            section = head
            lines += [f"\n## `{head}`\n", "| key | type | default | description |", "|---|---|---|---|"]
        kind = types.get(key, "any")
        lines.append(f"| `{key}` | {_cell(kind)} | `{_cell(default)}` | {_cell(description)} |")
    return HEADER + "\n".join(lines) + "\n"


def cli_reference() -> str:
    parser = build_parser()
    verbs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [
        "# Command-line reference\n",
        "Every verb of `text2sql`, as `text2sql VERB --help` prints it.\n",
        "| verb | what it does |",
        "|---|---|",
    ]
    helps = {a.dest: a.help or "" for a in verbs._choices_actions}
    lines += [f"| [`{v}`](#text2sql-{v}) | {_cell(helps.get(v, ''))} |" for v in VERBS]
    for verb in VERBS:
        sub = verbs.choices[verb]
        sub.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        lines += [f"\n## text2sql {verb}\n", "```", sub.format_help().rstrip(), "```"]
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for group in nested:
            for name, action_parser in group.choices.items():
                action_parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
                lines += [f"\n### text2sql {verb} {name}\n", "```", action_parser.format_help().rstrip(), "```"]
    return HEADER + "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a reference is not current")
    args = parser.parse_args()
    stale = []
    for name, text in (("config.md", config_reference()), ("cli.md", cli_reference())):
        path = OUT / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"not current: {', '.join(stale)}; run python tools/reference.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
