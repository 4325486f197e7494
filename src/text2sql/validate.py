"""`text2sql validate`: check a config, its data files and its databases before any model loads.

Every problem found is collected, so one run lists all of them. Gold SQL of a sample of rows is
executed (read-only) on its database: a dataset whose gold does not run cannot be scored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from text2sql import storage
from text2sql.config import Config
from text2sql.data.prepare import has_split, read_options
from text2sql.data.readers import ReadStats, read_examples
from text2sql.errors import Text2SQLError
from text2sql.models.tiny import parse_tiny_spec
from text2sql.sql.execution import execute_sql

_SPLITS = ("train", "validation", "test")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file() and not (path / "adapter_config.json").is_file():
            report.problems.append(f"model.name_or_path: {path} has no config.json; point it at a saved model folder")
        return
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        report.notes.append(f"model {name} is a hub id; it is downloaded when a stage needs it")
        return
    report.problems.append(f"model.name_or_path: {name} is neither an existing folder nor a hub id (owner/name)")


def _is_hub_dataset(source: str) -> bool:
    return source != "bundled" and not Path(source).exists() and bool(_HUB_ID.match(source)) and not Path(source).suffix


def _sources(cfg: Config) -> dict[str, str]:

    sources = {"train": cfg.data.train}
    for split in ("validation", "test"):
        value = getattr(cfg.data, split)
        if value is None and has_split(cfg.data.train, split):
            value = cfg.data.train
        if value is not None:
            sources[split] = value
    return sources


def validate(cfg: Config, *, gold_limit: int = 500, timeout: float = 5.0) -> ValidationReport:

    report = ValidationReport()
    _check_model(cfg, report)
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
        if check.rows and check.executable < check.rows:
            report.notes.append(
                f"{split}: {check.rows - check.executable} of {check.rows} rows have no database and cannot be "
                "executed (set data.db_dir to where the databases are)"
            )
    if "validation" not in report.splits or "test" not in report.splits:
        report.notes.append(
            f"missing splits are cut from train at prepare time (validation {cfg.data.validation_size:.0%}, "
            f"test {cfg.data.test_size:.0%}, seed {cfg.data.split_seed})"
        )
    return report
