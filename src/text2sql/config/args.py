"""Command-line arguments that carry config: `CONFIG.yaml key=value ...`, and flags generated from a
config section's fields, so a new setting is one field (with its type, default and help) and its flag
follows."""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from text2sql.errors import Text2SQLError


def add_config_argument(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The positional `CONFIG.yaml [key=value ...]` of every verb that takes a run config."""
    parser.add_argument(
        "config_and_overrides",
        nargs="+" if required else "*",
        metavar="CONFIG.yaml [key=value ...]",
        help="a YAML config (optional) followed by dotted overrides, e.g. data.train=train.csv output_dir=runs/x",
    )


def split_config_args(items: Sequence[str]) -> tuple[str | None, list[str]]:
    """(config path or None, overrides): the first item is the config unless it is a key=value."""
    if items and "=" not in items[0]:
        return items[0], list(items[1:])
    overrides = []
    for item in items:
        if "=" not in item:
            raise Text2SQLError(
                f"'{item}' is neither the first argument (the config file) nor a key=value override; "
                "put the config file first"
            )
        overrides.append(item)
    return None, overrides


def _scalar(annotation: Any) -> Any:
    """`int | None` → int; Literal stays."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else str
    return annotation


def add_section_flags(
    parser: argparse.ArgumentParser | Any,
    section: type[BaseModel],
    fields: Sequence[str],
    *,
    flags: dict[str, str] | None = None,
) -> None:
    """One `--flag` per field of `section` (named after the field, `_` → `-`, or as `flags` says),
    typed and described by the field. Unset flags are None, so they leave a config's value alone."""
    for name in fields:
        field = section.model_fields[name]
        flag = (flags or {}).get(name) or "--" + name.replace("_", "-")
        kind = _scalar(field.annotation)
        default = field.get_default(call_default_factory=True)
        help_text = f"{field.description} (default: {default})" if field.description else None
        options: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction if default else "store_true"
        elif typing.get_origin(kind) is Literal:
            options["choices"] = typing.get_args(kind)
        else:
            options["type"] = kind
            options["metavar"] = "N" if kind in (int, float) else "VALUE"
        parser.add_argument(flag, **options)
