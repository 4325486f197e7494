"""One typed config for a whole run: YAML file + dotted command-line overrides, validated together.

Every field has a default and a one-line description (`text2sql config --help-keys` prints them).
Problems are collected and reported all at once, each naming the fix; an unknown key gets a
"did you mean" suggestion. `training.*` takes the trainer's own argument names
(`transformers.TrainingArguments` / `Seq2SeqTrainingArguments`) and is checked against them.
"""

from __future__ import annotations

import difflib
import functools
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from text2sql.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "You translate questions into SQL. Given a database schema and a question, answer with one "
    "SQLite query and nothing else: no explanation, no markdown."
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name_or_path: str = Field(
        "tiny:llama",
        description="Base model: a hub id, a local folder, a gs:// or s3:// URL, or tiny:<arch> "
        "(llama, mistral, qwen2, gpt2, t5) for a small model built locally.",
    )
    trust_remote_code: bool = Field(
        False, description="Run model code shipped with a hub repo. Off: only turn on for repos you trust."
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype when loading: auto picks bfloat16 on GPUs that support it, else float32."
    )
    attn_implementation: str = Field(
        "sdpa", description="Attention kernel: sdpa, eager, or flash_attention_2 (needs flash-attn and a GPU)."
    )


class MaxSamples(_Section):
    train: int | None = Field(None, gt=0, description="Keep at most this many training rows (seeded sample).")
    validation: int | None = Field(None, gt=0, description="Keep at most this many validation rows.")
    test: int | None = Field(None, gt=0, description="Keep at most this many test rows.")


class DataConfig(_Section):
    train: str = Field(
        "bundled",
        description="Training data: a CSV/JSON/JSONL/parquet file, a Spider or BIRD json, a save_to_disk "
        "folder, a hub dataset id, or 'bundled' for the dataset shipped with text2sql.",
    )
    validation: str | None = Field(
        None, description="Validation data (same kinds as data.train); split off train when unset."
    )
    test: str | None = Field(None, description="Test data (same kinds as data.train); split off train when unset.")
    format: Literal["auto", "csv", "chat", "create_context", "spider", "bird", "hf", "bundled"] = Field(
        "auto", description="Input format; auto detects it from the extension and the fields."
    )
    db_dir: str | None = Field(
        None, description="Folder holding databases as <db_dir>/<db_id>/<db_id>.sqlite (Spider layout)."
    )
    question_column: str = Field("input_text", description="CSV column holding the question.")
    sql_column: str = Field("sql", description="CSV column holding the target SQL.")
    complexity_column: str = Field("sql_complexity", description="CSV column holding the complexity label.")
    hf_split: str | None = Field(None, description="Split to read from a Hugging Face dataset.")
    hf_config: str | None = Field(None, description="Configuration name of a Hugging Face hub dataset.")
    schema_format: Literal["sql", "compact", "tables"] = Field(
        "sql", description="Schema in prompts: CREATE TABLE statements (sql), one line per table (compact), "
        "or table names only (tables: for models trained on a fixed set of databases)."
    )
    schema_sample_rows: int = Field(0, ge=0, description="Append the first N rows of each table to the schema.")
    require_reasoning: bool = Field(False, description="Drop rows whose target has no reasoning (seed 001).")
    keep_reasoning: bool = Field(
        True, description="Train on reasoning followed by a ```sql block when a row has reasoning; else SQL only."
    )
    validation_size: float = Field(
        0.1, ge=0, lt=1, description="Share of train split off as validation when data.validation is unset."
    )
    test_size: float = Field(0.1, ge=0, lt=1, description="Share of train split off as test when data.test is unset.")
    split_seed: int = Field(42, description="Seed for random splits and max_samples sampling.")
    max_samples: MaxSamples = Field(default_factory=MaxSamples, description="Per-split row caps.")
    drop_duplicates: bool = Field(True, description="Drop exact duplicate rows within a split (always reported).")
    drop_test_overlap: bool = Field(
        False, description="Drop validation/test rows whose question and SQL also occur in train (always reported)."
    )
    max_length: int = Field(
        1024, gt=0, description="Decoder models: drop rows whose prompt + target exceeds this many tokens."
    )
    max_source_length: int = Field(512, gt=0, description="Seq2seq models: drop rows whose input exceeds this.")
    max_target_length: int = Field(256, gt=0, description="Seq2seq models: drop rows whose target exceeds this.")
    num_proc: int | None = Field(None, gt=0, description="Processes for tokenization (default: one).")


class PromptConfig(_Section):
    template: str = Field(
        "auto",
        description="Chat template for decoder models: auto (the tokenizer's own, else one for the model "
        "family), zephyr, mistral, chatml, llama3 or plain.",
    )
    system: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt for decoder models.")


