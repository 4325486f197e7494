"""`text2sql init --data FILE --model M [--db DB]`: a commented config to start from, with
settings that suit the model (a pretrained model gets LoRA, full CREATE TABLE schemas and room for
long SQL; a tiny random one, built locally, is fully fine-tuned on short prompts)."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from text2sql.errors import ConfigError, OutputExistsError

HELP = "write a commented config for your data, database and model, to run with `text2sql run`"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, metavar="FILE", help="training data (CSV, JSONL, Spider/BIRD json, ...)")
    p.add_argument(
        "--model",
        required=True,
        metavar="M",
        help="base model: a hub id (e.g. Qwen/Qwen2.5-Coder-0.5B-Instruct), a local folder, or tiny:llama",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--db", metavar="DB", help="one database for every row: a SQLite or DuckDB file or a postgresql:// URL"
    )
    where.add_argument(
        "--db-dir", metavar="DIR", help="databases as DIR/<db_id>/<db_id>.sqlite, named by a db_id column"
    )
    p.add_argument(
        "--output", default="text2sql.yaml", metavar="FILE", help="config file to write (default text2sql.yaml)"
    )
    p.add_argument("--output-dir", metavar="DIR", help="the run's output_dir (default runs/<config name>)")
    p.add_argument("--force", action="store_true", help="replace an existing config file")


def _value(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def _line(key: str, value: object, comment: str = "", indent: int = 2) -> str:
    text = f"{' ' * indent}{key}: {_value(value)}"
    return f"{text:<32}  # {comment}" if comment else text


def render(data: str, model: str, *, db: str | None, db_dir: str | None, output_dir: str) -> str:
    """The config text: values chosen for the model, each with the reason."""
    tiny = model.startswith("tiny:")
    lines = [
        "# text2sql run {config}",
        "#",
        "# Written by `text2sql init`. Check it with `text2sql validate {config}` before a long run;",
        "# `text2sql config --keys` lists every key with its default.",
        _line("output_dir", output_dir, indent=0),
        "",
        "model:",
        _line("name_or_path", model),
        "",
        "data:",
        _line("train", data),
    ]
    if db:
        lines.append(_line("db", db, "one database for every row: its schema goes into each prompt"))
    elif db_dir:
        lines.append(_line("db_dir", db_dir, "<db_dir>/<db_id>/<db_id>.sqlite, by each row's db_id"))
    else:
        lines.append("  # db: path/to/database.sqlite   # its schema in each prompt; SQL scored by running it")
    lines += [
        "  # validation, test: files, or split off train (10% each) when not given",
        _line("schema_format", "compact" if tiny else "sql", "sql: CREATE TABLE statements; compact: a line per table"),
        _line("max_length", 512 if tiny else 2048, "prompt + SQL tokens; longer training rows are dropped"),
        "",
        "finetune:",
    ]
    if tiny:
        lines.append(_line("method", "full", "a randomly initialised model learns nothing through LoRA"))
    else:
        lines += [
            _line("method", "lora", "or qlora (GPU, bitsandbytes), dora, full"),
            _line("r", 16),
            _line("alpha", 32),
        ]
    lines += ["", "training:"]
    if tiny:
        lines += [_line("learning_rate", 6.0e-3, "from scratch: a high rate"), _line("max_steps", 1500)]
    else:
        lines += [_line("learning_rate", 2.0e-4), _line("num_train_epochs", 3)]
    lines += [
        _line("per_device_train_batch_size", 8),
        "",
        "evaluation:",
        _line("max_new_tokens", 128 if tiny else 256, "room for the longest SQL; a cut answer is 'truncated'"),
        _line("baseline", not tiny, "also score the untuned model, and compare the two"),
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from text2sql.data.readers import ReadOptions, detect_format

    out = Path(args.output)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out} already exists; choose another --output or pass --force to replace it")
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--output {out}: a config file ends in .yaml")
    detect_format(args.data, ReadOptions())  # a missing or unreadable data file is an error now, not at run time
    if args.db:
        from text2sql.config import refuse_passwords
        from text2sql.sql.targets import dialect_of, is_url

        dialect_of(args.db)  # an unknown URL scheme names the supported ones
        try:
            refuse_passwords({"--db": args.db})
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if not is_url(args.db) and not Path(args.db).is_file():
            raise ConfigError(f"--db {args.db}: no such file; give a SQLite or DuckDB file or a postgresql:// URL")
    if args.db_dir and not Path(args.db_dir).is_dir():
        raise ConfigError(f"--db-dir {args.db_dir}: no such folder")
    output_dir = args.output_dir or f"runs/{out.stem}"
    text = render(args.data, args.model, db=args.db, db_dir=args.db_dir, output_dir=output_dir)
    out.write_text(text.replace("{config}", str(out)), encoding="utf-8")
    print(f"config written to {out}; next: text2sql validate {out} && text2sql run {out}")
    return 0
