"""Loading a config: YAML file + dotted command-line overrides, validated together.

Problems are collected and reported all at once, each naming the fix; an unknown key gets a "did
you mean" suggestion. `training.*` takes the trainer's own argument names
(`transformers.TrainingArguments` / `Seq2SeqTrainingArguments`) and is checked against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from text2sql.config.keys import check_training, parse_override, set_dotted, suggest
from text2sql.config.search import check_search_space
from text2sql.config.sections import TRAINING_DEFAULTS, TUNING_METRICS, Config
from text2sql.errors import ConfigError


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


def _format_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent = err["loc"][:-1]
        section: Any = Config
        for part in parent:
            section = section.model_fields[part].annotation
        known = section.model_fields.keys() if hasattr(section, "model_fields") else []
        prefix = ".".join(str(p) for p in parent)
        prefix = f"{prefix}." if prefix else ""
        return f"{loc}: unknown key{suggest(str(err['loc'][-1]), known, prefix)}"
    if err["type"] == "literal_error":
        return f"{loc}: {err['input']!r} is not allowed; {err['msg'].lower()}"
    if err["type"] == "value_error":  # our own validators: the message names the key and the fix
        return str(err["msg"]).removeprefix("Value error, ")
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
    checked, training_problems = check_training({**TRAINING_DEFAULTS, **(training or {})})
    problems.extend(training_problems)
    if cfg is not None:
        cfg.training = checked
        problems.extend(_check_tuning(cfg))
    if problems or cfg is None:
        raise ConfigError(_join_problems(problems))
    return cfg


def _check_tuning(cfg: Config) -> list[str]:
    """The tuning section against the rest of the config; the search space is normalized in place."""
    t = cfg.tuning
    problems: list[str] = []
    if t.metric not in TUNING_METRICS:
        problems.append(
            f"tuning.metric: unknown metric {t.metric!r}{suggest(t.metric, TUNING_METRICS)} "
            f"(one of {', '.join(TUNING_METRICS)})"
        )
    elif t.metric in ("bleu", "sentence_bleu", "rouge_l") and not cfg.evaluation.text_metrics:
        problems.append(f"tuning.metric={t.metric} needs evaluation.text_metrics: true")
    if t.pruner == "median":
        if str(cfg.training.get("eval_strategy", "no")) == "no":
            problems.append(
                "tuning.pruner=median prunes on evaluations during training; set "
                "training.eval_strategy=steps and training.eval_steps, or tuning.pruner=none"
            )
        if t.metric not in ("loss", "execution_accuracy"):
            problems.append(
                f"tuning.pruner=median: training reports only loss and execution_accuracy, not "
                f"{t.metric}; use one of those as tuning.metric, or tuning.pruner=none"
            )
        elif t.metric == "execution_accuracy" and not cfg.callbacks.execution_accuracy_samples:
            problems.append(
                "tuning.pruner=median with tuning.metric=execution_accuracy needs "
                "callbacks.execution_accuracy_samples > 0 (measured at each evaluation)"
            )
    if t.storage is not None and "://" not in t.storage:
        problems.append(
            f"tuning.storage: {t.storage!r} is not a database URL; write it like "
            "sqlite:///path/study.db or postgresql://host/db"
        )
    space, space_problems = check_search_space(cfg, t.search_space)
    problems.extend(space_problems)
    if not space_problems:  # saved configs show each spec whole (defaults filled in)
        t.search_space = {key: spec.to_dict() for key, spec in space.items()}
    return problems


# Problems a config error names; a config with more (a wrong file passed as one) says how many more.
MAX_PROBLEMS = 8


def _join_problems(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"invalid config: {problems[0]}"
    shown = "; ".join(problems[:MAX_PROBLEMS])
    more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
    return f"invalid config ({len(problems)} problems): {shown}{more}"


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a local YAML config (or start from the defaults), apply `key=value` overrides, validate.

    A gs:// or s3:// config is fetched by the caller first (`text2sql.storage.fetch`; the CLI does)."""
    if path and "://" in str(path):
        raise ConfigError(f"config {path} is a URL; fetch it with text2sql.storage.fetch and load the local copy")
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
