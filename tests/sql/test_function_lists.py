"""Every function each engine exposes goes through the allow-list: allowed with a category, or refused
with one. Walked on the real engines: PostgreSQL 15 with every contrib extension installed, the
DuckDB package, and Python's SQLite. The checks hold the lists to what each engine's own catalog says
of a function (volatility, side effects, the extension that defines it), so that a wrong entry fails
here, and a name that is on a list but exists nowhere is a typo."""

from __future__ import annotations

import collections
import sqlite3

import pytest

from text2sql.sql.functions import NOT_REVIEWED, _lists, classify
from text2sql.sql.functions import duckdb as duckdb_list
from text2sql.sql.functions import postgres as postgres_list
from text2sql.sql.functions import sqlite as sqlite_list

# The calls a review of the PostgreSQL sandbox got through, and what each must be refused as.
ESCAPES = {
    "postgres": {
        "pg_read_file": "reads or writes files",
        "pg_read_binary_file": "reads or writes files",
        "pg_ls_dir": "reads or writes files",
        "lo_import": "reads or writes files",
        "lo_export": "reads or writes files",
        "ts_stat": "runs SQL given as text",
        "ts_rewrite": "runs SQL given as text",
        "query_to_xml": "runs SQL given as text",
        "xpath_table": "runs SQL given as text",
        "crosstab": "runs SQL given as text",
        "dblink": "reaches other servers",
        "dblink_exec": "reaches other servers",
        "dblink_connect_u": "reaches other servers",
        "dblink_send_query": "reaches other servers",
        "pg_advisory_lock": "takes or holds locks",
        "pg_advisory_lock_shared": "takes or holds locks",
        "pg_try_advisory_xact_lock_shared": "takes or holds locks",
        "pg_terminate_backend": "acts on other sessions",
        "pg_cancel_backend": "acts on other sessions",
        "txid_current": "reads or changes server state",
        "pg_current_xact_id": "reads or changes server state",
        "pg_create_logical_replication_slot": "reads or changes server state",
        "pg_create_physical_replication_slot": "reads or changes server state",
        "pg_stat_reset": "reads or changes server state",
        "set_config": "reads or changes server state",
        "pg_sleep": "reads or changes server state",
        "nextval": "changes or reads sequences",
        "setval": "changes or reads sequences",
    },
    "duckdb": {
        "read_csv": "reads or writes files",
        "read_text": "reads or writes files",
        "glob": "reads or writes files",
        "parquet_scan": "reads or writes files",
        "query": "runs SQL given as text",
        "query_table": "runs SQL given as text",
        "json_execute_serialized_sql": "runs SQL given as text",
        "getenv": "reads or changes server state",
        "duckdb_settings": "reads or changes server state",
        "sleep_ms": "waits",
        "nextval": "changes or reads sequences",
    },
    "sqlite": {
        "load_extension": "runs native code",
        "fts3_tokenizer": "runs native code",
        "readfile": "reads or writes files",
        "writefile": "reads or writes files",
    },
}


def _words(text: str) -> set[str]:
    return set(text.split())


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "sqlite"])
def test_the_known_escapes_are_refused_by_category(dialect):
    for name, category in ESCAPES[dialect].items():
        verdict = classify(name, dialect)
        assert not verdict.allowed and verdict.category == category, (name, verdict)


@pytest.mark.parametrize("dialect", ["postgres", "duckdb", "sqlite"])
def test_no_name_is_both_allowed_and_refused(dialect):
    lists = _lists(dialect)
    assert not set(lists.allowed) & set(lists.refused)
    assert all(category for category in lists.allowed.values())


def test_an_unknown_function_is_refused_as_not_reviewed():
    for dialect in ("postgres", "duckdb", "sqlite"):
        verdict = classify("brand_new_extension_function", dialect)
        assert not verdict.allowed and verdict.category == NOT_REVIEWED


