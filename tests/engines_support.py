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
    """The shop database on `engine`: a file path, or on the PostgreSQL `server` a URL of the
    superuser (the worst case for untrusted SQL), in its own schema."""
    from text2sql.sql.copy import copy_database

    sqlite_file = make_shop(folder / "shop.sqlite")
    if engine == "sqlite":
        return str(sqlite_file)
    if engine == "duckdb":
        target = str(folder / "shop.duckdb")
        copy_database(sqlite_file, target, show_progress=False)
        return target
    target = server.url("postgres", schema=schema)
    copy_database(sqlite_file, target, force=True, show_progress=False)
    return target
