"""The rows an evaluation scores: from anything `prepare` reads, or from a prepared split.

A prepared dataset (`<output_dir>/data/`, or one split folder of it) already holds each row's schema
text, database path and token ids; its rows are taken as they are, so the gold SQL, schema and
labels are exactly those training saw. Any other source goes through `read_examples`, with the
schema rendered as the model's training config says (see `InferenceModel.read_options`).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sql.data.example import Example
from text2sql.data.readers import ReadOptions, ReadStats, read_examples
from text2sql.errors import DataError
from text2sql.sql.targets import dialect_of, is_url

# The columns `prepare` writes that mark a folder as prepared data rather than raw rows.
PREPARED_COLUMNS = ("question", "sql", "schema", "db_path", "labels", "prompt_length")
SPLIT_ALIASES = {"validation": ("validation", "valid", "val", "dev"), "dev": ("dev", "validation", "valid", "val")}
UNLABELLED = "(none)"


@dataclass
class EvalRow(Example):
    """One example to score: the readers' record, plus a prepared row's token ids (for the loss)."""

    input_ids: list[int] | None = None
    labels: list[int] | None = None


@dataclass
class EvalSet:
    rows: list[EvalRow]
    source: str
    split: str | None
    prepared: bool = False
    tokenizer_fingerprint: str | None = None  # of the tokenizer that made a prepared split's ids
    complexity_source: str = "data"  # "data" | "derived" (from the gold SQL) | "none"
    limited: bool = False  # True when max_samples cut the rows
    read_stats: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "split": self.split,
            "prepared": self.prepared,
            "rows": len(self.rows),
            "complexity_source": self.complexity_source,
            "read_stats": self.read_stats,
        }


def load_eval_set(
    source: str,
    *,
    split: str | None = None,
    read_options: ReadOptions | None = None,
    max_samples: int | None = None,
) -> EvalSet:
    """The first `max_samples` rows (all when None) of `source`'s `split`."""
    opts = read_options or ReadOptions()
    if max_samples is not None and max_samples < 1:
        raise DataError(f"--max-samples must be at least 1, got {max_samples}")
    prepared = _prepared_split(Path(source), split)
    if prepared is not None:
        evalset = _load_prepared(*prepared, opts, max_samples)
    else:
        stats = ReadStats()
        stream = read_examples(source, opts, split=split, stats=stats)
        rows = [_from_example(e) for e in itertools.islice(stream, max_samples)]
        limited = max_samples is not None and next(stream, None) is not None
        evalset = EvalSet(rows, str(source), split, limited=limited, read_stats=stats.to_dict())
    if not evalset.rows:
        raise DataError(f"{source}: no rows to evaluate; check the data and --split")
    _label_complexity(evalset)
    return evalset


def _from_example(ex: Example) -> EvalRow:
    return EvalRow(**vars(ex))


# ------------------------------------------------------------------------------------ prepared data


def _prepared_split(path: Path, split: str | None) -> tuple[Path, str | None, Path] | None:
    """(split folder, split name, folder that may hold stage.json) for prepared data, else None."""
    if not path.is_dir():
        return None
    marker = path / "dataset_dict.json"
    if marker.is_file():
        try:
            splits = json.loads(marker.read_text(encoding="utf-8")).get("splits", [])
        except ValueError:
            return None
        name = _pick_split(splits, split, path)
        folder = path / name
        return (folder, name, path) if _is_prepared(folder) else None
    if _is_prepared(path):
        return path, split or path.name, path.parent
    return None


def _is_prepared(folder: Path) -> bool:
    info = folder / "dataset_info.json"
    if not info.is_file():
        return False
    try:
        features = json.loads(info.read_text(encoding="utf-8")).get("features", {})
    except ValueError:
        return False
    return all(c in features for c in PREPARED_COLUMNS)


def _pick_split(available: list[str], requested: str | None, path: Path) -> str:
    if requested is None:
        for name in ("test", "validation", "train"):
            if name in available:
                return name
        requested = available[0] if available else "test"
    for name in SPLIT_ALIASES.get(requested, (requested,)):
        if name in available:
            return name
    raise DataError(f"{path}: no split {requested!r} (splits: {', '.join(available)}); pass --split with one of them")


