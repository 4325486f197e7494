"""Predictions made by any system, read for scoring without loading a model.

Two formats:

- text: one SQL per line, in the data's order (the Spider convention). A tab ends the SQL, so a
  Spider gold file (`SQL<TAB>db_id`) reads as its SQL. A blank line is an empty prediction.
- JSONL: one object per line with an id (`id`, `question_id` or `example_id`) matching the data's
  ids, and the SQL under `predicted_sql`, `prediction`, `pred`, `sql` or `query`; or the model's raw
  text under `raw_output`, `output`, `response`, `completion` or `generated_text`, from which the SQL
  is extracted as for model output. `predictions.jsonl` written by `text2sql evaluate` reads back.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from text2sql.errors import DataError
from text2sql.evaluation.evalset import EvalRow, ids_unique
from text2sql.sql.extract import extract_sql

ID_FIELDS = ("id", "question_id", "example_id")
SQL_FIELDS = ("predicted_sql", "prediction", "pred", "sql", "query")
RAW_FIELDS = ("raw_output", "output", "response", "completion", "generated_text")


def read_predictions(
    path: str | Path, rows: Sequence[EvalRow], *, limited: bool = False
) -> tuple[list[str], list[str | None]]:
    """(SQL per row, raw text per row or None) for `rows`, in their order.

    `limited` says the rows are the first N of the data (--max-samples), so a text file may hold
    more lines than rows. Raises DataError when rows and predictions do not line up.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: predictions file not found; check the path")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; save the predictions as UTF-8") from None
    if _is_jsonl(path, text):
        return _from_jsonl(path, text, rows)
    return _from_lines(path, text, rows, limited)


def _is_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in (".jsonl", ".json"):
        return True
    first = next((line for line in text.splitlines() if line.strip()), "")
    return first.lstrip().startswith("{")


def _from_lines(path: Path, text: str, rows: Sequence[EvalRow], limited: bool) -> tuple[list[str], list[str | None]]:
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    lines = [line.rstrip("\r").split("\t", 1)[0].strip() for line in lines]
    if len(lines) < len(rows) or (len(lines) > len(rows) and not limited):
        raise DataError(
            f"{path}: {len(lines)} prediction lines for {len(rows)} data rows; a text predictions file holds "
            "one SQL per line in the data's order (use JSONL with ids to score a subset)"
        )
    return lines[: len(rows)], [None] * len(rows)


def _from_jsonl(path: Path, text: str, rows: Sequence[EvalRow]) -> tuple[list[str], list[str | None]]:
    by_id: dict[str, tuple[str, str | None]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {number}: not valid JSON ({exc.msg}); write one object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {number}: expected a JSON object with an id and the SQL")
        key = _first(record, ID_FIELDS)
        if key is None:
            raise DataError(
                f"{path} line {number}: no id field ({', '.join(ID_FIELDS)}); each prediction needs the row's id"
            )
        if str(key) in by_id:
            raise DataError(f"{path} line {number}: id {key!r} appears twice; keep one prediction per row")
        by_id[str(key)] = _sql_of(record, path, number)
    if not ids_unique(rows):
        raise DataError(
            f"{path}: the data's row ids are not unique, so predictions cannot be matched by id; use a text file in data order"
        )
    missing = [r.id for r in rows if r.id not in by_id]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DataError(
            f"{path}: no prediction for {len(missing)} of {len(rows)} rows ({shown}); the ids must match the data's ids"
        )
    return [by_id[r.id][0] for r in rows], [by_id[r.id][1] for r in rows]


def _first(record: dict[str, Any], fields: Sequence[str]) -> Any:
    return next((record[f] for f in fields if record.get(f) is not None), None)


def _sql_of(record: dict[str, Any], path: Path, number: int) -> tuple[str, str | None]:
    sql = _first(record, SQL_FIELDS)
    raw = _first(record, RAW_FIELDS)
    if sql is not None:
        return str(sql).strip(), (str(raw) if raw is not None else None)
    if raw is not None:
        return extract_sql(str(raw)), str(raw)
    raise DataError(
        f"{path} line {number}: no SQL field ({', '.join(SQL_FIELDS)}) and no raw output ({', '.join(RAW_FIELDS)})"
    )