class LoraConfigSection(_Section):
    method: Literal["lora", "qlora", "dora", "rslora", "full"] = Field(
        "lora", description="Fine-tuning method: lora, qlora (4/8-bit base, needs a GPU), dora, rslora or full."
    )
    r: int = Field(16, gt=0, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    target_modules: list[str] | str | None = Field(
        None, description="Modules to adapt; default per family (T5: q, v; decoders: all linear layers)."
    )
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train.")
    bits: Literal[4, 8] = Field(4, description="qlora: quantize the base model to 4 or 8 bits.")


class CallbacksConfig(_Section):
    early_stopping_patience: int | None = Field(
        None, gt=0, description="Stop after this many evaluations without improving metric_for_best_model."
    )
    checkpoint_sync: str | None = Field(
        None, description="Copy every saved checkpoint to this folder or gs:// / s3:// URL (main process only)."
    )
    progress: Literal["auto", "bar", "lines"] = Field(
        "auto", description="Training progress: a bar on a terminal, plain lines with ETA in logs (auto picks)."
    )
    execution_accuracy_samples: int = Field(
        0, ge=0, description="At each evaluation, generate SQL for this many validation rows and log "
        "eval_execution_accuracy (0: off).",
    )


class EvaluationConfig(_Section):
    batch_size: int = Field(16, gt=0, description="Prompts generated per batch.")
    max_new_tokens: int = Field(256, gt=0, description="Longest SQL (in tokens) a model may generate.")
    num_beams: int = Field(1, gt=0, description="Beam search width; 1 is greedy decoding.")
    max_samples: int | None = Field(None, gt=0, description="Evaluate at most this many rows of the split.")
    split: str = Field("test", description="Prepared split to evaluate in a run.")
    timeout: float = Field(5.0, gt=0, description="Seconds a single SQL query may run before it is stopped.")
    baseline: bool = Field(False, description="In a run, also evaluate the base model as a baseline.")
    backend: Literal["hf", "vllm"] = Field("hf", description="Generation backend: transformers, or vLLM (an extra).")
    text_metrics: bool = Field(False, description="Also compute BLEU and ROUGE-L on the SQL text.")


class ServingConfig(_Section):
    max_tokens: int = Field(256, gt=0, description="Tokens generated when a request does not set max_tokens.")
    max_tokens_limit: int = Field(512, gt=0, description="Largest max_tokens a request may ask for; above it: 422.")
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest request body in bytes; above it: 413.")
    batch_size: int = Field(16, gt=0, description="Most prompts generated together in one batch (1: no batching).")
    batch_wait_ms: float = Field(
        10.0, ge=0, description="How long a batch waits for more requests before it starts, in milliseconds."
    )
    max_queue: int = Field(1024, gt=0, description="Requests waiting for the model at most; above it: 503.")
    max_repairs: int = Field(
        0, ge=0, le=10, description="/v1/sql: ask the model again with the error this many times when its SQL fails."
    )
    timeout: float = Field(5.0, gt=0, description="Seconds a single SQL query may run before it is stopped.")
    max_rows: int = Field(1000, gt=0, description="Rows of a query result returned at most.")
    backend: Literal["hf", "vllm"] = Field("hf", description="Generation backend: transformers, or vLLM (an extra).")

    @model_validator(mode="after")
    def _default_within_limit(self) -> "ServingConfig":
        if self.max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"serving.max_tokens ({self.max_tokens}) is above serving.max_tokens_limit "
                f"({self.max_tokens_limit}); lower it or raise the limit"
            )
        return self


class TrackingConfig(_Section):
    backend: Literal["none", "tensorboard", "mlflow", "wandb"] = Field(
        "none", description="Experiment tracker the trainer reports to."
    )
    project: str = Field("text2sql", description="Experiment / project name in the tracker.")
    run_name: str | None = Field(None, description="Run name in the tracker (default: the output_dir name).")


class LaunchConfig(_Section):
    project: str | None = Field(None, description="Google Cloud project that runs `text2sql launch vertex` jobs.")
    region: str = Field("us-central1", description="Vertex AI region (location) of launched jobs.")
    machine_type: str = Field("g2-standard-4", description="Vertex AI machine type of each replica.")
    accelerator_type: str | None = Field(
        "NVIDIA_L4", description="GPU type per replica (Vertex AI name, e.g. NVIDIA_L4, NVIDIA_TESLA_A100); null: none."
    )
    accelerator_count: int = Field(1, ge=0, description="GPUs per replica (0: CPU only).")
    replica_count: int = Field(1, gt=0, description="Machines in the job; above 1 trains multi-node.")
    image_uri: str | None = Field(
        None, description="Training image (built from the repo's Dockerfile), e.g. us-docker.pkg.dev/P/R/text2sql:TAG."
    )
    staging_bucket: str | None = Field(
        None, description="gs:// folder where launch uploads a local config file for the job to read."
    )


