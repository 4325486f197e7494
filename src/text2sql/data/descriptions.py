"""Column descriptions from BIRD's documentation, for the schema a prompt shows.

A BIRD database ships beside its documentation:

    <root>/<db_id>/<db_id>.sqlite
    <root>/<db_id>/database_description/<table>.csv

one CSV per table with the columns original_column_name, column_name, column_description,
data_format and value_description. Column names such as `A11` or `fbi_code_no` say little; the
description says what they hold and how values are coded, which is often what a question needs.
Only the useful part is kept: a description that repeats the column's name is dropped, and each
column gets one short line.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from text2sql.sql.catalog import Schema
from text2sql.sql.targets import is_url

__all__ = ["DESCRIPTION_FOLDER", "MAX_DESCRIPTION", "read_descriptions", "with_descriptions"]

log = logging.getLogger(__name__)

DESCRIPTION_FOLDER = "database_description"
# Characters of one column's description; longer ones end in "..." (prompts stay short).
MAX_DESCRIPTION = 150
_NOTHING = {"", "nan", "none", "null"}


def read_descriptions(db_file: str | Path) -> dict[tuple[str, str], str]:
    """(table, column) in lower case -> a one-line description, from the `database_description`
    folder beside a local database file; {} for a URL or a database without one."""
    if is_url(str(db_file)):
        return {}
    folder = Path(db_file).parent / DESCRIPTION_FOLDER
    if not folder.is_dir():
        return {}
    # Keyed on the newest change in the folder, so an edited file is read again.
    latest = max(p.stat().st_mtime_ns for p in (folder, *folder.iterdir()))
    return dict(_read_folder(str(folder.resolve()), latest))


def with_descriptions(schema: Schema, descriptions: Mapping[tuple[str, str], str]) -> Schema:
    """A copy of `schema` whose columns carry their descriptions; `schema` itself is left as it is
    (schemas are cached and shared between rows)."""
    tables = []
    for table in schema.tables:
        columns = []
        for col in table.columns:
            text = descriptions.get((table.name.lower(), col.name.lower()))
            columns.append(dataclasses.replace(col, description=text) if text else col)
        tables.append(
            dataclasses.replace(
                table, columns=columns, primary_key=list(table.primary_key), foreign_keys=list(table.foreign_keys)
            )
        )
    return dataclasses.replace(schema, tables=tables)


@functools.lru_cache(maxsize=64)
def _read_folder(folder: str, latest_mtime_ns: int) -> dict[tuple[str, str], str]:
    """Every table's descriptions in `folder` (`latest_mtime_ns` only keys the cache)."""
    out: dict[tuple[str, str], str] = {}
    for path in sorted(Path(folder).iterdir()):
        if path.suffix.lower() != ".csv" or not path.is_file():
            continue
        try:
            rows = _read_rows(path)
        except (OSError, csv.Error, ValueError) as e:
            log.warning("%s: skipped, not a readable description CSV (%s)", path, e)
            continue
        table = path.stem.lower()
        for row in rows:
            column = _clean(row.get("original_column_name"))
            text = _describe(column, row)
            if column and text:
                out.setdefault((table, column.lower()), text)
    return out


def _read_rows(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:  # some of BIRD's files are latin-1, which decodes any bytes
        text = data.decode("latin-1")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [_key(h) for h in next(reader, [])]
    if "original_column_name" not in header:
        raise ValueError("no original_column_name column")
    return [dict(zip(header, row)) for row in reader]


def _describe(column: str, row: Mapping[str, str]) -> str:
    """One line: what the column is, unless that only repeats its name, then how values are coded.
    With no description, the readable name stands in (`A11`: "average salary")."""
    said = {_words(column)}
    parts: list[str] = []
    for keys in (("column_description", "column_name"), ("value_description",)):
        texts = (_clean(row.get(k)) for k in keys)
        text = next((t for t in texts if t.lower() not in _NOTHING and _words(t) and _words(t) not in said), "")
        if text:
            parts.append(text)
            said.add(_words(text))
    line = "; ".join(parts)
    return line if len(line) <= MAX_DESCRIPTION else line[: MAX_DESCRIPTION - 3].rstrip() + "..."


def _key(header: str) -> str:
    """Header spellings vary between files ("Original_Column_Name ", "column description")."""
    return re.sub(r"\W+", "_", header.strip().lower()).strip("_")


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _words(text: str | None) -> str:
    """Text compared without case, punctuation and underscores: `fbi_code_no` and "FBI code no" match."""
    return " ".join(re.sub(r"[\W_]+", " ", (text or "").lower()).split())
