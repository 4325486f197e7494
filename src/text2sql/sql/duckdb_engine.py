"""DuckDB: untrusted SQL on a database file that it cannot change, and what the file holds.

Every connection is opened `read_only=True` with external access off (no files read or written, no
ATTACH, no extension installed or loaded), no Python objects scanned by name, no spilling to a temp
folder, one thread and a memory limit, and its configuration locked (no `SET` can undo that). On
top: `guard.check_query` and DuckDB's own statement splitter (exactly one SELECT); with permissions
(`restrict`) the guard also refuses a query that reads a table or column they hide.

Model SQL runs in a worker process of its own (`duckdb_worker`): DuckDB builds some values outside
its memory limit (`repeat('x', 1e9)`, a vector of 2,048 large strings) and does not see an interrupt
inside one function call, so the only hard bounds are the kernel's: the worker's data memory is
capped, and a query that has not answered a moment after its timeout is ended with the worker.
Results come back pickled, within the row and byte caps of `results`, and only plain value types are
accepted from the worker. Idle workers are kept for the next database (starting one costs ~0.15 s).

Schema reads (`catalog`, `sample_rows`: our own SQL) use a connection in this process. Needs the
`duckdb` package: `pip install 'text2sql[duckdb]'`.
"""

from __future__ import annotations

import atexit
import datetime
import decimal
import io
import os
import pickle
import subprocess
import sys
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from text2sql.errors import MissingExtraError, first_line
from text2sql.sql.catalog import Column, ForeignKey, Schema, Table
from text2sql.sql.functions import DUCKDB_DEFINED, defined_here
from text2sql.sql.guard import check_query
from text2sql.sql.permissions import Access, DatabasePermissions
from text2sql.sql.results import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT,
    FORBIDDEN,
    MAX_RESULT_BYTES,
    NO_DATABASE,
    RUNTIME,
    SCHEMA,
    SYNTAX,
    TIMEOUT,
    Attempt,
    ExecutionResult,
    limited_result,
    timed_out,
    too_large,
)

# DuckDB's own memory limit for what it manages (tables read, sorts, hash tables), in MB.
MEMORY_LIMIT_MB = 512
# The worker's data memory, in bytes: DuckDB's limit, the result budget kept and pickled (twice
# MAX_RESULT_BYTES), and what Python and DuckDB hold besides (~100 MB at rest).
WORKER_MEMORY = (MEMORY_LIMIT_MB + 512) * 2**20

# Per-connection settings that make a connection safe for untrusted SQL (see the module docstring).
_SAFE_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,
    "temp_directory": "",
    "threads": 1,
    "memory_limit": f"{MEMORY_LIMIT_MB}MB",
    "lock_configuration": True,
}

_GRACE = 0.5  # seconds a worker has after the timeout to report its own interrupt before it is ended
_OPEN_TIMEOUT = 30.0  # seconds for a worker to start and open a file
_MAX_IDLE = 4  # idle workers kept for later databases
# A reply's size past the result budget, in bytes: numbers and dates pickle to a few dozen bytes a
# value, so this leaves room for a million of them besides the budget's strings.
_REPLY_OVERHEAD = 32 * 2**20


def require_duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise MissingExtraError("a DuckDB database", "duckdb", "duckdb") from None
    return duckdb


def categorize(exc: Exception) -> str:
    return _category(type(exc).__name__, str(exc))


def _category(name: str, message: str) -> str:
    text = message.lower()
    if name == "ParserException":
        return SYNTAX
    if name in ("CatalogException", "BinderException") or "does not exist" in text:
        return SCHEMA
    if name == "PermissionException" or "read-only" in text or "cannot execute statement of type" in text:
        return FORBIDDEN
    return RUNTIME


