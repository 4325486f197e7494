"""Database targets: where a database is, written as a file path or a URL, and which SQL dialect it
speaks.

    shop.sqlite, shop.db, anything else that is a path       SQLite file
    shop.duckdb, duckdb:///path/to/shop.duckdb                DuckDB file
    postgresql://user@host:5432/dbname[?schema=NAME]          PostgreSQL (postgres:// too)

A PostgreSQL URL carries no password: libpq reads PGPASSWORD or ~/.pgpass, so none is ever written
into a saved config. `schema=` picks the PostgreSQL schema whose tables the prompt shows and the
query sees (default `public`); it is text2sql's, not libpq's, and is taken off before connecting.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from text2sql.errors import ConfigError

DIALECTS = ("sqlite", "duckdb", "postgres")
# How a dialect is called in a system prompt.
DISPLAY_NAMES = {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL", "mysql": "MySQL"}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_url(target: str) -> bool:
    return bool(_URL.match(str(target)))


def dialect_of(target: str | Path) -> str:
    """The dialect of a database target (see the module docstring)."""
    text = str(target)
    match = _URL.match(text)
    if match:
        scheme = match.group(1).lower()
        if scheme in _POSTGRES_SCHEMES:
            return "postgres"
        if scheme == "duckdb":
            return "duckdb"
        if scheme in ("mysql", "mariadb"):
            raise ConfigError(
                f"{redact(text)}: MySQL is not supported yet; copy the database to PostgreSQL, DuckDB or SQLite "
                "(text2sql db copy) and point at that"
            )
        if scheme in ("sqlite", "file"):
            return "sqlite"
        raise ConfigError(
            f"{redact(text)}: unknown database URL scheme '{scheme}://'; use postgresql://, duckdb:// or a file path"
        )
    return "duckdb" if Path(text).suffix.lower() == ".duckdb" else "sqlite"


def check_dialect(name: str) -> str:
    if name not in DIALECTS:
        raise ConfigError(f"unknown SQL dialect {name!r}; use one of: {', '.join(DIALECTS)}")
    return name


def local_path(target: str | Path) -> Path:
    """The file of a SQLite or DuckDB target (`duckdb:///x.duckdb`, `sqlite:///x.db` or a path)."""
    text = str(target)
    for prefix in ("duckdb://", "sqlite://", "file://"):
        if text.startswith(prefix):
            return Path(text[len(prefix) :])
    return Path(text)


def postgres_parts(url: str) -> tuple[str, str]:
    """(libpq connection URL without text2sql's own `schema=` parameter, that schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), "public") or "public"
    kept = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, kept, parts.fragment)), schema


def redact(target: str) -> str:
    """A target fit to print: a password in the URL is replaced by ***."""
    return re.sub(r"//([^/@:]+):[^/@]*@", r"//\1:***@", str(target))


def has_password(target: str) -> bool:
    return is_url(target) and redact(target) != str(target)


def name_of(target: str | Path) -> str:
    """A short name for a target (the db_id a row gets when it names none): a file's stem, a
    PostgreSQL schema other than public, else the database name."""
    text = str(target)
    if dialect_of(text) == "postgres":
        url, schema = postgres_parts(text)
        return schema if schema != "public" else (urlsplit(url).path.strip("/") or "postgres")
    return local_path(text).stem


def for_db_id(pattern: str, db_id: str) -> str:
    """A target pattern with `{db_id}` filled in (`postgresql://h/db?schema={db_id}`, `dbs/{db_id}.duckdb`)."""
    return pattern.replace("{db_id}", db_id)
