"""`text2sql label`: questions without SQL become training pairs, written by a teacher endpoint and
checked on the database.

    report = label("questions.csv", "pairs.jsonl", LabelSettings("openai:gpt-4o-mini", samples=4),
                   ReadOptions(db="shop.sqlite", require_sql=False))

Each question is asked with the prompt a fine-tuned model gets (default settings, whole schema, in
its database's dialect): k candidates, the first greedy, the rest sampled. A candidate that holds
no SQL, or more than one statement, counts as failed; the others run read-only on the question's
database (`sql.execution`) and are voted on by result (`sql.voting`). A pair is kept only when the
chosen SQL runs, returns rows and, with k > 1, at least `min_agreement` candidates agree with it.

Kept rows are JSONL records `data.train` reads as they are (input_text, sql, db_id, as the csv
format names them) with the teacher, its votes and the agreement; dropped questions are counted by
reason in the report, printed as a table and written as JSON beside the output. The output is
written whole at the end (nothing half-written is left); answers are cached as they arrive, so a
stopped run asks only the rest when started again.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.config import Config
from text2sql.data.example import Example
from text2sql.data.prepare import LABELLED_PAIRS
from text2sql.data.readers import ReadOptions, ReadStats, read_examples
from text2sql.errors import DataError, OutputExistsError
from text2sql.inference.answer_cache import AnswerCache, answers_folder, cache_file
from text2sql.inference.endpoint_prompts import endpoint_builder, endpoint_messages
from text2sql.inference.openai_model import Answer, Decoding, OpenAIModel
from text2sql.progress import progress as progress_bar
from text2sql.rundir import RunDir, source_identity
from text2sql.sql.execution import ExecutionResult, try_open
from text2sql.sql.extract import extract_sql, looks_like_sql
from text2sql.sql.results import DEFAULT_MAX_ROWS, FORBIDDEN, NO_DATABASE, TIMEOUT
from text2sql.sql.targets import dialect_of, is_url, redact
from text2sql.sql.voting import vote

# Why a question is dropped (the keys of LabelReport.dropped).
NO_DATABASE_REASON = "no database"
NO_SQL = "no sql"
SEVERAL_STATEMENTS = "several statements"
NOT_READ_ONLY = "not read-only"
NO_ROWS = "no rows"
TOO_LITTLE_AGREEMENT = "too little agreement"
# The record fields of kept pairs that the readers take: the csv format's default column names.
QUESTION_FIELD, SQL_FIELD = "input_text", "sql"
QUESTION_COLUMNS = ("input_text", "question")  # where a questions file's question is looked for
ANSWERS = "answers"  # a run's folder of endpoint answers, beside its stages


@dataclass
class LabelSettings:
    """The teacher (`openai:NAME` at `base_url`), candidates per question (`samples`: the greedy one,
    then sampled ones with `temperature`, `top_p`, `seed`), the agreement a kept pair needs
    (default: half the samples, rounded up), the answer's `max_tokens`, the endpoint's
    `concurrency`, `max_retries` and `request_timeout` (seconds), and the SQL `timeout` (seconds)."""

    teacher: str
    samples: int = 1
    min_agreement: int | None = None
    base_url: str | None = None
    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0
    concurrency: int = 4
    max_retries: int = 3
    request_timeout: float = 60.0
    timeout: float = 5.0

    @property
    def agreement(self) -> int:
        return self.min_agreement if self.min_agreement is not None else max(1, (self.samples + 1) // 2)


@dataclass
class LabelReport:
    """What labelling kept and dropped, and what the teacher's answers cost."""

    teacher: str
    base_url: str
    samples: int
    min_agreement: int
    questions: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    tokens_in: int | None = 0
    tokens_out: int | None = 0
    cached_answers: int = 0
    output: str = ""
    read: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "teacher": self.teacher,
            "base_url": self.base_url,
            "samples": self.samples,
            "min_agreement": self.min_agreement,
            "questions": self.questions,
            "kept": self.kept,
            "dropped": dict(self.dropped.most_common()),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cached_answers": self.cached_answers,
            "output": self.output,
            "read": self.read,
        }

    def table(self) -> str:
        """The counts as a small table: questions, kept, then each drop reason."""
        rows = [("questions", self.questions), ("kept", self.kept)]
        rows += [(f"dropped: {reason}", n) for reason, n in self.dropped.most_common()]
        width = max(len(name) for name, _ in rows)
        lines = [f"{name:<{width}}  {n:>7,}" for name, n in rows]
        if self.tokens_in is not None and self.tokens_out is not None:
            lines.append(f"teacher tokens: {self.tokens_in:,} in, {self.tokens_out:,} out")
        if self.cached_answers:
            lines.append(f"{self.cached_answers:,} answers from the cache (paid for before)")
        return "\n".join(lines)


