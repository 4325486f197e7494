"""Execution on each engine: the same queries on SQLite (the baseline), DuckDB and PostgreSQL.

    python benchmarks/engines.py [--repeats 3] [--postgres postgresql://me@host/db]

The bundled databases are copied with `text2sql db copy` (timed) into DuckDB files and into
PostgreSQL schemas (a throwaway local server unless --postgres is given; passwords from
PGPASSWORD or ~/.pgpass), the test split's gold SQL is transpiled and checked for each target
(`data.target_dialect`: timed, rows per second), and then scored as in `evaluate`: gold and a
differently written copy of it executed read-only and compared, per engine, best of --repeats.

Prints markdown for BENCHMARKS.md, with the machine's load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--postgres", help="a server URL to copy into (default: a throwaway local server)")
    args = parser.parse_args()

    import sqlglot

    from text2sql.data import bundled
    from text2sql.data.readers import ReadOptions, ReadStats, read_examples
    from text2sql.data.retarget import retarget
    from text2sql.sql.copy import copy_database
    from text2sql.sql.match import execute_pairs

    server = None
    if args.postgres is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pg_support import ADMIN_PASSWORD, start_server

        server = start_server()
        os.environ["PGPASSWORD"] = ADMIN_PASSWORD
        base = server.url("postgres")
    else:
        base = args.postgres
    folder = Path(tempfile.mkdtemp(prefix="text2sql-engines-"))
    targets = {
        "sqlite": str(bundled.database_dir() / "{db_id}" / "{db_id}.sqlite"),
        "duckdb": str(folder / "{db_id}.duckdb"),
        "postgres": base + ("&" if "?" in base else "?") + "schema=bench_{db_id}",
    }
    try:
        rows_out = []
        opts = ReadOptions(format="bundled")
        for dialect in ("duckdb", "postgres"):
            start = time.perf_counter()
            for db_id in bundled.db_ids():
                copy_database(
                    bundled.db_path(db_id), targets[dialect].replace("{db_id}", db_id), force=True, show_progress=False
                )
            copy_s = time.perf_counter() - start
            start = time.perf_counter()
            stats = ReadStats()
            examples = read_examples("bundled", opts, split="test", stats=stats)
            kept = list(retarget(examples, dialect, targets[dialect], opts, stats, timeout=5))
            check_s = time.perf_counter() - start
            rows_out.append((dialect, copy_s, len(kept), len(kept) + stats.total_dropped, check_s, kept))
        sqlite_rows = list(read_examples("bundled", opts, split="test"))

        timings = {}
        for dialect, rows in [("sqlite", sqlite_rows)] + [(d, k) for d, *_, k in rows_out]:
            preds = [sqlglot.transpile(r.sql, read=dialect, write=dialect, pretty=True)[0] for r in rows]
            best, accuracy = float("inf"), 0.0
            for _ in range(args.repeats):
                start = time.perf_counter()
                outcomes = execute_pairs(rows, preds)
                best = min(best, time.perf_counter() - start)
                accuracy = sum(o[0] or 0 for o in outcomes) / len(rows)
            timings[dialect] = (len(rows), best, accuracy)

        print(f"    python benchmarks/engines.py --repeats {args.repeats}\n")
        print(f"Machine: {_load()} at the start; best of {args.repeats} runs.\n")
        print("| engine | copy 4 databases (s) | gold checked (rows) | kept | check rate (rows/s) |")
        print("|---|---:|---:|---:|---:|")
        for dialect, copy_s, kept, total, check_s, _ in rows_out:
            print(f"| {dialect} | {copy_s:.2f} | {total} | {kept} ({kept / total:.1%}) | {total / check_s:.0f} |")
        print()
        print("| engine | rows | gold + prediction executed (s) | queries/s | vs SQLite | execution accuracy |")
        print("|---|---:|---:|---:|---:|---:|")
        base_rate = 2 * timings["sqlite"][0] / timings["sqlite"][1]
        for dialect, (n, seconds, accuracy) in timings.items():
            rate = 2 * n / seconds
            print(f"| {dialect} | {n} | {seconds:.2f} | {rate:.0f} | {rate / base_rate:.2f}× | {accuracy:.3f} |")
        print(f"\nMachine at the end: {_load()}.")
    finally:
        if server is not None:
            server.stop()
            import shutil

            shutil.rmtree(server.folder, ignore_errors=True)


if __name__ == "__main__":
    main()
