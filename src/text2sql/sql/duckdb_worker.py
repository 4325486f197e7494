"""The process that runs untrusted SQL on a DuckDB file for `duckdb_engine`, so that a query's memory
and time have hard bounds: the kernel caps the process's data memory (`RLIMIT_DATA`), and a query
that does not answer by its deadline is ended with the process.

DuckDB allocates some memory outside its own `memory_limit`: a single `repeat('x', 1e9)` or a vector
of 2,048 one-megabyte strings is built whole before anything can look at it, and an interrupt is
not seen inside one function call. In a process of its own, such a query fails with DuckDB's
out-of-memory error (or is killed) and leaves the caller as it was.

Protocol: pickled requests from the parent on stdin, pickled replies on the original stdout (stdout
itself is pointed at stderr, so nothing DuckDB prints can corrupt a reply):

    ("open", path, config)                                  -> ("ok",)
    ("query", sql, timeout, max_rows, max_bytes, max_reply) -> ("rows", columns, rows, over_budget)
    ("close",)                                              -> ("ok",)
    any request that fails                                  -> ("error", exception class name, first line)

Imports only the standard library, duckdb and `text2sql.sql.results`.
"""

from __future__ import annotations

import datetime
import os
import pickle
import resource
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

_BATCH = 256  # rows per fetch: small enough that one batch of large values stays well inside the budget


def main(memory_bytes: int) -> None:
    """Serve requests until stdin closes, with at most `memory_bytes` of data memory."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)
    resource.setrlimit(resource.RLIMIT_DATA, (memory_bytes, memory_bytes))
    import duckdb  # after the limit: everything DuckDB allocates counts

    requests = Connection(0, writable=False)
    replies = Connection(reply_fd, readable=False)
    state: dict[str, Any] = {"conn": None}
    while True:
        try:
            request = pickle.loads(requests.recv_bytes())
        except EOFError:
            return
        max_reply = request[5] if request[0] == "query" else 2**20
        try:
            reply = _handle(duckdb, state, request)
            data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
            del reply
            if len(data) > max_reply:
                data = pickle.dumps(("error", "ResultTooLarge", f"the reply would be {len(data)} bytes"))
        except BaseException as exc:  # MemoryError included: the reply is small
            data = pickle.dumps(("error", type(exc).__name__, _first_line(exc)))
        replies.send_bytes(data)


def _handle(duckdb: Any, state: dict[str, Any], request: tuple) -> tuple:
    kind = request[0]
    if kind == "open":
        _close(state)
        state["conn"] = duckdb.connect(request[1], read_only=True, config=request[2])
        return ("ok",)
    if kind == "close":
        _close(state)
        return ("ok",)
    if kind == "query":
        if state["conn"] is None:
            raise RuntimeError("no database is open")
        return _query(state["conn"], *request[1:5])
    raise ValueError(f"unknown request {kind!r}")


def _close(state: dict[str, Any]) -> None:
    conn, state["conn"] = state["conn"], None
    if conn is not None:
        conn.close()


def _query(conn: Any, sql: str, timeout: float, max_rows: int, max_bytes: int) -> tuple:
    """Up to max_rows + 1 rows (one past the cap tells the caller that there were more), and whether
    their strings and blobs went past max_bytes (the rows are then dropped)."""
    from text2sql.sql.results import fetch_limited

    watchdog = threading.Timer(timeout, conn.interrupt)
    watchdog.daemon = True
    watchdog.start()
    try:
        cursor = conn.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows, over = fetch_limited(_plain_rows(cursor), max_rows, max_bytes)
        return ("rows", columns, [] if over else rows, over)
    finally:
        watchdog.cancel()


def _plain_rows(cursor: Any) -> Iterator[tuple]:
    while batch := cursor.fetchmany(_BATCH):
        for row in batch:
            yield tuple(_plain(v) for v in row)


def _plain(value: Any) -> Any:
    """`value` made of types the parent accepts back: a time zone becomes its fixed offset (the same
    instant; a zoneinfo object would need more than plain classes to unpickle)."""
    if isinstance(value, (datetime.datetime, datetime.time)) and value.tzinfo is not None:
        if not isinstance(value.tzinfo, datetime.timezone):
            offset = value.utcoffset() if isinstance(value, datetime.datetime) else value.tzinfo.utcoffset(None)
            return value.replace(tzinfo=datetime.timezone(offset or datetime.timedelta(0)))
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
