"""`text2sql db copy SRC DEST [--force]`: SQLite databases copied into PostgreSQL or DuckDB.

    text2sql db copy shop.sqlite "postgresql://me@localhost/shop"
    text2sql db copy bundled "postgresql://me@localhost/bundled?schema={db_id}"
    text2sql db copy spider/database "spider_duckdb/{db_id}/{db_id}.duckdb"

SRC is a SQLite file, a folder of <db_id>/<db_id>.sqlite (Spider's layout) or `bundled`; for a
folder, DEST holds `{db_id}`: one schema or file per database. Every database is copied or, on any
failure, none is (`text2sql.sql.copy`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from text2sql.commands.db_role import add_role_parser
from text2sql.errors import ConfigError, DataError

HELP = "copy SQLite databases into PostgreSQL or DuckDB (tables, keys, rows), to train and check SQL there"


def add_arguments(p: argparse.ArgumentParser, parents: Sequence[argparse.ArgumentParser] = ()) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser(
        "copy",
        parents=list(parents),
        help="copy a SQLite file, a folder of <db_id>/<db_id>.sqlite or `bundled` into PostgreSQL or DuckDB",
    )
    c.add_argument("source", metavar="SRC", help="a SQLite file, a folder of <db_id>/<db_id>.sqlite, or bundled")
    c.add_argument(
        "dest",
        metavar="DEST",
        help="postgresql://user@host/db[?schema=NAME] (password from PGPASSWORD or ~/.pgpass) or a .duckdb file; "
        "with {db_id} in it for a folder",
    )
    c.add_argument("--force", action="store_true", help="replace tables that already exist in DEST")
    c.set_defaults(func=run)
    add_role_parser(actions, parents)


def sources(source: str) -> dict[str, Path]:
    """db_id -> SQLite file of SRC."""
    from text2sql.data import bundled

    if source == "bundled":
        return {db_id: bundled.db_path(db_id) for db_id in bundled.db_ids()}
    path = Path(source).expanduser()
    if path.is_file():
        return {path.stem: path}
    if path.is_dir():
        found = {d.name: d / f"{d.name}.sqlite" for d in sorted(path.iterdir()) if (d / f"{d.name}.sqlite").is_file()}
        if not found:
            raise DataError(f"{source}: no <db_id>/<db_id>.sqlite databases in this folder")
        return found
    raise DataError(f"{source}: no such file or folder; give a SQLite file, a folder of databases or bundled")


def run(args: argparse.Namespace) -> int:
    from text2sql.sql.copy import copy_databases
    from text2sql.sql.targets import dialect_of, for_db_id

    found = sources(args.source)
    if len(found) > 1 and "{db_id}" not in args.dest:
        raise ConfigError(
            f"{args.source} holds {len(found)} databases: put {{db_id}} in DEST (e.g. ...?schema={{db_id}} or "
            "out/{db_id}/{db_id}.duckdb) so that each gets its own"
        )
    dialect_of(args.dest.replace("{db_id}", "x"))  # an unknown scheme fails before anything is read
    # All or nothing: a table is listed only once every database is in place.
    reports = copy_databases([(path, for_db_id(args.dest, db_id)) for db_id, path in found.items()], force=args.force)
    print(f"{'database':<24} {'tables':>6} {'rows':>9}  destination", file=sys.stderr)
    notes = 0
    for db_id, report in zip(found, reports):
        print(f"{db_id:<24} {len(report.tables):>6} {report.rows:>9}  {report.dest}", file=sys.stderr)
        for note in report.notes:
            print(f"  note: {note}", file=sys.stderr)
        notes += len(report.notes)
    print(f"copied {len(found)} database(s){f' ({notes} note(s) above)' if notes else ''}", file=sys.stderr)
    return 0