TUNING_METRICS = (
    "execution_accuracy", "exact_match", "normalized_exact_match", "f1_score", "token_jaccard",
    "valid_sql_rate", "loss", "perplexity", "bleu", "sentence_bleu", "rouge_l",
)
# Lower is better for these; every other metric is a rate or a score where higher is better.
MINIMIZED_METRICS = ("loss", "perplexity")


class TuningConfig(_Section):
    n_trials: int = Field(20, gt=0, description="Trials in the study in all (a resumed study counts the ones done).")
    timeout: float | None = Field(
        None, gt=0, description="Start no new trial after this many seconds of one `text2sql tune` call."
    )
    metric: str = Field(
        "execution_accuracy",
        description="Validation metric to optimize: a number of metrics.json (execution_accuracy, loss, f1_score, ...).",
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="maximize or minimize the metric; default: minimize loss and perplexity, maximize the rest."
    )
    sampler: Literal["tpe", "random"] = Field("tpe", description="Optuna sampler: tpe (Bayesian) or random.")
    seed: int | None = Field(42, description="Sampler seed, for a reproducible search (null: a random one).")
    pruner: Literal["none", "median"] = Field(
        "none", description="median: stop a trial whose evaluations during training trail the median of earlier trials."
    )
    storage: str | None = Field(
        None, description="Optuna storage URL (e.g. postgresql://...); default sqlite:///<output_dir>/tuning/study.db."
    )
    study_name: str | None = Field(None, description="Study name in the storage (default: the output_dir's name).")
    search_space: dict[str, Any] = Field(
        default_factory=dict,
        description="Dotted config key -> {type: float|int, low, high, log, step} or {type: categorical, choices} "
        "(a list is shorthand for choices); empty: learning rate, plus lora.r and lora.dropout for LoRA methods.",
    )

    @field_validator("search_space", mode="before")
    @classmethod
    def _flatten_space(cls, value: Any) -> Any:
        # Dotted overrides (tuning.search_space.lora.r.high=64) arrive as nested mappings.
        from text2sql.tuning.space import flatten_space

        return flatten_space(value) if isinstance(value, dict) else value

    def resolved_direction(self) -> str:
        return self.direction or ("minimize" if self.metric in MINIMIZED_METRICS else "maximize")


# Our defaults for the trainer; any other TrainingArguments name may be set too. Chosen for a
# small model on one CPU or GPU; presets override them.
TRAINING_DEFAULTS: dict[str, Any] = {
    "num_train_epochs": 3,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "gradient_accumulation_steps": 1,
    "learning_rate": 2e-4,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.03,  # < 1 is a share of all steps in transformers 5
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "logging_steps": 10,
    "save_steps": 500,
    "save_total_limit": 2,
    "eval_strategy": "no",
    "seed": 42,
    "gradient_checkpointing": False,
    "dataloader_num_workers": 0,
    "report_to": "none",
}


class Config(_Section):
    output_dir: str = Field("runs/quickstart", description="Run directory: every stage writes its artifacts here.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="The base model.")
    data: DataConfig = Field(default_factory=DataConfig, description="Input data and preparation.")
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="How examples become prompts.")
    lora: LoraConfigSection = Field(default_factory=LoraConfigSection, description="Fine-tuning method.")
    training: dict[str, Any] = Field(
        default_factory=lambda: dict(TRAINING_DEFAULTS),
        description="Trainer arguments under their transformers TrainingArguments names.",
    )
    callbacks: CallbacksConfig = Field(default_factory=CallbacksConfig, description="Training callbacks.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="Evaluation.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Experiment tracking.")
    launch: LaunchConfig = Field(default_factory=LaunchConfig, description="Cloud jobs (text2sql launch).")
    serving: ServingConfig = Field(default_factory=ServingConfig, description="predict and serve.")
    tuning: TuningConfig = Field(default_factory=TuningConfig, description="Hyperparameter search (text2sql tune).")

    @field_validator("training", mode="before")
    @classmethod
    def _merge_training_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {**TRAINING_DEFAULTS, **value}
        return value

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


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


def _set_dotted(tree: dict[str, Any], path: list[str], value: Any) -> None:
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
        _set_dotted(raw, keys, value)
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
    """(dotted key, default, help) for every field, for `text2sql config --keys`."""
    rows: list[tuple[str, str, str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_fields(ann, f"{prefix}{name}."))
            continue
        default = field.get_default(call_default_factory=True)
        rows.append((f"{prefix}{name}", yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("\n..."), field.description or ""))
    return rows
