"""`text2sql validate`: check a config, its data files and its databases before any model loads.

Every problem found is collected, so one run lists all of them. Gold SQL of a sample of rows is
executed (read-only) on its database: a dataset whose gold does not run cannot be scored.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from text2sql import storage
from text2sql.config import Config
from text2sql.data.prepare import has_split, read_options
from text2sql.data.readers import ReadStats, read_examples
from text2sql.data.readers.hf import DATA_SUFFIXES
from text2sql.data.schema import read_schema
from text2sql.errors import ConfigError, DataError, MissingExtraError, Text2SQLError
from text2sql.models.gguf import is_gguf
from text2sql.models.registry import is_model_resource
from text2sql.models.tiny import parse_tiny_spec
from text2sql.paths import is_hub_id
from text2sql.sql.execution import execute_sql
from text2sql.sql.targets import dialect_of, is_url, local_path
from text2sql.tracking import check_backend

_SPLITS = ("train", "validation", "test")
_LAUNCH_CONFIG = re.compile(r"^#\s*accelerate launch .*--config_file[= ](\S+)")


@dataclass
class SplitCheck:
    source: str
    rows: int = 0
    executable: int = 0
    databases: set[str] = field(default_factory=set)
    dropped: dict[str, int] = field(default_factory=dict)
    gold_checked: int = 0
    gold_failed: int = 0


@dataclass
class ValidationReport:
    splits: dict[str, SplitCheck] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def problem_line(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{len(self.problems)} problems: " + "; ".join(self.problems)

    def render(self) -> str:
        lines = [f"{'split':<11}{'rows':>8}{'executable':>12}{'databases':>11}{'gold ok':>12}  source"]
        for name, s in self.splits.items():
            gold = f"{s.gold_checked - s.gold_failed}/{s.gold_checked}" if s.gold_checked else "-"
            lines.append(f"{name:<11}{s.rows:>8}{s.executable:>12}{len(s.databases):>11}{gold:>12}  {s.source}")
            if s.dropped:
                lines.append("  dropped while reading: " + ", ".join(f"{k}={v}" for k, v in sorted(s.dropped.items())))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)


def _check_model(cfg: Config, report: ValidationReport) -> None:
    name = cfg.model.name_or_path
    if name.startswith("tiny:"):
        try:
            parse_tiny_spec(name)
        except Text2SQLError as exc:
            report.problems.append(f"model.name_or_path: {exc}")
        return
    if name.startswith(("gs://", "s3://")):
        report.notes.append(f"model {name} is remote; it is fetched when a stage needs it")
        return
    if is_gguf(name):
        if name.lower().endswith(".gguf") and not Path(name).expanduser().is_file():
            report.problems.append(f"model.name_or_path: no GGUF file at {name}; check the path")
        elif importlib.util.find_spec("gguf") is None:
            report.problems.append(str(MissingExtraError(f"reading the GGUF model {name}", "gguf", "gguf")))
        else:
            report.notes.append(f"model {name} is GGUF; it is converted into a cached folder when a stage needs it")
        return
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            report.problems.append(f"model.name_or_path: {path} has no config.json; point it at a saved model folder")
        return
    if is_hub_id(name, owner=True):
        report.notes.append(f"model {name} is a hub id; it is downloaded when a stage needs it")
        return
    report.problems.append(f"model.name_or_path: {name} is neither an existing folder nor a hub id (owner/name)")


def _is_hub_dataset(source: str) -> bool:
    return is_hub_id(source, owner=True, file_suffixes=DATA_SUFFIXES)


def _sources(cfg: Config) -> dict[str, str]:

    train = cfg.data.train
    sources = {"train": train} if train else {}  # none: data.synth samples all of train
    for split in ("validation", "test"):
        value = getattr(cfg.data, split)
        if value is None and train and has_split(train, split):
            value = train
        if value is not None:
            sources[split] = value
    return sources


def _required_packages(cfg: Config) -> list[tuple[str, str, str, str]]:
    """(what needs it, import name, pip package, text2sql extra) for the optional packages `cfg` uses."""
    needed = []
    if cfg.finetune.method == "qlora":
        needed.append(("finetune.method=qlora", "bitsandbytes", "bitsandbytes", "qlora"))
    if cfg.training.get("deepspeed"):
        needed.append(("training.deepspeed", "deepspeed", "deepspeed", "deepspeed"))
    for key, backend in (("evaluation.backend", cfg.evaluation.backend), ("serving.backend", cfg.serving.backend)):
        if backend == "vllm":
            needed.append((f"{key}=vllm", "vllm", "vllm", "vllm"))
    if cfg.rl.enabled and cfg.rl.use_vllm:
        needed.append(("rl.use_vllm", "vllm", "vllm", "vllm"))
    if cfg.launch.register_model:
        needed.append(("launch.register_model", "google.cloud.aiplatform_v1", "google-cloud-aiplatform", "vertex"))
    if is_model_resource(cfg.model.name_or_path):
        needed.append(("a Model Registry model", "google.cloud.aiplatform_v1", "google-cloud-aiplatform", "vertex"))
    return needed


def _launcher_packages(config_path: str | None) -> list[tuple[str, str, str, str]]:
    """What the command a preset is headed by needs: `# accelerate launch --config_file F ...` with a
    DeepSpeed config in F needs deepspeed (presets start with the command that runs them)."""
    if not config_path or not Path(config_path).is_file():
        return []
    lines = Path(config_path).read_text(encoding="utf-8").splitlines()
    match = _LAUNCH_CONFIG.search(lines[0]) if lines else None
    if match is None:
        return []
    accelerate_config = Path(match.group(1))
    try:
        launcher = yaml.safe_load(accelerate_config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    if isinstance(launcher, dict) and launcher.get("distributed_type") == "DEEPSPEED":
        return [(f"the launch command's {accelerate_config}", "deepspeed", "deepspeed", "deepspeed")]
    return []


def _check_requirements(cfg: Config, report: ValidationReport, config_path: str | None) -> None:
    """Every optional package the config (and the launch command it is headed by) needs and this
    environment lacks: one problem per package, with the pip command (a run would stop on it later)."""
    for what, module, package, extra in [*_required_packages(cfg), *_launcher_packages(config_path)]:
        if importlib.util.find_spec(module) is None:
            report.problems.append(str(MissingExtraError(what, package, extra)))
    try:
        check_backend(cfg)
    except (MissingExtraError, ConfigError) as exc:
        report.problems.append(str(exc))
    d = cfg.data
    urls = [
        cfg.output_dir,
        cfg.model.name_or_path,
        d.train,
        d.validation,
        d.test,
        d.db_dir,
        cfg.callbacks.checkpoint_sync,
    ]
    packages_missing: set[str] = set()
    for url in dict.fromkeys(u for u in urls if u and storage.is_remote(u)):
        missing = storage.missing_package(url)
        if missing is not None and url.split("://")[0] not in packages_missing:
            packages_missing.add(url.split("://")[0])
            report.problems.append(str(missing))


def _missing_database(cfg: Config, check: SplitCheck, split: str) -> str | None:
    """Why the rows of a split without a database have none, and the fix."""
    missing = check.rows - check.executable
    if not missing:
        return None
    if cfg.data.db_dir and not check.databases:
        return (
            f"{split}: data.db_dir is set but no row of {check.source} has a db_id, so no row is matched to a "
            "database; add a db_id column naming <db_dir>/<db_id>/<db_id>.sqlite, or set data.db=FILE.sqlite "
            "for one database for every row"
        )
    return (
        f"{split}: {missing} of {check.rows} rows have no database and cannot be executed (set data.db to the "
        "database file, or data.db_dir to the folder of <db_id>/<db_id>.sqlite databases)"
    )


def _database_problem(cfg: Config) -> str | None:
    """Why data.db, data.databases or data.target_db cannot be used: an unknown URL scheme, a missing
    file, a server that cannot be reached, an engine whose package is missing."""
    d = cfg.data
    named = {"data.db": d.db, **{f"data.databases.{k}": v for k, v in d.databases.items()}}
    for key, target in named.items():
        if not target or "{db_id}" in target:
            continue  # a pattern is checked row by row, with the rows' db_ids
        try:
            dialect = dialect_of(target)
            if not is_url(target) and not local_path(target).is_file():
                return f"{key}: no database file at {target}; give the path of a SQLite or DuckDB file, or a URL"
            if dialect != "sqlite":
                read_schema(target)  # a wrong host or password, a missing package: named now, not mid-prepare
        except (ConfigError, DataError, MissingExtraError) as exc:
            return f"{key}: {exc}"
    return None


def validate(
    cfg: Config, *, gold_limit: int = 500, timeout: float = 5.0, config_path: str | None = None
) -> ValidationReport:
    """Check `cfg` (read from `config_path`, when it came from a file) without loading a model."""

    report = ValidationReport()
    _check_model(cfg, report)
    _check_requirements(cfg, report, config_path)
    problem = _database_problem(cfg)
    if problem is not None:
        report.problems.append(problem)
        return report
    if cfg.data.db_dir and storage.is_remote(cfg.data.db_dir):
        report.notes.append(f"data.db_dir {cfg.data.db_dir} is remote; it is fetched when a stage needs it")
    elif cfg.data.db_dir and not Path(cfg.data.db_dir).is_dir():
        report.problems.append(
            f"data.db_dir: {cfg.data.db_dir} is not a folder; set it to the folder holding <db_id>/<db_id>.sqlite"
        )
    opts = read_options(cfg)
    for split, source in _sources(cfg).items():
        if storage.is_remote(source) or _is_hub_dataset(source):
            where = "remote" if storage.is_remote(source) else "a hub dataset"
            report.notes.append(f"{split}: {source} is {where}; it is read when prepare runs, not checked offline")
            continue
        check = SplitCheck(source=source)
        stats = ReadStats()
        failures: list[str] = []
        try:
            for ex in read_examples(source, opts, split=split, stats=stats):
                check.rows += 1
                if ex.db_id:
                    check.databases.add(ex.db_id)
                if not ex.db_path:
                    continue
                check.executable += 1
                if check.gold_checked >= gold_limit:
                    continue
                check.gold_checked += 1
                result = execute_sql(ex.db_path, ex.sql, timeout=timeout)
                if not result.ok:
                    check.gold_failed += 1
                    if len(failures) < 3:
                        failures.append(f"{ex.id or check.rows}: {result.error}")
        except Text2SQLError as exc:
            report.problems.append(str(exc))
        check.dropped = dict(stats.dropped)
        report.splits[split] = check
        if check.rows == 0 and not any(source in p for p in report.problems):
            report.problems.append(f"{source}: no usable rows for the {split} split; check the file and data.format")
        if check.gold_failed:
            report.problems.append(
                f"{split}: {check.gold_failed} of {check.gold_checked} gold SQL queries fail on their database "
                f"(e.g. {failures[0]}); fix the SQL or the database"
            )
        why = _missing_database(cfg, check, split)
        if why is not None:
            # A db_dir that matches nothing is a mistake; rows that never had a database are a choice.
            (report.problems if "data.db_dir is set" in why else report.notes).append(why)
    if "validation" not in report.splits or "test" not in report.splits:
        report.notes.append(
            f"missing splits are cut from train at prepare time (validation {cfg.data.validation_size:.0%}, "
            f"test {cfg.data.test_size:.0%}, seed {cfg.data.split_seed}"
            + (", whole databases per split)" if cfg.data.split_by == "db_id" else ")")
        )
    return report