@pytest.fixture(scope="module")
def postgres_functions(postgres_server):
    """name -> [(volatility, extension or None, takes or returns an internal type)] of every function
    in a database with every available extension installed."""
    postgres_server.create_database("functions_walk")
    with postgres_server.admin("functions_walk") as conn:
        available = [r[0] for r in conn.execute("SELECT name FROM pg_available_extensions ORDER BY name")]
        installed = []
        for name in available:
            try:
                conn.execute(f'CREATE EXTENSION IF NOT EXISTS "{name}" CASCADE')
                installed.append(name)
            except Exception:  # noqa: BLE001 (one that needs a library this server lacks)
                continue
        rows = conn.execute(
            "SELECT p.proname, p.provolatile, e.extname, "
            "p.proargtypes::oid[] && ARRAY['internal'::regtype, 'cstring'::regtype]::oid[] "
            "OR p.prorettype IN ('internal'::regtype, 'cstring'::regtype, 'trigger'::regtype) "
            "FROM pg_proc p LEFT JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
            "AND d.deptype = 'e' LEFT JOIN pg_extension e ON e.oid = d.refobjid"
        ).fetchall()
    found: dict[str, list[tuple]] = collections.defaultdict(list)
    for name, volatility, extension, internal in rows:
        found[name].append((volatility, extension, internal))
    assert {"dblink", "adminpack", "file_fdw", "pageinspect", "tablefunc"} <= set(installed)
    return found


def test_every_postgres_function_is_allowed_or_refused_by_what_it_does(postgres_functions):
    reviewed = _words(postgres_list.REVIEWED_EXTENSIONS)
    volatile_ok = _words(postgres_list.VOLATILE_OK)
    by_category: collections.Counter = collections.Counter()
    for name, definitions in postgres_functions.items():
        verdict = classify(name, "postgres")
        by_category[(verdict.allowed, verdict.category)] += 1
        if not verdict.allowed:
            continue
        callable_ones = [d for d in definitions if not d[2]]
        assert callable_ones, f"{name}: allowed, but only callable with internal types"
        for volatility, extension, _ in callable_ones:
            # Allowed: a function of the server itself or of a reviewed extension, and one that
            # declares itself free of effects (immutable or stable) unless it only reads a clock or RNG.
            assert extension is None or extension in reviewed, f"{name}: allowed, but defined by {extension}"
            assert volatility in ("i", "s") or name in volatile_ok, f"{name}: allowed, but volatile"
    for name, definitions in postgres_functions.items():
        extensions = {d[1] for d in definitions}
        if extensions and None not in extensions and not extensions & reviewed:
            assert not classify(name, "postgres").allowed, f"{name} of {extensions} must be refused"
    # Every function of the server's administration family is refused, whatever its name says.
    for name in postgres_functions:
        if name.startswith("pg_") and name != "pg_typeof":
            assert not classify(name, "postgres").allowed, name
    allowed = sum(n for (ok, _), n in by_category.items() if ok)
    assert allowed > 300 and by_category[(False, NOT_REVIEWED)] > 1000


def test_every_allowed_postgres_name_exists_or_is_syntax(postgres_functions):
    missing = set(_lists("postgres").allowed) - set(postgres_functions)
    assert missing <= _words(postgres_list.NOT_IN_CATALOG), sorted(missing - _words(postgres_list.NOT_IN_CATALOG))


def test_every_duckdb_function_is_allowed_or_refused_by_what_it_does():
    duckdb = pytest.importorskip("duckdb")
    conn = duckdb.connect()
    rows = conn.execute(
        "SELECT lower(function_name), function_type, has_side_effects, stability FROM duckdb_functions()"
    ).fetchall()
    volatile_ok = _words(duckdb_list.VOLATILE_OK)
    tables_ok = _words(duckdb_list.TABLE_FUNCTIONS_OK)
    names = set()
    for name, kind, side_effects, stability in rows:
        names.add(name)
        verdict = classify(name, "duckdb")
        if not verdict.allowed:
            continue
        assert not side_effects or name in volatile_ok, f"{name}: allowed, but DuckDB says it has side effects"
        assert stability != "VOLATILE" or name in volatile_ok, f"{name}: allowed, but volatile"
        assert kind not in ("table", "table_macro", "pragma") or name in tables_ok, f"{name}: an unreviewed {kind}"
    for name in names:
        if name.startswith(("read_", "duckdb_", "pragma_")) or name.endswith("_scan"):
            assert not classify(name, "duckdb").allowed, name
    missing = set(_lists("duckdb").allowed) - names
    assert missing <= _words(duckdb_list.NOT_IN_CATALOG), sorted(missing)


def test_every_sqlite_function_is_allowed_or_refused():
    conn = sqlite3.connect(":memory:")
    names = {r[0].lower() for r in conn.execute("SELECT name FROM pragma_function_list")}
    for name in names:
        classify(name, "sqlite")  # a verdict for every one; the unknown ones are refused
    missing = set(_lists("sqlite").allowed) - names
    assert missing <= _words(sqlite_list.NOT_IN_CATALOG), sorted(missing)
    refused = {n for n in names if not classify(n, "sqlite").allowed}
    assert {"load_extension", "fts3_tokenizer"} <= refused