class DuckDBDatabase:
    """One read-only DuckDB file: model SQL runs in a worker process, schema reads in this one."""

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
        self._defined_names: frozenset[str] | None = None
        self._worker: _Worker | None = None
        self._lock = threading.Lock()  # one query at a time on the worker
        self.access: Access | None = None

    def restrict(self, permissions: DatabasePermissions) -> Access:
        """From now on, queries read only what `permissions` allow (the guard checks each one). Raises
        a one-line ConfigError naming a table or column the file does not have."""
        self.access = permissions.bind(self.catalog(), schema_name="main")
        return self.access

    def _defined(self) -> frozenset[str]:
        """Allowed function names the file defines itself (its macros): refused here, since a call
        could reach them."""
        if self._defined_names is None:
            names = [r[0] for r in self._conn.execute(DUCKDB_DEFINED).fetchall()]
            self._defined_names = defined_here(names, "duckdb")
        return self._defined_names

    def execute(
        self,
        sql: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_bytes: int = MAX_RESULT_BYTES,
    ) -> ExecutionResult:
        """Run one query and return its first `max_rows` rows; never raises for bad SQL."""
        attempt = Attempt(sql)
        failure, text = attempt.failure, attempt.text
        if (empty := attempt.empty()) is not None:
            return empty
        refused = check_query(text, self.dialect, defined=self._defined(), permissions=self.access)
        if refused is not None:
            return failure(*refused)
        try:
            statements = self._conn.extract_statements(text)
        except self._duckdb.Error as exc:
            return failure(first_line(exc), categorize(exc))
        if len(statements) != 1 or statements[0].type != self._duckdb.StatementType.SELECT:
            kinds = ", ".join(str(s.type).rsplit(".", 1)[-1] for s in statements) or "nothing"
            return failure(f"only one SELECT query is run, not: {kinds}", FORBIDDEN)
        with self._lock:
            worker = self._worker or self._start_worker()
            if isinstance(worker, str):
                return failure(worker, NO_DATABASE)
            attempt.start = time.monotonic()  # the query's time starts once the worker has the file open
            reply = worker.ask(("query", text, timeout, max_rows, max_bytes, _max_reply(max_bytes)), timeout + _GRACE)
            if not worker.alive:
                self._worker = None
        elapsed = attempt.elapsed
        stopped = timed_out(timeout)
        if reply[0] == "late" or (reply[0] == "died" and elapsed >= timeout):
            return failure(stopped, TIMEOUT)
        if reply[0] == "died":
            return failure(_out_of_memory(), RUNTIME)
        if reply[0] == "too_large":
            return failure(too_large(max_bytes), RUNTIME)
        if reply[0] == "error":
            name, message = reply[1], reply[2]
            if elapsed >= timeout or name == "InterruptException" or "interrupt" in message.lower():
                return failure(stopped, TIMEOUT)
            if name == "ResultTooLarge":
                return failure(too_large(max_bytes), RUNTIME)
            if name in ("OutOfMemoryException", "MemoryError"):
                return failure(_out_of_memory(), RUNTIME)
            return failure(message, _category(name, message))
        _, columns, rows, over = reply
        if over:
            return failure(too_large(max_bytes), RUNTIME)
        return limited_result(columns, rows, max_rows, elapsed)

    def _start_worker(self) -> _Worker | str:
        """A worker with this file open, or why there is none."""
        try:
            worker = _borrow()
        except OSError as exc:
            return f"cannot start a DuckDB worker process: {exc}"
        reply = worker.ask(("open", self.target, dict(_SAFE_CONFIG)), _OPEN_TIMEOUT)
        if reply != ("ok",):
            worker.stop()
            why = reply[2] if reply[0] == "error" else "it did not answer"
            return f"cannot open {self.target} in a worker process: {why}"
        self._worker = worker
        return worker

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
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            if worker.ask(("close",), _OPEN_TIMEOUT) == ("ok",):
                _give_back(worker)
            else:
                worker.stop()
        self._conn.close()

    def __enter__(self) -> DuckDBDatabase:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _out_of_memory() -> str:
    return (
        f"the query needed more than the {WORKER_MEMORY // 2**20} MB of memory a query may use and was stopped; "
        "only queries with smaller values and results are run"
    )