def _load_prepared(
    folder: Path, split: str | None, record_dir: Path, opts: ReadOptions, max_samples: int | None
) -> EvalSet:
    import datasets

    try:
        ds = datasets.load_from_disk(str(folder))
    except Exception as exc:  # a damaged folder fails in many ways inside datasets/pyarrow
        raise DataError(
            f"{folder}: cannot load the prepared split ({type(exc).__name__}: {exc}); prepare it again"
        ) from None
    if max_samples is not None and len(ds) > max_samples:
        limited = True
        ds = ds.select(range(max_samples))
    else:
        limited = False
    wanted = [
        c
        for c in (
            "id",
            "question",
            "sql",
            "schema",
            "db_id",
            "db_path",
            "complexity",
            "evidence",
            "reasoning",
            "extra",
            "history",
            "input_ids",
            "labels",
        )
        if c in ds.column_names
    ]
    columns = ds.select_columns(wanted).with_format("arrow")[:].to_pydict()
    n = len(ds)
    rows = []
    for i in range(n):
        value = {c: columns[c][i] for c in wanted}
        db_path = _relocate(value.get("db_path"), value.get("db_id"), opts.db_dir)
        rows.append(
            EvalRow(
                id=value.get("id") or f"{split}-{i}",
                question=value.get("question") or "",
                sql=value.get("sql") or "",
                schema=value.get("schema") or "",
                db_id=value.get("db_id"),
                db_path=db_path,
                complexity=value.get("complexity"),
                evidence=value.get("evidence"),
                reasoning=value.get("reasoning"),
                extra=json.loads(value.get("extra") or "{}"),
                history=[(q, sql) for q, sql in json.loads(value.get("history") or "[]")],
                input_ids=value.get("input_ids"),
                labels=value.get("labels"),
            )
        )
    return EvalSet(
        rows,
        str(folder),
        split,
        prepared=True,
        tokenizer_fingerprint=_prepared_tokenizer(record_dir),
        limited=limited,
    )


def _relocate(db_path: str | None, db_id: str | None, db_dir: str | None) -> str | None:
    """A prepared row's database: under --db-dir when given and found there with the engine the row
    was prepared for (data prepared on another machine), else the database recorded at prepare time
    (a server's URL always)."""
    if not (db_dir and db_id) or (db_path and is_url(db_path)):
        return db_path
    suffix = ".duckdb" if db_path and dialect_of(db_path) == "duckdb" else ".sqlite"
    candidate = Path(db_dir) / db_id / f"{db_id}{suffix}"
    return str(candidate) if candidate.is_file() else db_path


def _prepared_tokenizer(record_dir: Path) -> str | None:
    try:
        record = json.loads((record_dir / "stage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record.get("tokenizer") or record.get("depends_on", {}).get("tokenizer")


# ------------------------------------------------------------------------------------ complexity


def _label_complexity(evalset: EvalSet) -> None:
    """Rows without a label get UNLABELLED; when no row has one, every row gets a label derived
    from its gold SQL, so the per-complexity view is never empty."""
    if any(r.complexity for r in evalset.rows):
        for row in evalset.rows:
            row.complexity = row.complexity or UNLABELLED
        return
    evalset.complexity_source = "derived"
    for row in evalset.rows:
        row.complexity = derive_complexity(row.sql)


_SET_OP = re.compile(r"\b(union|intersect|except)\b", re.I)
_SELECT = re.compile(r"\bselect\b", re.I)
_JOIN = re.compile(r"\bjoin\b", re.I)
_ORDER = re.compile(r"\border\s+by\b", re.I)
_AGGREGATE = re.compile(r"\b(count|sum|avg|min|max)\s*\(|\bgroup\s+by\b", re.I)


def derive_complexity(sql: str) -> str:
    """The bundled dataset's label for a query, by its most demanding construct: set operation,
    nested, join, ordering, aggregation, basic (same rules as `bundled.pairs.complexity`, any case)."""
    if _SET_OP.search(sql):
        return "set operation"
    if len(_SELECT.findall(sql)) > 1:
        return "nested"
    if _JOIN.search(sql):
        return "join"
    if _ORDER.search(sql):
        return "ordering"
    if _AGGREGATE.search(sql):
        return "aggregation"
    return "basic"


def ids_unique(rows: Iterable[EvalRow]) -> bool:
    seen: set[str] = set()
    for row in rows:
        if row.id in seen:
            return False
        seen.add(row.id)
    return True
