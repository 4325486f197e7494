"""The databases a server answers about: `<db_dir>/<db_id>/<db_id>.sqlite` (Spider's layout).

A request names a database by id only, and only ids found in the folder are accepted, so a request
can never point the server at another file (`../../etc`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from text2sql.errors import ConfigError


class UnknownDatabase(LookupError):
    def __init__(self, db_id: str, known_ids: list[str]):
        super().__init__(f"unknown db_id {db_id!r}; known ids: {', '.join(known_ids) or '(none)'}")
        self.db_id = db_id
        self.known_ids = known_ids


class DatabaseDirectory:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise ConfigError(
                f"database folder {root} does not exist; pass --db-dir with <db_id>/<db_id>.sqlite inside"
            )
        self._lock = threading.Lock()
        self._paths = self._scan()

    def _scan(self) -> dict[str, Path]:
        return {
            p.name: p / f"{p.name}.sqlite"
            for p in sorted(self.root.iterdir())
            if p.is_dir() and (p / f"{p.name}.sqlite").is_file()
        }

    def ids(self) -> list[str]:
        return list(self._paths)

    def path(self, db_id: str) -> Path:
        """The SQLite file of `db_id`; UnknownDatabase (with the known ids) when there is none.
        The folder is scanned again once before giving up, so databases added later are found."""
        path = self._paths.get(db_id)
        if path is None:
            with self._lock:
                self._paths = self._scan()
            path = self._paths.get(db_id)
        if path is None or not path.is_file():
            raise UnknownDatabase(db_id, self.ids())
        return path