def _max_reply(max_bytes: int) -> int:
    return 2 * max_bytes + _REPLY_OVERHEAD


# ---------------------------------------------------------------------- worker processes

_BOOT = "import sys; sys.path[:0] = sys.argv[1:3]; from text2sql.sql.duckdb_worker import main; main(int(sys.argv[3]))"


class _Worker:
    """One `duckdb_worker` process and its two pipes."""

    def __init__(self) -> None:
        import duckdb

        import text2sql

        package_root = str(Path(text2sql.__file__).resolve().parent.parent)
        duckdb_root = str(Path(duckdb.__file__).resolve().parent.parent)
        from_parent, to_worker = os.pipe()
        from_worker, to_parent = os.pipe()
        try:
            # -I: neither the working folder nor PYTHON* variables decide what the worker imports.
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", _BOOT, package_root, duckdb_root, str(WORKER_MEMORY)],
                stdin=from_parent,
                stdout=to_parent,
                close_fds=True,
                start_new_session=True,  # a Ctrl-C in the terminal is the parent's to handle
            )
        finally:
            os.close(from_parent)
            os.close(to_parent)
        self._send = Connection(to_worker, readable=False)
        self._recv = Connection(from_worker, writable=False)
        self.alive = True
        self.owner = os.getpid()  # a forked copy of this process must not talk to it too

    def ask(self, request: tuple, wait: float) -> tuple:
        """The worker's reply to `request`, or when there is none the worker is ended and the reply is
        ("late",) after `wait` seconds, ("died",) when it ended first (its memory cap), or
        ("too_large",) when it sent more than a query's `max_reply` bytes."""
        max_reply = request[5] + 1024 if request[0] == "query" else 2**20
        try:
            self._send.send_bytes(pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL))
            if not self._recv.poll(max(0.0, wait)):
                self.stop()
                return ("late",)
            data = self._recv.recv_bytes(max_reply)
        except EOFError:
            self.stop()
            return ("died",)
        except OSError as exc:
            self.stop()
            return ("too_large",) if "bad message length" in str(exc) else ("died",)
        try:
            return _PlainUnpickler(io.BytesIO(data)).load()
        except pickle.UnpicklingError as exc:
            return ("error", "UnpicklingError", f"a value of a type text2sql does not return: {exc}")

    def stop(self) -> None:
        """End the process now (a query in it is abandoned)."""
        self.alive = False
        for conn in (self._send, self._recv):
            conn.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def retire(self) -> None:
        """End an idle process: it exits when its input closes."""
        self.alive = False
        self._send.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._recv.close()


_ALLOWED_GLOBALS = {
    ("decimal", "Decimal"): decimal.Decimal,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("uuid", "UUID"): uuid.UUID,
}


class _PlainUnpickler(pickle.Unpickler):
    """Only the value types DuckDB returns: a worker that untrusted SQL took over cannot make this
    process build anything else."""

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"{module}.{name}")
        return found


_idle: list[_Worker] = []
_idle_lock = threading.Lock()


def _borrow() -> _Worker:
    with _idle_lock:
        if _idle and _idle[0].owner != os.getpid():  # forked: the parent's workers are the parent's
            _idle.clear()
        while _idle:
            worker = _idle.pop()
            if worker.proc.poll() is None:
                return worker
            worker.stop()
    return _Worker()


def _give_back(worker: _Worker) -> None:
    with _idle_lock:
        if worker.alive and worker.proc.poll() is None and len(_idle) < _MAX_IDLE:
            _idle.append(worker)
            return
    worker.retire()


def shutdown_workers() -> None:
    """End the idle worker processes (at exit; tests call it to count a worker's memory)."""
    with _idle_lock:
        workers = [w for w in _idle if w.owner == os.getpid()]
        _idle.clear()
    for worker in workers:
        worker.retire()


atexit.register(shutdown_workers)
