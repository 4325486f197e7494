"""Loading a config: YAML file + dotted command-line overrides, validated together.

Problems are collected and reported all at once, each naming the fix; an unknown key gets a "did
you mean" suggestion. `training.*` takes the trainer's own argument names
(`transformers.TrainingArguments` / `Seq2SeqTrainingArguments`) and is checked against them.
"""

from __future__ import annotations

import difflib
import functools
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from text2sql.config.sections import TRAINING_DEFAULTS, TUNING_METRICS, Config
from text2sql.errors import ConfigError

# ---------------------------------------------------------------- training-argument checking


@functools.lru_cache(maxsize=1)
def _training_argument_types() -> dict[str, Any]:
    import dataclasses

    from transformers import Seq2SeqTrainingArguments

    hints = typing.get_type_hints(Seq2SeqTrainingArguments)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}


# Set by text2sql itself from other sections; a user value here would be silently replaced.
_MANAGED_TRAINING_KEYS = {"output_dir": "output_dir"}
# Names older transformers releases (and the seeds) use, mapped to today's argument.
_TRAINING_ALIASES = {"warmup_ratio": "warmup_steps", "evaluation_strategy": "eval_strategy"}


def _check_training(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    from pydantic import TypeAdapter

    types = _training_argument_types()
    problems: list[str] = []
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key in _TRAINING_ALIASES:
            if key == "warmup_ratio" and not (isinstance(value, (int, float)) and 0 <= value < 1):
                problems.append(f"training.warmup_ratio: must be in [0, 1), got {value!r}")
                continue
            key = _TRAINING_ALIASES[key]
        if key in _MANAGED_TRAINING_KEYS:
            problems.append(f"training.{key}: set '{_MANAGED_TRAINING_KEYS[key]}' instead")
            continue
        if key not in types:
            problems.append(f"training.{key}: unknown trainer argument{_suggest(key, types, 'training.')}")
            continue
        try:
            checked[key] = TypeAdapter(types[key]).validate_python(value)
        except ValidationError:
            problems.append(
                f"training.{key}: {value!r} is not a valid {_type_name(types[key])}; fix the value"
            )
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


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# ---------------------------------------------------------------- loading and overrides


def _suggest(key: str, candidates: Any, prefix: str = "") -> str:
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


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass the path of a YAML config (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the config as UTF-8") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (output_dir, model, data, ...)")
    return data


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent = err["loc"][:-1]
        section: Any = Config
        for part in parent:
            section = section.model_fields[part].annotation
        known = section.model_fields.keys() if hasattr(section, "model_fields") else []
        prefix = ".".join(str(p) for p in parent)
        prefix = f"{prefix}." if prefix else ""
        return f"{loc}: unknown key{_suggest(str(err['loc'][-1]), known, prefix)}"
    if err["type"] == "literal_error":
        return f"{loc}: {err['input']!r} is not allowed; {err['msg'].lower()}"
    if err["type"] in ("model_type", "dict_type"):
        return f"{loc}: expected a mapping of keys, got {err['input']!r}"
    return f"{loc}: {err['msg'].lower()} (got {err['input']!r})"


def build_config(raw: dict[str, Any]) -> Config:
    """Validate a raw mapping; every problem is reported in one ConfigError, one line each."""
    problems: list[str] = []
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_format_error(e) for e in exc.errors())
        cfg = None
    training = raw.get("training") if isinstance(raw.get("training"), dict) else {}
    checked, training_problems = _check_training({**TRAINING_DEFAULTS, **(training or {})})
    problems.extend(training_problems)
    if cfg is not None:
        cfg.training = checked
        problems.extend(_check_tuning(cfg))
    if problems or cfg is None:
        raise ConfigError(_join_problems(problems))
    return cfg


