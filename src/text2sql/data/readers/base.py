"""What every reader shares: its options, its counts, and the loop that turns rows into Examples.

A reader is a stream of raw rows plus one row→Example function (a conversation's row gives one
Example per answered turn). `ExampleStream` runs the function on each row, applies the rules common to all formats (`finish`), counts what it keeps and drops in a
`ReadStats`, and raises a `DataError` when the source held no rows at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.data.example import Example, Turn
from text2sql.data.readers.reasoning import split_reasoning
from text2sql.data.schema import schema_text
from text2sql.errors import DataError
from text2sql.sql.targets import for_db_id, is_url, name_of

# Reasons a row is dropped (the keys of ReadStats.dropped).
EMPTY_QUESTION = "empty question"
EMPTY_SQL = "empty sql"
NO_REASONING = "no reasoning"
NO_ASSISTANT_TURN = "no assistant turn"
NO_DB_ID = "no db_id"

# Optional fields any row format may carry, under the names real datasets use (SynSQL: cot,
# external_knowledge; BIRD: evidence).
EVIDENCE_FIELDS = ("evidence", "external_knowledge")
REASONING_FIELDS = ("reasoning", "cot")


@dataclass
class ReadOptions:
    """How to read one data source; the fields mirror the `data.*` config keys of the same names."""

    format: str = "auto"  # auto | csv | chat | create_context | spider | bird | hf | bundled
    question_column: str = "input_text"  # csv / flat records: the column holding the question
    sql_column: str = "sql"  # csv / flat records: the column holding the target SQL
    complexity_column: str = "sql_complexity"  # csv / flat records: optional complexity label
    db: str | None = None  # one database for every row that names none (a file, a URL, or a {db_id} pattern)
    databases: dict[str, str] = field(default_factory=dict)  # db_id -> database (file or URL)
    db_dir: str | None = None  # databases as <db_dir>/<db_id>/<db_id>.sqlite
    schema_format: str = "sql"  # sql | compact
    schema_sample_rows: int = 0  # rows per table appended to schemas read from SQLite
    require_reasoning: bool = False  # drop rows whose target has no reasoning
    hf_split: str | None = None  # split of a HF dataset (hub id / save_to_disk DatasetDict)
    hf_config: str | None = None  # configuration name of a HF hub dataset
    require_sql: bool = True  # False: questions alone are rows (`text2sql label`), their SQL is optional

    @classmethod
    def from_config(cls, data: Any) -> ReadOptions:
        """Options from any object (e.g. the `data` config section) with attributes of these names."""
        return cls(**{name: getattr(data, name) for name in cls.__dataclass_fields__ if hasattr(data, name)})


@dataclass
class ReadStats:
    """Counts for one read, filled in as the stream is consumed.

    `records`: rows seen in the source; `kept`: Examples yielded (a conversation's row yields one per
    turn); `dropped`: rows (or turns) skipped, by reason
    (e.g. {"empty sql": 3, "no reasoning": 12}); `without_database`: kept rows that have no database
    to execute on (they still train, but cannot be scored by execution).
    """

    source: str = ""
    records: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)
    without_database: int = 0

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        text = f"{self.source}: {self.records} rows read, {self.kept} kept"
        if self.without_database:
            text += f" ({self.without_database} without a database to execute on)"
        if self.dropped:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(self.dropped.items()))
            text += f", {self.total_dropped} dropped ({reasons})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "records": self.records,
            "kept": self.kept,
            "dropped": dict(self.dropped),
            "without_database": self.without_database,
        }


class SkipRow(Exception):
    """Raised by a row function for a row that cannot become an Example; the reason is counted."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# A row function: (row, default id) -> Example, or the Examples of a conversation's turns, in order. The
# default id is `<source stem>-<row index>`.
RowFunction = Callable[[Mapping[str, Any], str], "Example | list[Example]"]


def text_field(row: Mapping[str, Any], key: str) -> str:
    """The field as stripped text ('' when absent or null); numbers are accepted as text."""
    value = row.get(key)
    return "" if value is None else str(value).strip()


def optional_text(row: Mapping[str, Any], key: str) -> str | None:
    return text_field(row, key) or None


