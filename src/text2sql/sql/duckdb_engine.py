"""DuckDB: untrusted SQL on a database file that it cannot change, and what the file holds.

The connection is opened `read_only=True` with external access off (no files read or written, no
ATTACH, no extension installed or loaded), its configuration locked (no `SET` can undo that), one
thread and a memory cap. On top: `guard.check_query` and DuckDB's own statement splitter (exactly
one SELECT), a watchdog that interrupts the query at its timeout, and the row and byte caps of
`results`. Needs the `duckdb` package: `pip install 'text2sql[duckdb]'`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from text2sql.errors import MissingExtraError
from text2sql.sql.catalog import Column, ForeignKey, Schema, Table
from text2sql.sql.guard import check_query
from text2sql.sql.results import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT,
    FORBIDDEN,
    MAX_RESULT_BYTES,
    RUNTIME,
    SCHEMA,
    SYNTAX,
    TIMEOUT,
    ExecutionResult,
    fetch_limited,
    limited_result,
    too_large,
)

# Per-connection settings that make a connection safe for untrusted SQL (see the module docstring).
_SAFE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "threads": 1,
    "max_memory": "512MB",
    "lock_configuration": True,
}


def require_duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError("a DuckDB database", "duckdb", "duckdb") from None
    return duckdb


def categorize(exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc).lower()
    if name == "ParserException":
        return SYNTAX
    if name in ("CatalogException", "BinderException") or "does not exist" in text:
        return SCHEMA
    if name == "PermissionException" or "read-only" in text or "cannot execute statement of type" in text:
        return FORBIDDEN
    return RUNTIME


class DuckDBDatabase:
    """One read-only connection to one DuckDB file."""

    dialect = "duckdb"

    def __init__(self, path: str | Path):
        duckdb = require_duckdb()
        path = Path(path).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no DuckDB database at {path}")
        self.path = path
        self.target = str(path)
        self._duckdb = duckdb
        self._conn = duckdb.connect(str(path), read_only=True, config=dict(_SAFE_CONFIG))

    def execute(
        self,
        sql: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> ExecutionResult:
        """Run one query and return its first `max_rows` rows; never raises for bad SQL."""
        start = time.monotonic()

        def failure(message: str, category: str) -> ExecutionResult:
            return ExecutionResult(error=message, category=category, elapsed=time.monotonic() - start)

        text = (sql or "").strip().rstrip(";").rstrip()
        if not text:
            return failure("empty SQL", SYNTAX)
        refused = check_query(text, self.dialect)
        if refused is not None:
            return failure(*refused)
        try:
            statements = self._conn.extract_statements(text)
        except self._duckdb.Error as exc:
            return failure(_first_line(exc), categorize(exc))
        if len(statements) != 1 or statements[0].type != self._duckdb.StatementType.SELECT:
            kinds = ", ".join(str(s.type).rsplit(".", 1)[-1] for s in statements) or "nothing"
            return failure(f"only one SELECT query is run, not: {kinds}", FORBIDDEN)
        watchdog = threading.Timer(timeout, self._conn.interrupt)
        watchdog.daemon = True
        watchdog.start()
        try:
            cursor = self._conn.execute(text)
            columns = [d[0] for d in cursor.description or []]
            rows, over = fetch_limited(iter(cursor.fetchone, None), max_rows, max_bytes)
        except (self._duckdb.Error, RuntimeError, ValueError, OverflowError, MemoryError) as exc:
            if time.monotonic() - start >= timeout or "interrupt" in str(exc).lower():
                return failure(f"query ran longer than {timeout:g} s and was stopped", TIMEOUT)
            return failure(_first_line(exc), categorize(exc))
        finally:
            watchdog.cancel()
        if over:
            return failure(too_large(max_bytes), RUNTIME)
        return limited_result(columns, rows, max_rows, time.monotonic() - start)

    def catalog(self) -> Schema:
        """Tables of the main schema in creation order, their columns, primary and foreign keys."""
        conn = self._conn
        tables: dict[str, Table] = {}
        for name, column, ctype in conn.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND NOT internal ORDER BY table_oid, column_index"
        ).fetchall():
            tables.setdefault(name, Table(name)).columns.append(Column(column, ctype))
        for kind, table, columns, ref_table, ref_columns in conn.execute(
            "SELECT constraint_type, table_name, constraint_column_names, referenced_table, referenced_column_names "
            "FROM duckdb_constraints() WHERE schema_name = 'main' ORDER BY table_oid, constraint_index"
        ).fetchall():
            if table not in tables:
                continue
            if kind == "PRIMARY KEY":
                tables[table].primary_key = list(columns)
            elif kind == "FOREIGN KEY":
                tables[table].foreign_keys.append(ForeignKey(tuple(columns), ref_table, tuple(ref_columns or ())))
        return Schema(list(tables.values()), db_id=self.path.stem, db_path=self.target, dialect=self.dialect)

    def sample_rows(self, tables: list[str], limit: int) -> dict[str, list[tuple]]:
        """The first `limit` rows of each table, ordered by every column: the same rows every time."""
        out = {}
        for name in tables:
            quoted = '"' + name.replace('"', '""') + '"'
            out[name] = self._conn.execute(f"SELECT * FROM {quoted} ORDER BY ALL LIMIT {int(limit)}").fetchall()
        return out

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> DuckDBDatabase:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
