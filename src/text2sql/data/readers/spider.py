"""Spider and BIRD: a JSON file of questions over many databases, with tables.json beside it.

    spider/dev.json            {"db_id", "question", "query"}
    spider/tables.json         schemas of every db_id
    spider/database/<db_id>/<db_id>.sqlite

    bird/mini_dev_sqlite.json  {"question_id", "db_id", "question", "evidence", "SQL", "difficulty"}
    bird/dev_tables.json
    bird/dev_databases/<db_id>/<db_id>.sqlite

A row whose database file exists gets `db_path` and the schema read from SQLite; a row whose database
is missing gets the schema from tables.json and `db_path=None` (it still trains and is still
prompted, but cannot be scored by execution; ReadStats.without_database counts those). Every db_id
is checked before the first row is yielded.

A Spider/BIRD folder may be given instead of the file: `split` picks the file (see SPLIT_FILES);
Spider's train split is train_spider.json (train_others.json, questions over other databases, is
read only when passed explicitly). A SParC or CoSQL file, laid out as Spider is, is read the same way,
one example per turn (`sparc`).

A flat record may carry the earlier turns of its conversation in `history` ([[question, sql], ...],
oldest first) and place itself with `interaction_id` and `turn` (the bundled follow-up split does).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from text2sql.data.example import Example
from text2sql.data.readers.base import (
    EVIDENCE_FIELDS,
    NO_DB_ID,
    REASONING_FIELDS,
    ExampleStream,
    ReadOptions,
    ReadStats,
    RowFunction,
    SkipRow,
    conversation_field,
    first_text,
    history_field,
    missing_field,
    row_id,
    text_field,
)
from text2sql.data.readers.databases import DATABASE_FOLDERS, Databases, find_tables_json
from text2sql.data.readers.files import first_record, iter_jsonl, read_json_records
from text2sql.data.readers.sparc import is_interaction, sparc_row_function
from text2sql.errors import DataError

# The file a Spider/BIRD folder is read from, per split (first that exists).
SPLIT_FILES = {
    "validation": ("dev.json", "mini_dev_sqlite.json", "validation.json"),
    "train": ("train_spider.json", "train.json"),
    "test": ("test.json",),
}
SPLIT_ALIASES = {None: "validation", "dev": "validation", "val": "validation", "valid": "validation"}

SQL_FIELDS = ("query", "SQL", "sql")  # Spider, BIRD, and flat records (bundled, SynSQL)
COMPLEXITY_FIELDS = ("difficulty", "hardness")  # BIRD, Spider's derived hardness labels
ID_FIELDS = ("question_id", "id")


def benchmark_row_function(opts: ReadOptions, label: str, databases: Databases) -> RowFunction:
    """Row → Example for rows that name a db_id (Spider, BIRD, bundled, SynSQL-style records)."""

    def to_example(row: Mapping[str, Any], default_id: str) -> Example:
        if "db_id" not in row:
            raise missing_field(label, "db_id", row)
        if "question" not in row:
            raise missing_field(label, "question", row)
        # Spider's own "sql" field is a parsed tree (a dict); only text fields count as SQL.
        sql_field = next((k for k in SQL_FIELDS if isinstance(row.get(k), str)), None)
        if sql_field is None and not any(k in row for k in SQL_FIELDS):
            raise missing_field(label, "query", row)
        db_id = text_field(row, "db_id")
        if not db_id:
            raise SkipRow(NO_DB_ID)
        db_path, schema = databases.resolve(db_id)
        source_id = first_text(row, ID_FIELDS) or row_id(row, default_id)
        return Example(
            question=text_field(row, "question"),
            sql=text_field(row, sql_field) if sql_field else "",
            schema=schema,
            db_id=db_id,
            db_path=db_path,
            complexity=first_text(row, COMPLEXITY_FIELDS + (opts.complexity_column,)),
            reasoning=first_text(row, REASONING_FIELDS),
            evidence=first_text(row, EVIDENCE_FIELDS),
            id=source_id,
            extra=conversation_field(row),
            history=history_field(row, label, source_id),
        )

    return to_example


def is_benchmark_folder(folder: Path) -> bool:
    """A folder laid out like a Spider/BIRD release: a tables.json, a database folder or a split file."""
    return (
        find_tables_json(folder) is not None
        or any((folder / name).is_dir() for name in DATABASE_FOLDERS)
        or any((folder / name).is_file() for names in SPLIT_FILES.values() for name in names)
    )


def split_file(folder: Path, split: str | None) -> Path:
    """The JSON file a Spider/BIRD folder holds for `split` (None: the dev/validation file)."""
    split = SPLIT_ALIASES.get(split, split)
    names = SPLIT_FILES.get(split) if split is not None else None
    if names is None:
        raise DataError(f"{folder}: no split {split!r} in a Spider/BIRD folder; use one of: {', '.join(SPLIT_FILES)}")
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(
        f"{folder}: no {' / '.join(names)} for the {split} split; pass the split's JSON file itself as the source"
    )


def open_benchmark(source: str, opts: ReadOptions, split: str | None, stats: ReadStats | None) -> ExampleStream:
    """Examples from a Spider/BIRD/SParC JSON (or JSONL) file, or from such a folder."""
    path = Path(source)
    if path.is_dir():
        path = split_file(path, split)
    records = read_json_records(path) if path.suffix.lower() == ".json" else None
    interactions = is_interaction(records[0] if records else first_record(path))
    db_field = "database_id" if interactions else "db_id"
    folder = path.parent
    tables = find_tables_json(folder, path.stem)
    folders = ([Path(opts.db_dir)] if opts.db_dir else []) + [folder / name for name in DATABASE_FOLDERS]
    databases = Databases(folders, opts, tables_path=tables, tables_expected=folder / "tables.json")
    if records is not None:
        # Validate up front: a db_id with neither database nor schema fails before any row is used.
        databases.check(text_field(r, db_field) for r in records if text_field(r, db_field))
    rows = records if records is not None else iter_jsonl(path)
    to_example = (sparc_row_function if interactions else benchmark_row_function)(opts, str(path), databases)
    return ExampleStream(rows, to_example, opts, label=str(path), stem=path.stem, stats=stats)