def first_text(row: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The first of `keys` that holds non-empty text, or None."""
    return next((text for text in (text_field(row, k) for k in keys) if text), None)


def missing_field(label: str, name: str, row: Mapping[str, Any], key: str | None = None) -> DataError:
    """The error for rows that lack a field the format needs, listing the fields they do have."""
    fields = ", ".join(str(k) for k in row) or "none"
    fix = f"set {key} to the field that holds it" if key else "set data.format to the format of this data"
    return DataError(f"{label}: no {name!r} field (fields: {fields}); {fix}")


def row_id(row: Mapping[str, Any], default: str) -> str:
    """The source's own id when it has one, else `<stem>-<index>`: stable across runs and filters."""
    return text_field(row, "id") or default


def history_field(row: Mapping[str, Any], label: str, row_name: str) -> list[Turn]:
    """A flat record's earlier turns, oldest first: its `history` field, a list of [question, sql]
    pairs or of {"question", "sql" (or "query")} objects; [] when the record has none."""
    value = row.get("history")
    if value is None:
        return []
    turns: list[Turn] = []
    for turn in value if isinstance(value, (list, tuple)) else [value]:
        if isinstance(turn, Mapping):
            question, sql = turn.get("question"), turn.get("sql", turn.get("query"))
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            question, sql = turn
        else:
            question = sql = None
        if not isinstance(question, str) or not isinstance(sql, str):
            raise DataError(
                f"{label}: row {row_name}: 'history' must be a list of [question, sql] pairs or "
                '{"question", "sql"} objects, oldest first'
            )
        turns.append((question.strip(), sql.strip()))
    return turns


def conversation(interaction: str, turn: int) -> dict[str, Any]:
    """The `extra` entries that place a row in its conversation (its id and 1-based turn)."""
    return {"interaction": interaction, "turn": turn}


def conversation_field(row: Mapping[str, Any]) -> dict[str, Any]:
    """`conversation` of a flat record that names its `interaction_id` and `turn`; {} otherwise."""
    interaction, turn = text_field(row, "interaction_id"), row.get("turn")
    if not interaction or turn is None:
        return {}
    try:
        return conversation(interaction, int(turn))
    except (TypeError, ValueError):
        return {}


def database_for(db_id: str | None, opts: ReadOptions) -> str | None:
    """The database a row runs on when it brings none itself: its db_id's entry in data.databases,
    else data.db (with its db_id filled into a `{db_id}` pattern)."""
    if db_id and db_id in opts.databases:
        return opts.databases[db_id]
    if not opts.db:
        return None
    if "{db_id}" in opts.db:
        return for_db_id(opts.db, db_id) if db_id else None
    return opts.db if is_url(opts.db) else str(Path(opts.db).resolve())


def attach_database(example: Example, opts: ReadOptions) -> None:
    """A row with no database of its own runs on `database_for` its db_id, and is shown that
    database's schema when the row brought none."""
    if example.db_path is not None:
        return
    target = database_for(example.db_id, opts)
    if target is None:
        return
    example.db_path = target
    example.db_id = example.db_id or name_of(target)
    if not example.schema.strip():
        example.schema = schema_text(target, opts.schema_format, opts.schema_sample_rows)


def check_database(opts: ReadOptions) -> None:
    """DataError now, before any row is read, when `data.db` names no file."""
    if opts.db and "{db_id}" not in opts.db and not is_url(opts.db) and not Path(opts.db).is_file():
        raise DataError(f"data.db: no database file at {opts.db}; give the path of a SQLite or DuckDB file, or a URL")


def finish(example: Example, opts: ReadOptions) -> Example:
    """Rules shared by all formats: split reasoning from a fenced SQL block, drop empty or unwanted
    rows, attach `data.db`."""
    if example.reasoning is None:
        example.reasoning, example.sql = split_reasoning(example.sql)
    example.question = example.question.strip()
    example.sql = example.sql.strip()
    if not example.question:
        raise SkipRow(EMPTY_QUESTION)
    if not example.sql and opts.require_sql:
        raise SkipRow(EMPTY_SQL)
    if opts.require_reasoning and not example.reasoning:
        raise SkipRow(NO_REASONING)
    attach_database(example, opts)
    return example


class ExampleStream(Iterator[Example]):
    """Examples from one source, produced lazily; `stats` holds the counts so far.

    `rows` must be lazy too (a generator), so a 100k-row file is never held in memory.
    """

    def __init__(
        self,
        rows: Iterable[Mapping[str, Any]],
        to_example: RowFunction,
        opts: ReadOptions,
        *,
        label: str,
        stem: str,
        stats: ReadStats | None = None,
    ):
        check_database(opts)
        self.stats = stats if stats is not None else ReadStats()
        self.stats.source = self.stats.source or label
        self._iter = self._run(rows, to_example, opts, label, stem)

    def __next__(self) -> Example:
        return next(self._iter)

    def _run(self, rows, to_example: RowFunction, opts: ReadOptions, label: str, stem: str) -> Iterator[Example]:
        stats = self.stats
        index = -1
        for index, row in enumerate(rows):
            stats.records += 1
            try:
                produced = to_example(row, f"{stem}-{index}")
            except SkipRow as skip:
                stats.dropped[skip.reason] += 1
                continue
            for example in [produced] if isinstance(produced, Example) else produced:
                try:
                    example = finish(example, opts)
                except SkipRow as skip:
                    stats.dropped[skip.reason] += 1
                    continue
                stats.kept += 1
                if example.db_path is None:
                    stats.without_database += 1
                yield example
        if index < 0:
            raise DataError(f"{label}: holds no rows; check that it is the right file and not empty")
