"""Sampling pairs from databases: each database is profiled (`profile`), its joins found (`joins`),
and candidates are drawn class by class, always from the class with the fewest pairs so far, so that
the classes stay balanced; a class that yields nothing in MAX_ATTEMPTS draws in a row is done for
that database, and its share goes to the others. Every candidate runs on the read-only engine with a
time bound and passes `checks`, then duplicates are dropped (`dedup`), and with a teacher the
question is reworded and the round trip checked (`teacher`).

Seeded: the same seed, databases and data give the same pairs in the same order (a teacher's
answers aside, which its endpoint decides).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from text2sql.data.schema import read_schema, render_schema
from text2sql.data.synth.checks import (
    DUPLICATE_QUESTION,
    DUPLICATE_RESULT,
    MAX_RESULT_ROWS,
    QUERY_TIMEOUT,
    REPEATED_SQL,
    ROUND_TRIP,
    TEACHER_ERROR,
    refusal,
)
from text2sql.data.synth.dedup import normalised_question, result_signature
from text2sql.data.synth.joins import join_edges
from text2sql.data.synth.profile import profile_schema
from text2sql.data.synth.report import SynthReport
from text2sql.data.synth.shapes import CLASSES, SHAPES, Candidate, DatabaseView
from text2sql.data.synth.teacher import Teacher, clean_question, question_messages, sql_messages
from text2sql.errors import DataError, Text2SQLError
from text2sql.progress import progress as progress_bar
from text2sql.sql.equivalence import results_match
from text2sql.sql.execution import open_database
from text2sql.sql.extract import extract_sql
from text2sql.sql.results import ExecutionResult
from text2sql.sql.targets import redact

MAX_ATTEMPTS = 60  # draws in a row without a new pair before a class is done for a database
# Version of the shapes, phrasings and checks: a run's cached pairs are sampled again when it changes.
SAMPLING_RULES = 2
SOURCE = "synth"  # the `source` of every synthesized row


@dataclass
class Pair:
    db_id: str
    question: str
    sql: str
    complexity: str
    shape: str

    def row(self, number: int) -> dict[str, Any]:
        """The JSONL row `data.train` reads (Spider-style: db_id, question, sql, sql_complexity)."""
        return {
            "id": f"{SOURCE}-{self.db_id}-{number:05d}",
            "db_id": self.db_id,
            "question": self.question,
            "sql": self.sql,
            "sql_complexity": self.complexity,
            "source": SOURCE,
            "shape": self.shape,
        }


def synthesize(
    databases: dict[str, str],
    n: int,
    *,
    seed: int = 0,
    per_database: bool = False,
    teacher: Teacher | None = None,
    teacher_name: str | None = None,
    show_progress: bool = True,
) -> tuple[list[Pair], SynthReport]:
    """Up to `n` pairs over `databases` (db_id -> file or URL), spread evenly over them (`n` each
    with `per_database`), balanced over the complexity classes; and the report. Raises DataError
    for a database that cannot be opened, and the teacher's Text2SQLError when it cannot answer."""
    report = SynthReport(requested=n * len(databases) if per_database else n, seed=seed, teacher=teacher_name)
    start = time.perf_counter()
    pairs: list[Pair] = []
    bar = progress_bar(report.requested, "synthesizing", unit="pairs", enabled=show_progress)
    try:
        ids = sorted(databases)
        for i, db_id in enumerate(ids):
            remaining = report.requested - len(pairs)
            quota = n if per_database else -(-remaining // (len(ids) - i))  # ceil: a shortfall moves on
            pairs += _Sampler(db_id, databases[db_id], seed, report, teacher, bar).run(quota)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - start
    return pairs, report


class _Sampler:
    """The pairs of one database."""

    def __init__(self, db_id: str, target: str, seed: int, report: SynthReport, teacher: Teacher | None, bar: Any):
        self.db_id, self.target, self.report, self.teacher, self.bar = db_id, target, report, teacher, bar
        self.rng = random.Random(f"{seed}:{db_id}")
        self.seen_sql: set[str] = set()
        self.seen_results: set[str] = set()
        self.seen_questions: set[str] = set()

    def run(self, quota: int) -> list[Pair]:
        schema = read_schema(self.target)
        try:
            db = open_database(self.target)
        except (OSError, ConnectionError) as exc:
            raise DataError(f"{redact(self.target)}: {exc}") from None
        with db:
            profiles = profile_schema(db, schema)
            edges = join_edges(db, schema, profiles)
            self.view = DatabaseView(self.db_id, schema.dialect, profiles, edges)
            self.schema_text = render_schema(schema, "sql") if self.teacher is not None else ""
            self.db = db
            kept = self._sample(quota)
        self.report.databases[self.db_id] = {
            "dialect": schema.dialect,
            "tables": len(profiles),
            "joins": {"declared": sum(e.declared for e in edges), "plausible": sum(not e.declared for e in edges)},
            "kept": {c: sum(p.complexity == c for p in kept) for c in CLASSES},
        }
        return kept

    def _sample(self, quota: int) -> list[Pair]:
        kept: list[Pair] = []
        counts = dict.fromkeys(CLASSES, 0)
        active = list(CLASSES)
        while len(kept) < quota and active:
            cls = min(active, key=lambda c: (counts[c], CLASSES.index(c)))
            pair = self._draw(cls)
            if pair is None:
                active.remove(cls)
                continue
            kept.append(pair)
            counts[cls] += 1
            self.report.kept[cls] += 1
            self.bar.update(1)
        return kept

    def _draw(self, cls: str) -> Pair | None:
        """One new pair of class `cls`, or None after MAX_ATTEMPTS draws without one."""
        for _ in range(MAX_ATTEMPTS):
            shapes = SHAPES[cls]
            shape = self.rng.choices([s for s, _ in shapes], [w for _, w in shapes])[0]
            candidate = shape(self.view, self.rng)
            if candidate is None:
                continue  # the database has nothing this shape needs
            pair = self._check(candidate)
            if pair is not None:
                return pair
        return None

    def _check(self, candidate: Candidate) -> Pair | None:
        drop = self.report.drop
        if candidate.sql in self.seen_sql:
            drop(candidate.cls, REPEATED_SQL)
            return None
        self.seen_sql.add(candidate.sql)
        result = self.db.execute(candidate.sql, timeout=QUERY_TIMEOUT, max_rows=MAX_RESULT_ROWS)
        reason = refusal(candidate, result, self.db)
        if reason is not None:
            drop(candidate.cls, reason)
            return None
        signature = result_signature(self.db_id, candidate.columns, result.rows, candidate.ordered)
        if signature in self.seen_results:
            drop(candidate.cls, DUPLICATE_RESULT)
            return None
        question = candidate.question
        if self.teacher is not None:
            worded = self._teacher_question(candidate, result)
            if worded in (TEACHER_ERROR, ROUND_TRIP):
                drop(candidate.cls, worded)
                return None
            question = worded
        key = normalised_question(question)
        if key in self.seen_questions:
            drop(candidate.cls, DUPLICATE_QUESTION)
            return None
        self.seen_results.add(signature)
        self.seen_questions.add(key)
        return Pair(self.db_id, question, candidate.sql, candidate.cls, candidate.shape)

    def _teacher_question(self, candidate: Candidate, result: ExecutionResult) -> str:
        """The teacher's question for the candidate when its own SQL for that question returns the
        same result; else the drop reason."""
        assert self.teacher is not None
        dialect = self.view.dialect
        try:
            question = clean_question(
                self.teacher.ask(question_messages(self.schema_text, candidate.sql, dialect, candidate.question))
            )
            if not question:
                return TEACHER_ERROR
            answer = extract_sql(self.teacher.ask(sql_messages(self.schema_text, question, dialect)))
        except Text2SQLError:
            raise  # an unreachable or refusing teacher stops the run with its one-line reason
        except Exception:  # one request the endpoint failed (a server error after retries)
            return TEACHER_ERROR
        if not answer:
            return ROUND_TRIP
        back = self.db.execute(answer, timeout=QUERY_TIMEOUT, max_rows=MAX_RESULT_ROWS)
        if not back.ok or not results_match(result, back, order_matters=candidate.ordered):
            return ROUND_TRIP
        return question
