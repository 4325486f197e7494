"""Rows out of local files (CSV, JSONL, JSON arrays), streamed, with one-line errors that name the fix.

Each `iter_*` function checks the file eagerly (exists, not empty, right columns) when called and
returns a lazy iterator of dict rows, so problems surface before any row is used and a large file is
never held in memory (a JSON array is the exception: the format has to be parsed whole).
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from text2sql.errors import DataError

# utf-8-sig is strict UTF-8 that also skips the byte-order mark spreadsheet tools write (the first
# CSV column would otherwise be named '\ufeffinput_text').
ENCODING = "utf-8-sig"


def check_file(path: str | Path) -> Path:
    """The path, after checking it is a non-empty file."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path (relative paths start at the working directory)")
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder, not a data file; point at the file, or set data.format for a dataset folder"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; check that it was written completely")
    return path


def not_utf8_error(path: Path) -> DataError:
    """The error for a file that does not decode, naming the first bad byte and its line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                offset = consumed - pending + exc.start
                break
            consumed += len(chunk)
        else:
            offset = consumed
    with path.open("rb") as f:
        line = f.read(offset).count(b"\n") + 1
    return DataError(
        f"{path}: not UTF-8 text (invalid byte at offset {offset}, line {line}); "
        "re-encode it as UTF-8, e.g. iconv -f latin1 -t utf-8"
    )


def iter_csv(path: str | Path, required: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Rows of a CSV file as dicts. `required` maps each column that must exist to the fix when it does not."""
    path = check_file(path)
    try:
        with path.open(newline="", encoding=ENCODING) as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{path}: no header row; the first line must name the columns (e.g. input_text,sql)")
    found = ", ".join(header)
    for column, fix in required.items():
        if column not in header:
            raise DataError(f"{path}: no {column!r} column (columns: {found}); {fix}")
    return _csv_rows(path)


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding=ENCODING) as f:
        reader = csv.DictReader(f)
        try:
            yield from reader
        except UnicodeDecodeError:
            raise not_utf8_error(path) from None
        except csv.Error as exc:
            raise DataError(
                f"{path} line {reader.line_num}: malformed CSV ({exc}); fix the quoting on that line"
            ) from None


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Objects of a JSON Lines file, one per non-blank line."""
    return _jsonl_rows(check_file(path))


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding=ENCODING) as f:
        line_no = 0
        try:
            for line_no, line in enumerate(f, start=1):
                line = line.strip()  # so an error's column counts within this line, not into the next
                if line:
                    yield _object(json_loads(line, path, line_no), path, line_no)
        except UnicodeDecodeError:
            raise not_utf8_error(path) from None


def json_loads(text: str, path: Path, line_no: int | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        line = line_no if line_no is not None else exc.lineno
        column = exc.colno
        raise DataError(
            f"{path} line {line}: not valid JSON ({exc.msg}, column {column}); fix or remove that line"
        ) from None


def _object(value: Any, path: Path, line_no: int) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataError(f"{path} line {line_no}: expected a JSON object per line, got {type(value).__name__}")
    return value


def read_json_records(path: str | Path) -> list[dict[str, Any]] | None:
    """The records of a .json file holding one array of objects; None when the file is JSON Lines.

    (Files named .json are often JSONL: one object per line. Those are streamed by `iter_jsonl`.)
    """
    path = check_file(path)
    try:
        text = path.read_text(encoding=ENCODING)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip().startswith("{"):
            return None
        raise DataError(
            f"{path} line {exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno}); fix the file"
        ) from None
    if isinstance(value, dict):
        return None if "\n" not in text.strip() else _not_an_array(path, value)
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON array of objects, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataError(f"{path}: item {index} of the array is {type(item).__name__}, expected a JSON object")
    return value


def _not_an_array(path: Path, value: dict) -> list:
    keys = ", ".join(list(value)[:8])
    raise DataError(f"{path}: holds one JSON object (keys: {keys}), expected an array of records or JSON Lines")


def iter_json(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a .json file, whether it holds an array or JSON Lines."""
    records = read_json_records(path)
    return iter(records) if records is not None else iter_jsonl(path)


def first_record(path: str | Path) -> dict[str, Any] | None:
    """The first record of a JSON / JSONL file (for format detection), or None when it has none."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        records = read_json_records(path)
        if records is not None:
            return records[0] if records else None
    return next(iter_jsonl(path), None)