def _check_tuning(cfg: Config) -> list[str]:
    """The tuning section against the rest of the config; the search space is normalized in place."""
    from text2sql.tuning.space import check_search_space

    t = cfg.tuning
    problems: list[str] = []
    if t.metric not in TUNING_METRICS:
        problems.append(f"tuning.metric: unknown metric {t.metric!r}{_suggest(t.metric, TUNING_METRICS)} "
                        f"(one of {', '.join(TUNING_METRICS)})")
    elif t.metric in ("bleu", "sentence_bleu", "rouge_l") and not cfg.evaluation.text_metrics:
        problems.append(f"tuning.metric={t.metric} needs evaluation.text_metrics: true")
    if t.pruner == "median":
        if str(cfg.training.get("eval_strategy", "no")) == "no":
            problems.append("tuning.pruner=median prunes on evaluations during training; set "
                            "training.eval_strategy=steps and training.eval_steps, or tuning.pruner=none")
        if t.metric not in ("loss", "execution_accuracy"):
            problems.append(f"tuning.pruner=median: training reports only loss and execution_accuracy, not "
                            f"{t.metric}; use one of those as tuning.metric, or tuning.pruner=none")
        elif t.metric == "execution_accuracy" and not cfg.callbacks.execution_accuracy_samples:
            problems.append("tuning.pruner=median with tuning.metric=execution_accuracy needs "
                            "callbacks.execution_accuracy_samples > 0 (measured at each evaluation)")
    if t.storage is not None and "://" not in t.storage:
        problems.append(f"tuning.storage: {t.storage!r} is not a database URL; write it like "
                        "sqlite:///path/study.db or postgresql://host/db")
    space, space_problems = check_search_space(cfg, t.search_space)
    problems.extend(space_problems)
    if not space_problems:  # saved configs show each spec whole (defaults filled in)
        t.search_space = {key: spec.to_dict() for key, spec in space.items()}
    return problems


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
        return None if name in types else f"unknown trainer argument{_suggest(name, types, 'training.')}"
    node: Any = cfg
    for i, part in enumerate(parts):
        prefix = ".".join(parts[:i])
        if not isinstance(node, BaseModel):
            return f"{prefix} is a value, with no keys below it"
        fields = type(node).model_fields
        if part not in fields:
            return f"unknown key{_suggest(part, fields, f'{prefix}.' if prefix else '')}"
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
        _, problems = _check_training({leaf: value})
        return problems[0].split(": ", 1)[1] if problems else None
    node: Any = cfg
    for part in parents:
        node = getattr(node, part)
    try:
        setattr(node.model_copy(), leaf, value)
    except ValidationError as exc:
        return exc.errors()[0]["msg"].lower()
    return None


def _join_problems(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"invalid config: {problems[0]}"
    return f"invalid config ({len(problems)} problems): " + "; ".join(problems)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or start from the defaults), apply `key=value` overrides, validate.

    `path` may be a gs:// or s3:// URL (a launched job reads its config from the staging bucket)."""
    if path and "://" in str(path):
        from text2sql.storage import fetch, is_remote

        if is_remote(path):
            path = fetch(str(path))
    raw: dict[str, Any] = _read_yaml(Path(path)) if path else {}
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted(raw, keys, value)
    return build_config(raw)


def save_config(cfg: Config, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "config.yaml"
    tmp = target.with_suffix(".yaml.tmp")
    tmp.write_text(cfg.to_yaml(), encoding="utf-8")
    tmp.replace(target)
    return target


def describe_fields(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every field, for `text2sql config --keys`; `training` is listed
    key by key (the arguments text2sql sets; any other TrainingArguments name may be added)."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_fields(ann, f"{prefix}{name}."))
            continue
        default = field.get_default(call_default_factory=True)
        if model is Config and name == "training":
            # One row per trainer argument text2sql sets; any other TrainingArguments name works too.
            rows.extend(
                (f"training.{key}", _flow(value), f"transformers TrainingArguments.{key} (text2sql's default)")
                for key, value in default.items()
            )
            continue
        rows.append((f"{prefix}{name}", _flow(default), field.description or ""))
    return rows


def _flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
