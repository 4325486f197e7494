"""One small shop database on every engine: built as SQLite, copied to DuckDB and PostgreSQL with
`text2sql.sql.copy` (PostgreSQL: one schema per test module on the session's server)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

CUSTOMERS = [
    (1, "Ada", "London"),
    (2, "Bo", "Paris"),
    (3, "Chloé", "Paris"),
    (4, "D'Arcy", None),
    (5, "eve", "Berlin"),
]
ORDERS = [(i, 1 + i % 5, round(10.5 * i, 2), f"2024-0{1 + i % 9}-1{i % 10}") for i in range(1, 41)]


def make_shop(path: Path) -> Path:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE Customers (id INTEGER PRIMARY KEY, Name TEXT, city TEXT)")
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES Customers(id), "
            "amount REAL, placed TEXT)"
        )
        conn.executemany("INSERT INTO Customers VALUES (?, ?, ?)", CUSTOMERS)
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", ORDERS)
    conn.close()
    return path


def shop_on(engine: str, folder: Path, server=None, schema: str = "shop") -> str:
    """The shop database on `engine`: a file path, or on the PostgreSQL `server` the URL of the
    `reader` role (it may read the shop's schema and nothing else: model SQL runs on no other)."""
    from text2sql.sql.copy import copy_database

    sqlite_file = make_shop(folder / "shop.sqlite")
    if engine == "sqlite":
        return str(sqlite_file)
    if engine == "duckdb":
        target = str(folder / "shop.duckdb")
        copy_database(sqlite_file, target, show_progress=False)
        return target
    copy_database(sqlite_file, server.url("postgres", schema=schema), force=True, show_progress=False)
    return server.grant_reader("postgres", schema)


_MEASURE = r"""
import json, resource, sys
from text2sql.sql import duckdb_engine, postgres
from text2sql.sql.execution import open_database

# The engine's own bounds, with the guard out of the way.
postgres.check_query = duckdb_engine.check_query = lambda *a, **k: None
with open_database(sys.argv[1]) as db:
    db.execute("SELECT 1")  # connected, and for DuckDB a worker started: what follows is the query's own
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = db.execute(sys.argv[2], timeout=float(sys.argv[3]))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
duckdb_engine.shutdown_workers()  # a worker ended and waited for counts in RUSAGE_CHILDREN
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"category": result.category, "error": result.error, "rows": len(result.rows),
                  "grew_mb": (after - before) / 1024, "worker_mb": workers / 1024}))
"""


def peak_memory(target: str, sql: str, timeout: float = 60.0) -> dict:
    """Run `sql` on `target` in a fresh Python process, guard off, and return its result's category,
    error and row count, how far the process's peak resident memory grew during the query
    (`grew_mb`: ru_maxrss is a high-water mark, hence a process of its own), and the largest peak of
    its child processes (`worker_mb`: DuckDB's workers)."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, target, sql, str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
