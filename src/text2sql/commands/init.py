"""`text2sql init --data FILE --model M [--db DB] [--budget 30m]`: a commented config to start from,
with settings that suit the model (a pretrained model gets LoRA, full CREATE TABLE schemas and room
for long SQL; a tiny random one, built locally, is fully fine-tuned on short prompts) and the
machine: a short probe of the model here estimates each stage's time and memory; without a GPU the
config is sized for the CPU, and `--budget` cuts it to fit a wall time, saying what it changed."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import yaml

from text2sql.errors import ConfigError, OutputExistsError

HELP = "write a commented config for your data, database and model, to run with `text2sql run`"

# Without a GPU and without --budget, a config is sized to finish within this (seconds): an hour is
# what a first run on a laptop or a small cloud machine is worth before its results are seen.
CPU_BUDGET = 3600.0
DEVICES = ("auto", "cpu", "gpu")


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
    p.add_argument(
        "--budget",
        metavar="TIME",
        help="size the run to finish within TIME on this machine (30m, 2h, 1h30m): fewer steps, a compact "
        "schema, fewer test rows scored, each change named (default without a GPU: 1h)",
    )
    p.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="the machine the run is for: auto (this one: a GPU when one is visible), cpu or gpu; the estimate "
        "is made only for this machine",
    )
    p.add_argument("--no-estimate", action="store_true", help="write the config without probing the model here")
    p.add_argument("--force", action="store_true", help="replace an existing config file")


def _value(value: object) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")


def _line(key: str, value: object, comment: str = "", indent: int = 2) -> str:
    text = f"{' ' * indent}{key}: {_value(value)}"
    return f"{text:<32}  # {comment}" if comment else text


# A draft config: section → key → (value, comment); a key None holds a comment line of its own.
Draft = dict[str, dict[str, tuple[Any, str]]]


def draft(model: str, *, data: str, db: str | None, db_dir: str | None, device: str) -> Draft:
    """The values chosen for the model and the device, each with the reason."""
    tiny = model.startswith("tiny:")
    cpu = device == "cpu"
    d: Draft = {"model": {"name_or_path": (model, "")}, "data": {"train": (data, "")}}
    if db:
        d["data"]["db"] = (db, "one database for every row: its schema goes into each prompt")
    elif db_dir:
        d["data"]["db_dir"] = (db_dir, "<db_dir>/<db_id>/<db_id>.sqlite, by each row's db_id")
    else:
        d["data"]["# db"] = ("path/to/database.sqlite", "its schema in each prompt; SQL scored by running it")
    d["data"]["# validation, test"] = ("files, or split off train (10% each) when not given", "")
    compact = tiny or cpu
    why_schema = "one line per table: on a CPU every prompt token costs time" if cpu and not tiny else ""
    d["data"]["schema_format"] = (
        "compact" if compact else "sql",
        why_schema or "sql: CREATE TABLE statements; compact: a line per table",
    )
    d["data"]["max_length"] = (512 if tiny else 2048, "prompt + SQL tokens; longer training rows are dropped")
    if tiny:
        d["finetune"] = {"method": ("full", "a randomly initialised model learns nothing through LoRA")}
        d["training"] = {"learning_rate": (6.0e-3, "from scratch: a high rate"), "max_steps": (1500, "")}
    else:
        d["finetune"] = {
            "method": ("lora", "or qlora (GPU, bitsandbytes), dora, full"),
            "r": (16, ""),
            "alpha": (32, ""),
        }
        if cpu:
            d["training"] = {
                "learning_rate": (1.0e-3, "few steps on a CPU: a higher rate than a GPU run's 2e-4"),
                "num_train_epochs": (1, "on a CPU; a budget cuts it to the steps that fit"),
                "warmup_steps": (5, ""),
            }
        else:
            d["training"] = {"learning_rate": (2.0e-4, ""), "num_train_epochs": (3, "")}
    d["training"]["per_device_train_batch_size"] = (8, "")
    d["evaluation"] = {
        "max_new_tokens": (128 if tiny else 256, "room for the longest SQL; a cut answer is 'truncated'"),
        "baseline": (not tiny, "also score the untuned model, and compare the two"),
    }
    if cpu and not tiny:
        d["evaluation"]["loss_samples"] = (32, "the loss on 32 rows: over a whole split it costs more than training")
    return d


def render(d: Draft, *, output_dir: str, header: list[str] | None = None) -> str:
    """The config text of a draft, headed by the command that runs it and `header` comment lines."""
    lines = [
        "# text2sql run {config}",
        "#",
        "# Written by `text2sql init`. Check it with `text2sql validate {config}` before a long run;",
        "# `text2sql config --keys` lists every key with its default.",
        *(f"# {h}" if h else "#" for h in header or []),
        _line("output_dir", output_dir, indent=0),
    ]
    for section, entries in d.items():
        lines += ["", f"{section}:"]
        for key, (value, comment) in entries.items():
            if key.startswith("# "):  # a key left for the user to fill in
                text = f"  {key}: {value}"
                lines.append(f"{text:<32}  # {comment}" if comment else text)
            else:
                lines.append(_line(key, value, comment))
    return "\n".join(lines) + "\n"


def _apply(d: Draft, changes: list[Any]) -> None:
    """The sized values into the draft, each with the reason it was changed."""
    for change in changes:
        section, _, key = change.key.partition(".")
        entries = d.setdefault(section, {})
        entries[key] = (change.new, change.reason)
        if change.key == "training.max_steps":
            entries.pop("num_train_epochs", None)  # max_steps decides how long training runs


def _config_of(text: str):
    from text2sql.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "draft.yaml"
        path.write_text(text, encoding="utf-8")
        return load_config(path)


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _size(text: str, *, budget: float | None, cpu: bool):
    """(the sized config's changes and estimate) from a probe of the drafted config here."""
    from text2sql.sizing import size_run

    return size_run(_config_of(text), budget=budget, cpu=cpu)


def _header(sized, budget: float | None, cpu: bool) -> list[str]:
    from text2sql.sizing import format_duration
    from text2sql.sizing.table import describe_machine

    est = sized.estimate
    stages = ", ".join(f"{s.name} {format_duration(s.seconds)}" for s in est.stages if s.seconds is not None)
    lines = [
        "",
        f"Sized for this machine ({describe_machine(est.machine)}): estimated {format_duration(est.seconds)} in all",
        f"({stages}).",
    ]
    if cpu:
        lines.append(
            "No GPU here: compact schemas, one epoch at most, the loss on 32 rows, a test sample; "
            f"{'--budget' if budget else 'by default'} within {format_duration(budget or CPU_BUDGET)}."
        )
        lines.append("For a GPU machine: text2sql init --device gpu (CREATE TABLE schemas, 3 epochs, every test row).")
    elif budget:
        lines.append(f"Cut to fit --budget {format_duration(budget)}; each changed value says why.")
    if not sized.fits:
        lines.append("Even the smallest run here does not fit the budget: see the estimate.")
    return lines


def run(args: argparse.Namespace) -> int:
    from text2sql.data.readers import ReadOptions, detect_format

    out = Path(args.output)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out} already exists; choose another --output or pass --force to replace it")
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(f"--output {out}: a config file ends in .yaml")
    budget = None
    if args.budget is not None:
        from text2sql.sizing import parse_budget

        budget = parse_budget(args.budget)
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
    here = "gpu" if _has_gpu() else "cpu"
    device = here if args.device == "auto" else args.device
    if budget is not None and (device != here or args.no_estimate):
        why = (
            "--no-estimate"
            if args.no_estimate
            else f"--device {device} on a machine with{'out' if here == 'cpu' else ''} a GPU"
        )
        raise ConfigError(
            f"--budget sizes the run with a probe on this machine, which {why} leaves out; drop one of them"
        )
    output_dir = args.output_dir or f"runs/{out.stem}"
    d = draft(args.model, data=args.data, db=args.db, db_dir=args.db_dir, device=device)
    sized, header = None, []
    if device == here and not args.no_estimate:
        from text2sql.sizing import ProbeError

        cpu = device == "cpu"
        try:
            sized = _size(render(d, output_dir=output_dir), budget=budget or (CPU_BUDGET if cpu else None), cpu=cpu)
        except ProbeError as exc:
            if budget is not None:
                raise ConfigError(f"--budget: {exc}") from None
            print(f"no estimate: {exc}")
        else:
            _apply(d, sized.changes)
            header = _header(sized, budget, cpu)
    text = render(d, output_dir=output_dir, header=header).replace("{config}", str(out))
    out.write_text(text, encoding="utf-8")
    if sized is not None:
        _report(sized, out)
    print(f"config written to {out}; next: text2sql validate {out} && text2sql run {out}")
    return 0


def _report(sized, out: Path) -> None:
    """The estimate and the changes, printed; the estimate kept for `text2sql run` of the written config."""
    from text2sql.config import load_config
    from text2sql.sizing import estimate_table, save_estimate

    print(estimate_table(sized.estimate))
    for line in sized.summary():
        print(f"  {line}")
    save_estimate(load_config(out), sized.estimate, "text2sql init")
