"""The dataset shipped with the package (`text2sql.data.bundled`): JSONL splits of
{id, db_id, question, sql, sql_complexity} over SQLite databases that ship beside them, and the
follow-up split, whose rows also carry their conversation (`interaction_id`, `turn`, `history`).

Every row is executable: its schema comes from its database and `db_path` is set. The source
"bundled" reads the split asked for (train by default); "bundled:followup" names one itself.
"""

from __future__ import annotations

from pathlib import Path

from text2sql.data import bundled
from text2sql.data.readers.base import ExampleStream, ReadOptions, ReadStats
from text2sql.data.readers.databases import Databases
from text2sql.data.readers.files import iter_jsonl
from text2sql.data.readers.spider import benchmark_row_function
from text2sql.errors import DataError

SPLIT_ALIASES = {"dev": "validation", "val": "validation", "valid": "validation"}
_PREFIX = "bundled:"


def is_bundled(source: str) -> bool:
    """Whether a data source names the bundled dataset ("bundled", or "bundled:<split>")."""
    return source == "bundled" or source.startswith(_PREFIX)


def bundled_split(source: str) -> str | None:
    """The split a "bundled:<split>" source names; None for plain "bundled"."""
    if not source.startswith(_PREFIX):
        return None
    return source[len(_PREFIX) :] or None


class _BundledDatabases(Databases):
    """Databases located by the bundled package itself, whatever its folder layout."""

    def __init__(self, bundled, opts: ReadOptions):
        super().__init__([Path(bundled.database_dir())], opts)
        self._bundled = bundled

    def locate(self, db_id: str) -> Path | None:
        if db_id not in self._bundled.db_ids():
            return None
        path = Path(self._bundled.db_path(db_id))
        return path if path.is_file() else None


def open_bundled(opts: ReadOptions, split: str | None, stats: ReadStats | None) -> ExampleStream:
    name = SPLIT_ALIASES.get(split or "train", split or "train")
    if name not in bundled.ALL_SPLITS:
        raise DataError(f"bundled: no split {name!r}; use one of: {', '.join(bundled.ALL_SPLITS)}")
    path = Path(bundled.split_path(name))
    label = f"bundled:{name}"
    to_example = benchmark_row_function(opts, label, _BundledDatabases(bundled, opts))
    return ExampleStream(iter_jsonl(path), to_example, opts, label=label, stem=f"bundled-{name}", stats=stats)
