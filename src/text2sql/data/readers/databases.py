"""Where each db_id's database and schema come from.

A row naming a db_id gets its schema from the SQLite file when one is found (and `db_path`, so its
SQL can be executed), else from a Spider/BIRD `tables.json` entry (schema only, not executable).
A db_id found in neither is an error: the row could not even be prompted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from text2sql.data.readers.base import ReadOptions
from text2sql.data.schema import render_schema, schema_from_tables_json, schema_text
from text2sql.errors import DataError
from text2sql.sql.targets import for_db_id

# Folders beside a Spider/BIRD JSON file that hold <db_id>/<db_id>.sqlite, in the releases' names.
DATABASE_FOLDERS = ("database", "dev_databases", "train_databases", "test_database")


def find_tables_json(folder: Path, stem: str | None = None) -> Path | None:
    """The schema file beside a Spider/BIRD split: tables.json, <stem>_tables.json, dev_tables.json, *tables.json."""
    names = ["tables.json"] + ([f"{stem}_tables.json"] if stem else []) + ["dev_tables.json", "train_tables.json"]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    others = sorted(folder.glob("*tables.json"))
    return others[0] if others else None


def load_tables_json(path: Path) -> dict[str, dict[str, Any]]:
    """tables.json entries by db_id."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-encode it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); re-download Spider's tables.json"
        ) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "db_id" in e for e in entries):
        raise DataError(f"{path}: expected a JSON array of objects with a 'db_id' (Spider's tables.json format)")
    return {entry["db_id"]: entry for entry in entries}


class Databases:
    """Resolves db_ids to (db_path or None, schema text), caching one schema text per db_id.

    `folders` are searched in order for <folder>/<db_id>/<db_id>.sqlite. `tables_path` is the
    tables.json used when no file is found; `tables_expected` is where one was looked for in vain
    (named in the error so the user knows where to put it).
    """

    def __init__(
        self,
        folders: Iterable[Path],
        opts: ReadOptions,
        *,
        tables_path: Path | None = None,
        tables_expected: Path | None = None,
    ):
        self.folders = list(dict.fromkeys(Path(f) for f in folders))
        self.opts = opts
        self.tables_path = tables_path
        self.tables_expected = tables_expected
        self._tables: dict[str, dict[str, Any]] | None = None
        self._resolved: dict[str, tuple[str | None, str]] = {}

    @classmethod
    def from_options(cls, opts: ReadOptions) -> Databases:
        """Databases under data.db_dir only (for CSV / HF rows that carry a db_id)."""
        return cls([Path(opts.db_dir)] if opts.db_dir else [], opts)

    def locate(self, db_id: str) -> str | Path | None:
        """The database of `db_id`: data.databases' entry, data.db with `{db_id}` filled in, or the
        first <folder>/<db_id>/<db_id>.sqlite (or .duckdb) of the folders."""
        if db_id in self.opts.databases:
            return self.opts.databases[db_id]
        if self.opts.db and "{db_id}" in self.opts.db:
            return for_db_id(self.opts.db, db_id)
        for folder in self.folders:
            for suffix in (".sqlite", ".duckdb"):
                path = folder / db_id / f"{db_id}{suffix}"
                if path.is_file():
                    return path
        return None

    @property
    def tables(self) -> dict[str, dict[str, Any]]:
        if self._tables is None:
            self._tables = load_tables_json(self.tables_path) if self.tables_path else {}
        return self._tables

    def resolve(self, db_id: str) -> tuple[str | None, str]:
        """(db_path or None, schema text) for a db_id; DataError when neither a database nor a schema exists."""
        if db_id not in self._resolved:
            path = self.locate(db_id)
            if path is not None:
                text = schema_text(path, self.opts.schema_format, self.opts.schema_sample_rows)
                self._resolved[db_id] = (str(path), text)
            elif db_id in self.tables:
                schema = schema_from_tables_json(self.tables[db_id])
                self._resolved[db_id] = (None, render_schema(schema, self.opts.schema_format))
            else:
                raise self.missing_error([db_id])
        return self._resolved[db_id]

    def check(self, db_ids: Iterable[str]) -> None:
        """Resolve every db_id up front, reporting all that have neither a database nor a schema."""
        missing = []
        for db_id in dict.fromkeys(db_ids):
            if self.locate(db_id) is None and db_id not in self.tables:
                missing.append(db_id)
        if missing:
            raise self.missing_error(missing)

    def missing_error(self, db_ids: list[str]) -> DataError:
        shown = ", ".join(repr(d) for d in db_ids[:5]) + (f" and {len(db_ids) - 5} more" if len(db_ids) > 5 else "")
        looked = (
            f"no <db_id>/<db_id>.sqlite in {', '.join(str(f) for f in self.folders)}"
            if self.folders
            else "data.db_dir is unset"
        )
        if self.tables_path:
            schema = f"not in {self.tables_path}"
        elif self.tables_expected:
            schema = f"no tables.json (expected at {self.tables_expected})"
        else:
            schema = "no tables.json for this source"
        return DataError(
            f"db_id {shown}: no database ({looked}) and no schema ({schema}); "
            "set data.db_dir to the folder holding <db_id>/<db_id>.sqlite, or put the tables.json there"
        )
