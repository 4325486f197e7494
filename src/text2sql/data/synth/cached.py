"""`data.synth` in a run: the pairs are sampled once into `<output_dir>/synth/pairs.jsonl` (with
`pairs.report.json` and a `stage.json` record) and read from there again while the settings, the
databases and the sampling rules stay the same, so a prepare that runs again (a new tokenizer, a
changed prompt) trains on the same pairs rather than a fresh sample."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot.errors import SqlglotError

from text2sql.data.synth.output import write_pairs
from text2sql.data.synth.report import SynthReport
from text2sql.data.synth.sampler import SAMPLING_RULES, synthesize
from text2sql.data.synth.targets import databases_from_config
from text2sql.data.synth.teacher import Teacher
from text2sql.errors import ConfigError, DataError
from text2sql.rundir import StageFolder, source_identity
from text2sql.sql.targets import dialect_of, redact

log = logging.getLogger(__name__)

STAGE = "synth"
PAIRS = "pairs.jsonl"


def synth_depends_on(data: Any) -> dict[str, Any]:
    """What the sampled pairs depend on: the `data.synth` settings, each database (a file's size and
    time; a server's URL), and the version of the sampling rules."""
    databases = databases_from_config(data)
    return {
        "settings": data.synth.model_dump(mode="json"),
        "databases": {db_id: source_identity(target) for db_id, target in sorted(databases.items())},
        "rules": SAMPLING_RULES,
    }


def synthesized_pairs(
    data: Any, output_dir: str | Path, teacher: Callable[[], Teacher] | None = None
) -> tuple[Path, dict[str, str], SynthReport | None]:
    """(the run's file of synthesized pairs, db_id -> database of its rows, the report of the
    sampling or None when the file was current), sampling them first unless the file is current.
    `data` is the run's `data` section with `data.synth` set; `teacher` makes the teacher of
    data.synth.teacher (the prepare stage passes one; without it such pairs must be current)."""
    databases = databases_from_config(data)
    if data.target_dialect:
        other = {db_id: dialect_of(t) for db_id, t in databases.items() if dialect_of(t) != data.target_dialect}
        if other:
            raise ConfigError(
                f"data.synth writes SQL in each database's own dialect, but {', '.join(sorted(other))} is not "
                f"{data.target_dialect} (data.target_dialect); point data.databases at the {data.target_dialect} copies"
            )
    settings = data.synth
    depends_on = synth_depends_on(data)
    folder = StageFolder(Path(output_dir) / STAGE, STAGE)
    path = folder.path / PAIRS
    if folder.is_current(depends_on) and path.is_file():
        log.info("synthesized pairs up to date: %s", path)
        return path, databases, None
    if settings.teacher and teacher is None:
        raise ConfigError(
            f"{path}: the pairs of data.synth (teacher {settings.teacher}) are missing or stale; run `text2sql "
            "prepare` or `text2sql run`, which ask the teacher first"
        )
    pairs, report = synthesize(
        databases,
        settings.n,
        seed=settings.seed,
        per_database=settings.per_database,
        teacher=teacher() if settings.teacher and teacher is not None else None,
        teacher_name=settings.teacher,
    )
    if not pairs:
        shown = ", ".join(redact(t) for t in databases.values())
        raise DataError(
            f"data.synth: no pair could be sampled from {shown} (drops: {dict(report.drop_reasons())}); check that "
            "the tables hold rows the read-only role may see"
        )
    with folder.staging() as staged:
        write_pairs(pairs, report, staged / PAIRS)
        folder.commit(staged, depends_on, extra={"pairs": len(pairs)})
    return path, databases, report


def sql_key(sql: str, dialect: str) -> str:
    """A query as written text compares: parsed and written back by sqlglot (case, spacing and quoting
    made uniform), else its words in lower case."""
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
        text = tree.sql(dialect=dialect, normalize=True)
    except (SqlglotError, RecursionError, ValueError):
        text = sql
    return " ".join(re.sub(r"\s*;\s*$", "", text).lower().split())


def held_out_keys(rows: Iterable[tuple[str | None, str | None]], dialects: dict[str, str]) -> set[tuple[str, str]]:
    """(db_id, `sql_key`) of held-out rows on the synthesized databases: a sampled pair with the same
    query would put a test answer into training."""
    keys = set()
    for db_id, sql in rows:
        if db_id in dialects and sql:
            keys.add((db_id, sql_key(sql, dialects[db_id])))
    return keys


def has_held_out(data: Any) -> bool:
    """Whether a run has rows to evaluate on: sampled pairs never become validation or test rows,
    so a run on data.synth alone has none unless data.validation or data.test gives them."""
    return bool(data.train or data.validation or data.test)