def report_path(output: str | Path) -> Path:
    """The report beside the output: `pairs.jsonl` → `pairs.report.json`."""
    output = Path(output)
    return output.with_name(f"{output.stem}.report.json")


def question_column(path: str | Path, given: str | None = None) -> str:
    """The column of a questions file that holds the question: `given`, else the first of
    input_text / question found in a CSV header or the first JSON record (input_text when unknown)."""
    if given:
        return given
    import csv

    from text2sql.data.readers import files

    path = Path(path)
    fields: list[str] = []
    try:
        if path.suffix.lower() == ".csv":
            with path.open(newline="", encoding=files.ENCODING) as f:
                fields = next(csv.reader(f), [])
        elif path.suffix.lower() in (".json", ".jsonl"):
            fields = list(files.first_record(path) or {})
    except (OSError, UnicodeDecodeError, DataError):
        return QUESTION_COLUMNS[0]  # the reader reports the problem with the file
    return next((name for name in QUESTION_COLUMNS if name in fields), QUESTION_COLUMNS[0])


def label(
    data: str | Path,
    output: str | Path,
    settings: LabelSettings,
    opts: ReadOptions,
    *,
    cfg: Config | None = None,
    cache_dir: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> LabelReport:
    """Label the questions of `data` (read with `opts`; `require_sql` is turned off) and write the
    kept pairs to `output` and the report beside it. `cfg`: the prompt settings (default: a fresh
    config's). Refuses an existing output unless `force` (OutputExistsError), before anything is
    asked; EndpointError when the teacher cannot answer; DataError for unusable questions."""
    output = Path(output)
    if output.exists() and not force:
        raise OutputExistsError(f"{output} exists; pass --force to replace it, or choose another --output")
    if output.is_dir():
        raise OutputExistsError(f"--output {output} is a folder; give a file name such as pairs.jsonl")
    opts = ReadOptions(**{**vars(opts), "require_sql": False})
    stats = ReadStats()
    examples = list(read_examples(str(data), opts, stats=stats))
    teacher = OpenAIModel(
        settings.teacher,
        base_url=settings.base_url,
        timeout=settings.request_timeout,
        max_retries=settings.max_retries,
        concurrency=settings.concurrency,
    )
    teacher.cache = AnswerCache(cache_file(cache_dir or answers_folder(), teacher.base_url, teacher.name))
    report = LabelReport(teacher.spec, teacher.base_url, settings.samples, settings.agreement, questions=len(examples))
    report.read = stats.to_dict()
    report.output = str(output)

    asked = [i for i, e in enumerate(examples) if e.db_path]
    if not asked:
        raise DataError(
            f"{data}: none of its {len(examples)} questions has a database to check SQL on; pass --db (a database "
            "file or URL, ID=TARGET for rows with that db_id, or a {db_id} pattern)"
        )
    if len(asked) < len(examples):
        report.dropped[NO_DATABASE_REASON] += len(examples) - len(asked)
    conversations = _conversations([examples[i] for i in asked], cfg)
    greedy = teacher.complete_many(conversations, Decoding(max_tokens=settings.max_tokens), progress=progress)
    sampled: list[Answer] = []
    if settings.samples > 1:
        decoding = Decoding(
            settings.max_tokens, settings.temperature, settings.top_p, settings.samples - 1, settings.seed
        )
        sampled = teacher.complete_many(conversations, decoding, progress=progress, desc="sampling")
    candidates = [
        [_candidate(a.text)] + ([_candidate(t) for t in sampled[n].texts] if sampled else [])
        for n, a in enumerate(greedy)
    ]
    _count_cost(report, [*greedy, *sampled])

    records = _vote_all([examples[i] for i in asked], candidates, settings, report, progress)
    _write(output, records, report)
    return report


def _conversations(examples: Sequence[Example], cfg: Config | None) -> list[list[dict[str, str]]]:
    """Each question's messages, in the dialect of its own database."""
    by_dialect: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_dialect[dialect_of(str(e.db_path))].append(i)
    out: list[list[dict[str, str]]] = [[] for _ in examples]
    for dialect, indices in by_dialect.items():
        messages = endpoint_messages(endpoint_builder(cfg, dialect=dialect), [examples[i] for i in indices])
        for i, m in zip(indices, messages):
            out[i] = m
    return out


@dataclass
class _Candidate:
    sql: str  # the statement to run, "" when the answer is not one
    problem: str | None  # NO_SQL or SEVERAL_STATEMENTS


def _candidate(text: str) -> _Candidate:
    """An answer's statement, or why it is none: no SQL at all (prose, a refusal, nothing), or a
    second statement after the first (only one ever runs; such an answer is not a clean label)."""
    sql = extract_sql(text)
    if not sql or not looks_like_sql(sql):
        return _Candidate("", NO_SQL)
    position = text.find(sql)
    rest = text[position + len(sql) :] if position >= 0 else ""
    after = extract_sql(rest.lstrip().lstrip(";"))
    if after and looks_like_sql(after):
        return _Candidate("", SEVERAL_STATEMENTS)
    return _Candidate(sql, None)


def _vote_all(
    examples: Sequence[Example],
    candidates: Sequence[Sequence[_Candidate]],
    settings: LabelSettings,
    report: LabelReport,
    progress: bool,
) -> list[dict[str, Any]]:
    """The kept pairs in question order, each question voted on over one connection per database."""
    by_db: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_db[str(e.db_path)].append(i)
    kept: dict[int, dict[str, Any]] = {}
    bar = progress_bar(len(examples), "checking", unit="q", enabled=progress)
    try:
        for target, indices in by_db.items():
            db = try_open(target)
            if isinstance(db, ExecutionResult):
                raise DataError(f"{redact(target)}: {db.error}; check --db")
            with db:
                for i in indices:
                    verdict = _judge(db, candidates[i], settings)
                    if isinstance(verdict, str):
                        report.dropped[verdict] += 1
                    else:
                        kept[i] = _record(examples[i], verdict, settings, report.teacher)
                    bar.update(1)
    finally:
        bar.close()
    report.kept = len(kept)
    return [kept[i] for i in sorted(kept)]


def _judge(db, candidates: Sequence[_Candidate], settings: LabelSettings) -> tuple[str, int] | str:
    """(chosen SQL, votes) for a question, or why it is dropped."""
    result = vote(db, [c.sql for c in candidates], timeout=settings.timeout, max_rows=DEFAULT_MAX_ROWS)
    if not result.groups:  # every candidate failed: the most likely one says why
        first = candidates[result.chosen]
        return first.problem or _failure(result.results[result.chosen])
    chosen = result.results[result.chosen]
    if not chosen.rows:
        return NO_ROWS
    if len(candidates) > 1 and result.support < settings.agreement:
        return TOO_LITTLE_AGREEMENT
    return candidates[result.chosen].sql, result.support


def _failure(result: ExecutionResult) -> str:
    if result.category == FORBIDDEN:
        return NOT_READ_ONLY
    if result.category == TIMEOUT:
        return "timeout"
    if result.category == NO_DATABASE:
        return NO_DATABASE_REASON
    return f"{result.category or 'runtime'} error"


def _record(example: Example, verdict: tuple[str, int], settings: LabelSettings, teacher: str) -> dict[str, Any]:
    sql, votes = verdict
    record: dict[str, Any] = {"id": example.id, QUESTION_FIELD: example.question, SQL_FIELD: sql}
    record["db_id"] = example.db_id
    if example.evidence:
        record["evidence"] = example.evidence
    record.update(
        {"teacher": teacher, "votes": votes, "samples": settings.samples, "agreement": votes / settings.samples}
    )
    return record


def _count_cost(report: LabelReport, answers: Sequence[Answer]) -> None:
    report.cached_answers = sum(1 for a in answers if a.cached)
    if any(a.prompt_tokens is None or a.completion_tokens is None for a in answers):
        report.tokens_in = report.tokens_out = None
        return
    report.tokens_in = sum(a.prompt_tokens or 0 for a in answers)
    report.tokens_out = sum(a.completion_tokens or 0 for a in answers)


def _write(output: Path, records: Sequence[dict[str, Any]], report: LabelReport) -> None:
    """The pairs and the report, each written to a temporary file renamed into place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    for path, text in (
        (output, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)),
        (report_path(output), json.dumps(report.to_dict(), indent=2) + "\n"),
    ):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ in a run


def label_for_run(cfg: Config, *, force: bool = False, progress: bool = True) -> tuple[Path, LabelReport | None]:
    """`data.label` of a run: its questions labelled into `<output_dir>/label/pairs.jsonl`, a stage
    folder recorded like the others and redone when its inputs or settings change; (the pairs file,
    the report, or None when it was current).

    The teacher is asked with the run's prompt settings (whole schemas), its answers kept in
    `<output_dir>/answers/`; endpoint settings come from `evaluation` (base_url unless
    data.label.base_url, concurrency, max_retries, request_timeout, max_new_tokens, temperature,
    top_p, sample_seed, timeout)."""
    spec = cfg.data.label
    if spec is None:
        raise DataError("the run has no data.label section; add data.label.file and data.label.teacher")
    run = RunDir(cfg.output_dir)
    stage = str(LABELLED_PAIRS.parent)
    pairs = run.stage_dir(stage) / LABELLED_PAIRS.name
    opts = ReadOptions.from_config(cfg.data)
    default_column = ReadOptions.__dataclass_fields__["question_column"].default
    given = cfg.data.question_column if cfg.data.question_column != default_column else None
    opts.question_column = question_column(spec.file, given)
    e = cfg.evaluation
    settings = LabelSettings(
        spec.teacher,
        samples=spec.samples,
        min_agreement=spec.min_agreement,
        base_url=spec.base_url or e.base_url,
        max_tokens=e.max_new_tokens,
        temperature=e.temperature,
        top_p=e.top_p,
        seed=e.sample_seed,
        concurrency=e.concurrency,
        max_retries=e.max_retries,
        request_timeout=e.request_timeout,
        timeout=e.timeout,
    )
    depends_on = {
        "label": spec.model_dump(mode="json"),
        "questions": source_identity(spec.file),
        "databases": {"db": cfg.data.db, "databases": cfg.data.databases, "db_dir": cfg.data.db_dir},
        "prompt": cfg.prompt.model_dump(mode="json"),
        "schema": {"format": cfg.data.schema_format, "sample_rows": cfg.data.schema_sample_rows},
        "question_column": opts.question_column,
        "teacher": {k: v for k, v in vars(settings).items() if k not in ("concurrency", "max_retries")},
    }
    if cfg.data.db and not is_url(cfg.data.db) and "{db_id}" not in cfg.data.db:
        depends_on["db_file"] = source_identity(cfg.data.db)
    run.check_root(force)
    # Labels are redone whenever anything they depend on changed: answers already given come from the
    # cache, so only what changed is asked again (and prepare sees new pairs and prepares again).
    if not force and run.stage(stage).is_current(depends_on):
        return pairs, None
    with run.stage(stage).staging() as staged:
        report = label(
            spec.file,
            staged / LABELLED_PAIRS.name,
            settings,
            opts,
            cfg=cfg,
            cache_dir=run.stage_dir(ANSWERS),
            force=True,
            progress=progress,
        )
        report.output = str(pairs)
        report_path(staged / LABELLED_PAIRS.name).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        run.commit(stage, staged, cfg, depends_on)
    return pairs, report
