"""Data for the engine a user runs: with `data.target_dialect` and `data.target_db`, each pair's
gold SQL is transpiled (`text2sql.sql.transpile`) and kept only when the transpiled query returns
on the target database what the original returns on its own, so that a dataset written for SQLite
trains a model on PostgreSQL or DuckDB SQL that is known to be right.

    data:
      train: spider/train_spider.json
      db_dir: spider/database                                   # where the gold was written
      target_dialect: postgres
      target_db: postgresql://me@localhost/spider?schema={db_id}  # a copy: text2sql db copy

A kept row takes the target's SQL, database and schema text; the original SQL stays in its `extra`
(`source_sql`). Dropped rows are counted by reason in the prepare report.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from text2sql.data.example import Example
from text2sql.data.readers.base import ReadOptions, ReadStats
from text2sql.data.schema import read_schema, schema_text
from text2sql.errors import DataError
from text2sql.progress import progress
from text2sql.sql.equivalence import gold_orders_results, results_match
from text2sql.sql.execution import Database, ExecutionResult, try_open
from text2sql.sql.targets import DISPLAY_NAMES, dialect_of, for_db_id, redact
from text2sql.sql.transpile import TranspileError, transpile

log = logging.getLogger("text2sql.data")

NO_SOURCE = "no database to check the gold on"
NOT_TRANSPILED = "gold not transpiled"
FAILS_ON_SOURCE = "gold fails on its database"


def fails_on(dialect: str) -> str:
    return f"transpiled gold fails on {DISPLAY_NAMES[dialect]}"


def differs_on(dialect: str) -> str:
    return f"transpiled gold returns other rows on {DISPLAY_NAMES[dialect]}"


class Retargeter:
    """Checks and rewrites Examples for one target; holds a connection per database while it runs
    (`close()` when done)."""

    def __init__(self, dialect: str, target_db: str, opts: ReadOptions, *, timeout: float = 5.0):
        self.dialect = dialect
        self.pattern = target_db
        self.opts = opts
        self.timeout = timeout
        self._open: dict[str, Database | ExecutionResult] = {}
        self._columns: dict[str, set[str]] = {}
        self.checked = 0
        self.kept = 0
        self.reasons: Counter = Counter()

    def target_of(self, db_id: str) -> str:
        if "{db_id}" not in self.pattern:
            return self.pattern
        return for_db_id(self.pattern, db_id)

    def _db(self, target: str) -> Database | ExecutionResult:
        if target not in self._open:
            self._open[target] = try_open(target)
        return self._open[target]

    def _run(self, target: str, sql: str) -> ExecutionResult:
        db = self._db(target)
        if isinstance(db, ExecutionResult):
            return db
        return db.execute(sql, timeout=self.timeout)

    def _column_names(self, source: str) -> set[str]:
        if source not in self._columns:
            schema = read_schema(source)
            self._columns[source] = {c.name for t in schema.tables for c in t.columns}
        return self._columns[source]

    def check(self, ex: Example) -> tuple[Example | None, str | None]:
        """(the Example for the target, None) or (None, why it is dropped)."""
        self.checked += 1
        if not ex.db_path:
            return None, NO_SOURCE
        target = self.target_of(ex.db_id or "")
        source_dialect = dialect_of(ex.db_path)
        columns = self._column_names(ex.db_path)
        try:
            sql = transpile(ex.sql, self.dialect, source_dialect, columns=columns)
            # The earlier turns a follow-up's prompt shows are in the target's dialect too (each was
            # checked by running it as its own row).
            history = [(q, transpile(s, self.dialect, source_dialect, columns=columns)) for q, s in ex.history]
        except TranspileError:
            return None, NOT_TRANSPILED
        gold = self._run(ex.db_path, ex.sql)
        if not gold.ok:
            return None, FAILS_ON_SOURCE
        ran = self._run(target, sql)
        if not ran.ok:
            if ran.category == "no_database":
                raise DataError(f"data.target_db: {redact(target)}: {ran.error}")
            return None, fails_on(self.dialect)
        if not results_match(gold, ran, order_matters=gold_orders_results(ex.sql)):
            return None, differs_on(self.dialect)
        schema = schema_text(target, self.opts.schema_format, self.opts.schema_sample_rows)
        extra: dict[str, Any] = {**ex.extra, "source_sql": ex.sql, "source_db": ex.db_path}
        self.kept += 1
        return replace(ex, sql=sql, db_path=target, schema=schema, extra=extra, history=history), None

    def close(self) -> None:
        for db in self._open.values():
            if not isinstance(db, ExecutionResult):
                db.close()
        self._open.clear()


def retarget(
    examples: Iterable[Example], dialect: str, target_db: str, opts: ReadOptions, stats: ReadStats, *, timeout: float
) -> Iterator[Example]:
    """The Examples that hold on the target, rewritten for it; the others counted in `stats.dropped`."""
    checker = Retargeter(dialect, target_db, opts, timeout=timeout)
    bar = progress(0, f"checking gold SQL on {DISPLAY_NAMES[dialect]}", "rows")
    try:
        for ex in examples:
            kept, reason = checker.check(ex)
            bar.update(1)
            if kept is None:
                stats.dropped[reason] += 1
                stats.kept -= 1
                continue
            yield kept
    finally:
        bar.close()
        checker.close()
        if checker.checked:
            log.info(
                "%s: %d of %d pairs hold on %s (%.1f%%)",
                stats.source,
                checker.kept,
                checker.checked,
                DISPLAY_NAMES[dialect],
                100 * checker.kept / checker.checked,
            )
