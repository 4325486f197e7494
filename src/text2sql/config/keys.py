"""Dotted config keys: overrides (`a.b=value`), whether a key names one value, whether a value is
valid for it, and the trainer's own argument names under `training.*` (checked against
transformers' `Seq2SeqTrainingArguments`)."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import typing
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from text2sql.config.sections import Config
from text2sql.errors import ConfigError

log = logging.getLogger("text2sql.config")


@functools.lru_cache(maxsize=1)
def _training_argument_types() -> dict[str, Any]:
    # transformers is imported only when a config sets trainer arguments, not at CLI start-up.
    from transformers import Seq2SeqTrainingArguments

    hints = typing.get_type_hints(Seq2SeqTrainingArguments)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}


# Set by text2sql itself from other sections; a user value here would be silently replaced.
_MANAGED_TRAINING_KEYS = {"output_dir": "output_dir"}
# Names older transformers releases use, mapped to today's argument.
_TRAINING_ALIASES = {"warmup_ratio": "warmup_steps", "evaluation_strategy": "eval_strategy"}


@functools.cache  # once per process, however many configs use the alias
def _note_alias(alias: str) -> None:
    log.info(
        "training.%s is an alias of training.%s; configs are saved with the latter", alias, _TRAINING_ALIASES[alias]
    )


def check_training(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The `training` section checked against the trainer's arguments: (values, one line per problem)."""
    types = _training_argument_types()
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key in _TRAINING_ALIASES:
            if key == "warmup_ratio" and not (isinstance(value, (int, float)) and 0 <= value < 1):
                problems.append(f"training.warmup_ratio: must be in [0, 1), got {value!r}")
                continue
            _note_alias(key)
            key = _TRAINING_ALIASES[key]
        if key in _MANAGED_TRAINING_KEYS:
            problems.append(f"training.{key}: set '{_MANAGED_TRAINING_KEYS[key]}' instead")
            continue
        if key not in types:
            problems.append(f"training.{key}: unknown trainer argument{suggest(key, types, 'training.')}")
            continue
        try:
            checked[key] = _validate_training_value(types[key], value)
        except ValidationError:
            problems.append(f"training.{key}: {value!r} is not a valid {_type_name(types[key])}; fix the value")
            continue
        if hasattr(checked[key], "value"):  # enums back to their plain YAML value
            checked[key] = checked[key].value
    for key in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if key in checked and isinstance(checked[key], int) and checked[key] <= 0:
            problems.append(f"training.{key}: must be a positive integer, got {checked[key]}")
    if isinstance(checked.get("learning_rate"), float) and checked["learning_rate"] <= 0:
        problems.append(f"training.learning_rate: must be > 0, got {checked['learning_rate']}")
    if isinstance(checked.get("max_steps"), int) and (checked["max_steps"] == 0 or checked["max_steps"] < -1):
        problems.append("training.max_steps: must be positive, or -1 to train by num_train_epochs")
    if isinstance(checked.get("num_train_epochs"), float) and checked["num_train_epochs"] <= 0:
        if checked.get("max_steps", -1) <= 0:
            problems.append("training.num_train_epochs: must be > 0 (or set training.max_steps)")
    return checked, problems


def _validate_training_value(tp: Any, value: Any) -> Any:
    """`value` as the trainer argument's type. YAML reads a bare `no` / `yes` as a boolean; for the
    arguments whose values are words (`eval_strategy: no`, `save_strategy: no`) it meant the word."""
    adapter = TypeAdapter(tp)
    try:
        return adapter.validate_python(value)
    except ValidationError:
        if isinstance(value, bool):
            return adapter.validate_python("yes" if value else "no")
        raise


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def suggest(key: str, candidates: Any, prefix: str = "") -> str:
    match = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{prefix}{match[0]}'?" if match else ""


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=value` → (['a', 'b'], parsed value). Values are YAML scalars/lists: `x=[q, v]`, `y=null`."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override '{text}' is not key=value; write it like data.train=path/to/train.csv")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def set_dotted(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """tree[path[0]][path[1]]... = value, creating the mappings on the way (an override's target)."""
    node = tree
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


def check_key(cfg: Config, key: str) -> str | None:
    """Why the dotted `key` names no single config value (None: it does); a typo gets a "did you mean"."""
    parts = key.split(".")
    if parts[0] == "training" and len(parts) > 2:
        return "trainer arguments are one level deep: training.<TrainingArguments name>"
    if parts[0] == "training" and len(parts) == 2:
        name = _TRAINING_ALIASES.get(parts[1], parts[1])
        if name in _MANAGED_TRAINING_KEYS:
            return f"set '{_MANAGED_TRAINING_KEYS[name]}' instead"
        types = _training_argument_types()
        return None if name in types else f"unknown trainer argument{suggest(name, types, 'training.')}"
    node: Any = cfg
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if not isinstance(node, BaseModel):
            return f"{prefix} is a value, with no keys below it"
        fields = type(node).model_fields
        if part not in fields:
            return f"unknown key{suggest(part, fields, f'{prefix}.' if prefix else '')}"
        node = getattr(node, part)
    if isinstance(node, (BaseModel, dict)):
        return f"{key} is a section; name one of its keys"
    return None


def check_value(cfg: Config, key: str, value: Any) -> str | None:
    """Why the override `key=value` would be invalid on top of `cfg` (None: it is valid)."""
    problem = check_key(cfg, key)
    if problem is not None:
        return problem
    *parents, leaf = key.split(".")
    if parents == ["training"]:
        _, problems = check_training({leaf: value})
        return problems[0].split(": ", 1)[1] if problems else None
    node: Any = cfg
    for part in parents:
        node = getattr(node, part)
    try:
        setattr(node.model_copy(), leaf, value)
    except ValidationError as exc:
        return exc.errors()[0]["msg"].lower()
    return None
