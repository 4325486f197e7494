"""The databases a server answers about: `<db_dir>/<db_id>/<db_id>.sqlite` (Spider's layout; or
`.duckdb`) and db_ids mapped to databases anywhere (`--database ID=URL`, `serving.databases`).

A request names a database by id only, and only ids found in the folder are accepted, so a request
can never point the server at another file (`../../etc`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from text2sql.errors import ConfigError
from text2sql.serving.errors import UnknownDatabase
from text2sql.sql.targets import is_url

__all__ = ["DatabaseDirectory", "UnknownDatabase"]


class DatabaseDirectory:
    """The databases a server answers about, by db_id: files in a folder (Spider's layout, SQLite or
    DuckDB), and ids mapped to any database (a PostgreSQL URL, a file elsewhere)."""

    def __init__(self, root: str | Path | None, mapping: Mapping[str, str] | None = None):
        self.root = Path(root).expanduser().resolve() if root is not None else None
        if self.root is not None and not self.root.is_dir():
            raise ConfigError(
                f"database folder {root} does not exist; pass --db-dir with <db_id>/<db_id>.sqlite inside"
            )
        self.mapping = dict(mapping or {})
        for db_id, target in self.mapping.items():
            if not is_url(target) and not Path(target).is_file():
                raise ConfigError(f"database {db_id}={target}: no such file; give a database file or a URL")
        self._lock = threading.Lock()
        self._paths = self._scan()

    def _scan(self) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.root is not None:
            for folder in sorted(self.root.iterdir()):
                for suffix in (".sqlite", ".duckdb"):
                    file = folder / f"{folder.name}{suffix}"
                    if folder.is_dir() and file.is_file():
                        found.setdefault(folder.name, str(file))
        return {**found, **self.mapping}

    def ids(self) -> list[str]:
        return sorted(self._paths)

    def path(self, db_id: str) -> str:
        """The database of `db_id` (a file path or URL); UnknownDatabase (with the known ids) when
        there is none. The folder is scanned again once before giving up, so databases added later
        are found."""
        target = self._paths.get(db_id)
        if target is None:
            with self._lock:
                self._paths = self._scan()
            target = self._paths.get(db_id)
        if target is None or (not is_url(target) and not Path(target).is_file()):
            raise UnknownDatabase(db_id, self.ids())
        return target
