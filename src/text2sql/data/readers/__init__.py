"""Every input format → `Example` records, streamed.

    stats = ReadStats()
    for example in read_examples("train.csv", ReadOptions(), stats=stats):
        ...
    print(stats.summary())   # rows read, kept, dropped by reason, kept without a database

Formats (data.format; "auto" detects, see `detect_format`):
  csv             flat records: question + SQL columns, from .csv (or .jsonl/.json/parquet)
  chat            {"messages": [...]} records (seeds 001, 003), .jsonl/.json/parquet
  create_context  {"question", "context", "answer"} (b-mc2/sql-create-context)
  spider / bird   a Spider/BIRD JSON file or folder with tables.json and databases beside it
  sparc           a SParC/CoSQL JSON file or folder, laid out as Spider's: one example per turn of each
                  conversation, the earlier turns in its `history`
  hf              a datasets.save_to_disk folder, .parquet/.arrow file, or hub id owner/name;
                  rows are mapped by their fields to one of the formats above
  bundled         the dataset shipped with the package (source "bundled", or "bundled:followup" for its
                  follow-up conversations)

Rows with an empty question or empty SQL are dropped and counted, never fatal: large scraped
datasets always hold a few, and one should not stop a run. Other drop reasons: "no reasoning"
(require_reasoning), "no assistant turn" (chat), "no db_id" (spider/bird); see ReadStats.dropped.
Structural problems (a missing file or column, invalid JSON, text that is not UTF-8, a db_id with no database and no schema) raise a
one-line `DataError` naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

from text2sql.data.readers.base import ExampleStream, ReadOptions, ReadStats, SkipRow
from text2sql.data.readers.bundled import bundled_split, is_bundled, open_bundled
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.files import check_file, first_record, iter_csv, iter_json, iter_jsonl
from text2sql.data.readers.formats import (
    FORMATS,
    ROW_FORMATS,
    check_format,
    format_from_fields,
    row_function,
    undetectable,
)
from text2sql.data.readers.hf import is_hf_source, is_hub_id, is_save_to_disk, open_hf
from text2sql.data.readers.reasoning import split_reasoning
from text2sql.data.readers.sparc import is_interaction
from text2sql.data.readers.spider import is_benchmark_folder, open_benchmark, split_file
from text2sql.errors import DataError

__all__ = [
    "FORMATS",
    "ROW_FORMATS",
    "ExampleStream",
    "ReadOptions",
    "ReadStats",
    "SkipRow",
    "detect_format",
    "format_from_fields",
    "read_examples",
    "split_reasoning",
]


def detect_format(source: str, opts: ReadOptions) -> str:
    """The format of a source, from what it is and the fields of its first record.

    "bundled" or "bundled:<split>" → bundled. A .csv file → csv. A .parquet/.arrow file, a datasets.save_to_disk folder
    (dataset_info.json / dataset_dict.json / state.json) or an `owner/name` that is no local path
    → hf. A folder with a *tables.json, a database/ (dev_databases/, ...) folder or a Spider/BIRD
    split file (dev.json, ...) → spider, bird or sparc by the fields of its dev file (when reading, `split`
    picks the file: see spider.SPLIT_FILES). A .json /
    .jsonl file → by its first record's fields (`format_from_fields`).
    """
    source = str(source)
    if is_bundled(source):
        return "bundled"
    path = Path(source)
    if not path.exists():
        if is_hub_id(source):
            return "hf"
        raise DataError(f"{source}: file not found; check the path (relative paths start at the working directory)")
    if path.is_dir():
        if is_save_to_disk(path):
            return "hf"
        if is_benchmark_folder(path):
            record = first_record(split_file(path, None))
            if is_interaction(record):
                return "sparc"
            return "bird" if record is not None and "SQL" in record else "spider"
        raise DataError(
            f"{path}: a folder that is neither a datasets.save_to_disk folder (dataset_info.json) nor a "
            "Spider/BIRD folder (tables.json, database/ or dev.json); point at a data file"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if is_hf_source(source):
        return "hf"
    if suffix in (".json", ".jsonl"):
        record = first_record(path)
        if record is None:
            raise DataError(f"{path}: holds no records; check that it is the right file and not empty")
        fmt = format_from_fields(record, opts)
        if fmt is None:
            raise undetectable(str(path), record)
        return fmt
    raise DataError(
        f"{path}: unknown file type {suffix or '(no extension)'!r}; use .csv, .jsonl, .json, .parquet or "
        f".arrow, or set data.format to one of: {', '.join(FORMATS)}"
    )


def read_examples(
    source: str | Path, opts: ReadOptions, *, split: str | None = None, stats: ReadStats | None = None
) -> ExampleStream:
    """Examples from a source, lazily. Checks the source (path, format, columns, db_ids where the
    format allows) now; rows are read as the result is iterated.

    `split` picks a split where the source has several (a save_to_disk DatasetDict or hub dataset,
    unless data.hf_split is set; a Spider/BIRD/SParC folder; the bundled dataset, where "bundled:NAME"
    names it too); plain files ignore it.
    `stats`, when given, is filled in as rows are read; it is also the result's `.stats`.
    """
    source = str(source)
    fmt = check_format(opts.format)
    if fmt == "auto":
        fmt = detect_format(source, opts)
    if fmt == "bundled":
        return open_bundled(opts, bundled_split(source) or split, stats)
    if fmt == "hf" or is_hf_source(source):
        return open_hf(source, opts, split, stats, row_format=None if fmt == "hf" else fmt)
    if fmt in ("spider", "bird", "sparc"):
        return open_benchmark(source, opts, split, stats)
    path = check_file(source)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = iter_csv(path, _csv_required(fmt, opts, path))
    elif suffix == ".jsonl":
        rows = iter_jsonl(path)
    elif suffix == ".json":
        rows = iter_json(path)
    else:
        raise DataError(f"{path}: unknown file type {suffix or '(no extension)'!r}; use .csv, .jsonl or .json")
    to_example = row_function(fmt, opts, str(path), Databases.from_options(opts))
    return ExampleStream(rows, to_example, opts, label=str(path), stem=path.stem, stats=stats)


def _csv_required(fmt: str, opts: ReadOptions, path: Path) -> dict[str, str]:
    """Columns a CSV file must have for `fmt`, each with the fix when it is missing."""
    if fmt == "csv":
        required = {opts.question_column: "set data.question_column to the column that holds the question"}
        if opts.require_sql:
            required[opts.sql_column] = "set data.sql_column to the column that holds the SQL"
        if opts.complexity_column != ReadOptions.__dataclass_fields__["complexity_column"].default:
            required[opts.complexity_column] = "set data.complexity_column to the column that holds it"
        return required
    if fmt == "create_context":
        fix = "sql-create-context data needs question, context and answer"
        return {name: fix for name in ("question", "context", "answer")}
    raise DataError(f"{path}: {fmt} data cannot be read from a CSV file; use JSONL, or set data.format to csv")
