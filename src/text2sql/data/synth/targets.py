"""Which databases to sample from: `--db` values on the command line, or a run's `data` section."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from text2sql.errors import ConfigError, DataError
from text2sql.sql.targets import dialect_of, is_url, local_path, name_of, redact

_NAMED = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-]*)=(.+)$")


def databases_from_args(values: Iterable[str]) -> dict[str, str]:
    """db_id -> target from `--db` values: a SQLite or DuckDB file, a postgresql:// URL, `ID=TARGET`
    to name it, or `bundled` for the databases shipped with text2sql. A file must exist."""
    found: dict[str, str] = {}
    for value in values:
        for db_id, target in _expand(value):
            if db_id in found and found[db_id] != target:
                raise ConfigError(f"two databases are both called {db_id!r}; name them: --db ID=TARGET")
            found[db_id] = target
    return found


def _expand(value: str) -> list[tuple[str, str]]:
    if value == "bundled":
        from text2sql.data import bundled

        return [(db_id, str(bundled.db_path(db_id))) for db_id in bundled.db_ids()]
    match = _NAMED.match(value)
    db_id, target = (match.group(1), match.group(2)) if match else (None, value)
    dialect_of(target)  # an unknown URL scheme is a one-line ConfigError
    if not is_url(target) and not local_path(target).is_file():
        raise DataError(f"{target}: database file not found; check --db (a SQLite or DuckDB file, or a URL)")
    return [(db_id or name_of(target), target)]


def databases_from_config(data: Any) -> dict[str, str]:
    """db_id -> target for `data.synth`: data.databases, else data.db, else (any split read from the
    bundled dataset) the bundled databases."""
    if data.databases:
        return dict(data.databases)
    if data.db and "{db_id}" not in data.db:
        return {name_of(data.db): data.db}
    if data.db:
        raise ConfigError(
            f"data.synth cannot list the databases of data.db={redact(data.db)} ({{db_id}} stands for any); "
            "name them in data.databases (db_id: file or URL)"
        )
    if "bundled" in (data.train, data.validation, data.test):
        return databases_from_args(["bundled"])
    raise ConfigError("data.synth needs databases to sample from; set data.db or data.databases")
