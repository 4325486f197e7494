"""`text2sql db copy` given what it cannot copy unchanged: one line naming the table or column and the
fix, a non-zero exit, and every destination as it was (a real PostgreSQL server, real DuckDB files).
Also: a folder copy that fails part-way leaves nothing, nothing is changed silently, and 400 MB of
blobs are copied in bounded memory."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from cli_support import assert_one_line_error, run_cli

LONG = "t" * 70  # over PostgreSQL's 63 bytes
WIDE = "CREATE TABLE wide (" + ", ".join(f"c{i} INT" for i in range(1700)) + ")"
NUL_KEY = ["CREATE TABLE k (id TEXT PRIMARY KEY)", "INSERT INTO k VALUES ('a' || char(0) || 'b'), ('a')"]

# name: (SQLite statements, engines that refuse it, what the one line names)
HOSTILE = {
    "tables_equal_in_lower_case": (['CREATE TABLE "Ä" (x)', 'CREATE TABLE "ä" (x)'], ["postgres"], ['"Ä"', "rename"]),
    "columns_equal_in_lower_case": (['CREATE TABLE t ("Ä", "ä")'], ["postgres"], ['"t"."ä"', "rename"]),
    "table_name_over_63_bytes": ([f'CREATE TABLE "{LONG}" (x)'], ["postgres"], [LONG, "70 bytes", "rename"]),
    "column_name_over_63_bytes": ([f'CREATE TABLE t ("{LONG}")'], ["postgres"], [LONG, "63 bytes", "rename"]),
    "1700_columns": ([WIDE], ["postgres"], ['"wide"', "1700 columns", "split it"]),
    "empty_table_name": (['CREATE TABLE "" (x)'], ["postgres", "duckdb"], ['table ""', "empty name", "rename"]),
    "empty_column_name": (['CREATE TABLE t ("")'], ["postgres", "duckdb"], ['"t".""', "empty name", "rename"]),
    "nul_in_primary_key": (NUL_KEY, ["postgres"], ['"k"."id"', "primary key", "NUL", "replace("]),
    "pg_catalog_name": (["CREATE TABLE pg_class (x)"], ["postgres", "duckdb"], ['"pg_class"', "pg_", "rename"]),
    "duckdb_catalog_name": (["CREATE TABLE duckdb_tables (x)"], ["duckdb"], ['"duckdb_tables"', "duckdb_"]),
    "system_column": (["CREATE TABLE t (xmin INT)"], ["postgres"], ['"t"."xmin"', "system column", "rename"]),
}


def make_sqlite(path, statements):
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pg_rows(server, sql, params=None):
    """Rows of `sql` read as the server's admin (not through text2sql's model-SQL path)."""
    with server.admin() as conn:
        return conn.execute(sql, params).fetchall()


def pg_tables(server, schema):
    return pg_rows(server, "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))


def pg_schema_exists(server, schema):
    return bool(pg_rows(server, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)))


def duck_rows(path, sql):
    import duckdb

    conn = duckdb.connect(str(path), read_only=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def keep_schema(server, schema):
    """A destination schema that already holds a table `keep` with one row."""
    with server.admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".keep (x int)')
        conn.execute(f'INSERT INTO "{schema}".keep VALUES (7)')
    return server.url("postgres", schema=schema)


def keep_file(path):
    """A destination DuckDB file that already holds a table `keep` with one row."""
    import duckdb

    conn = duckdb.connect(str(path))
    conn.execute("CREATE TABLE keep (x INT)")
    conn.execute("INSERT INTO keep VALUES (7)")
    conn.close()
    return path


def cases():
    for name, (_, engines, _) in HOSTILE.items():
        for engine in engines:
            yield pytest.param(name, engine, id=f"{name}-{engine}")


@pytest.mark.parametrize("case, engine", list(cases()))
def test_hostile_input_is_one_line_and_changes_nothing(case, engine, tmp_path, request, capsys):
    statements, _, needles = HOSTILE[case]
    source = make_sqlite(tmp_path / "hostile.sqlite", statements)
    if engine == "duckdb":
        (tmp_path / "out").mkdir()
        dest = keep_file(tmp_path / "out" / "dest.duckdb")
        before = digest(dest)
        code, _, err = run_cli(capsys, "db", "copy", source, dest, "--force")
        assert_one_line_error(code, err, *needles)
        assert digest(dest) == before
        assert sorted(p.name for p in dest.parent.iterdir()) == ["dest.duckdb"]  # no staging file left
    else:
        server = request.getfixturevalue("postgres_server")
        schema = f"h_{case}"[:60].lower()
        dest = keep_schema(server, schema)
        code, _, err = run_cli(capsys, "db", "copy", source, dest, "--force")
        assert_one_line_error(code, err, *needles)
        assert pg_tables(server, schema) == [("keep",)]
        assert pg_rows(server, f'SELECT x FROM "{schema}".keep') == [(7,)]
        fresh = server.url("postgres", schema=f"{schema[:50]}_new")
        code, _, err = run_cli(capsys, "db", "copy", source, fresh)
        assert_one_line_error(code, err, *needles)
        assert not pg_schema_exists(server, f"{schema[:50]}_new")


def test_what_duckdb_holds_as_it_is_is_copied_unchanged(tmp_path, capsys):
    """DuckDB tells "Ä" from "ä", holds long names and NUL in text, and a table may be called like
    anything the copy itself uses: all copied as they are, with nothing noted."""
    source = make_sqlite(
        tmp_path / "odd.sqlite",
        [
            'CREATE TABLE "Ä" (x)',
            'CREATE TABLE "ä" (x)',
            f'CREATE TABLE "{LONG}" ("{LONG}" TEXT)',
            f"INSERT INTO \"{LONG}\" VALUES ('a' || char(0) || 'b')",
            "CREATE TABLE text2sql_batch (id INTEGER PRIMARY KEY)",
            "INSERT INTO text2sql_batch VALUES (1), (2)",
            *NUL_KEY,
        ],
    )
    dest = tmp_path / "odd.duckdb"
    code, _, err = run_cli(capsys, "db", "copy", source, dest)
    assert code == 0, err
    assert "note" not in err
    tables = duck_rows(dest, "SELECT table_name FROM duckdb_tables() ORDER BY table_name")
    assert sorted(t for (t,) in tables) == sorted(["Ä", "ä", LONG, "text2sql_batch", "k"])
    assert duck_rows(dest, f'SELECT "{LONG}" FROM "{LONG}"') == [("a\x00b",)]
    assert duck_rows(dest, "SELECT id FROM k ORDER BY id") == [("a",), ("a\x00b",)]
    assert duck_rows(dest, "SELECT id FROM text2sql_batch ORDER BY id") == [(1,), (2,)]


def test_nul_in_text_is_refused_on_postgres_never_stripped(postgres_server, tmp_path, capsys):
    source = make_sqlite(
        tmp_path / "nul.sqlite",
        ["CREATE TABLE notes (id INT, body TEXT)", "INSERT INTO notes VALUES (1, 'ok'), (2, 'x' || char(0) || 'y')"],
    )
    dest = postgres_server.url("postgres", schema="nul_text")
    code, _, err = run_cli(capsys, "db", "copy", source, dest)
    assert_one_line_error(code, err, '"notes"."body"', "NUL", "PostgreSQL text cannot hold", "copy into DuckDB")
    assert not pg_schema_exists(postgres_server, "nul_text")


def test_text_that_is_not_utf8_is_noted_column_by_column(tmp_path):
    from text2sql.sql.copy import copy_database

    source = make_sqlite(
        tmp_path / "latin1.sqlite",
        ["CREATE TABLE p (name TEXT, ok TEXT)", "INSERT INTO p VALUES (CAST(X'43616665E9' AS TEXT), 'fine')"],
    )
    report = copy_database(source, str(tmp_path / "latin1.duckdb"), show_progress=False)
    assert report.notes == ["p.name: 1 value(s) not valid UTF-8; copied with U+FFFD in place of the bytes that are not"]
    assert duck_rows(tmp_path / "latin1.duckdb", "SELECT name FROM p") == [("Cafe\ufffd",)]


@pytest.mark.parametrize(
    "dest, needle",
    [
        ("out.sqlite", "not a PostgreSQL or DuckDB destination"),
        ("text.duckdb", "not a DuckDB database"),
        ("folder.duckdb", "not a file"),
        ("duckdb://{tmp}/real.sqlite", "not a DuckDB database"),
    ],
)
def test_a_destination_that_is_not_duckdb_is_one_line(dest, needle, tmp_path, capsys):
    source = make_sqlite(tmp_path / "src.sqlite", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"])
    (tmp_path / "text.duckdb").write_text("not a database\n")
    (tmp_path / "folder.duckdb").mkdir()
    make_sqlite(tmp_path / "real.sqlite", ["CREATE TABLE other (y)"])
    before = {p.name: (p.is_file() and digest(p)) for p in tmp_path.iterdir()}
    target = dest.format(tmp=tmp_path) if "://" in dest else str(tmp_path / dest)
    code, _, err = run_cli(capsys, "db", "copy", source, target, "--force")
    assert_one_line_error(code, err, needle)
    assert {p.name: (p.is_file() and digest(p)) for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize(
    "dest, needles",
    [
        ("postgresql://me@127.0.0.1:9/{db_id}?schema=s", ["one PostgreSQL database", "?schema="]),
        ("postgresql://me@127.0.0.1:9/db?schema=pg_{db_id}", ['schema "pg_', "its own catalogs", "?schema="]),
        (f"postgresql://me@127.0.0.1:9/db?schema={LONG}_{{db_id}}", ["bytes long", "?schema="]),
    ],
)
def test_postgres_destinations_are_checked_before_connecting(dest, needles, capsys):
    """One PostgreSQL database per copy (or it could not be one transaction), and schema names it can
    create as they are; refused before any connection (nothing listens on port 9)."""
    code, _, err = run_cli(capsys, "db", "copy", "bundled", dest)
    assert_one_line_error(code, err, *needles)


# ------------------------------------------------------------------------------ all or nothing


def make_folder(root):
    """A folder of two databases: `a` copies, `b` cannot (two keys that differ only in bytes that are
    not UTF-8 become one value once copied, and the engine refuses the repeated primary key)."""
    for db_id in ("a", "b"):
        (root / db_id).mkdir(parents=True)
    make_sqlite(
        root / "a" / "a.sqlite",
        ["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)", "INSERT INTO items VALUES (1, 'x'), (2, 'y')"],
    )
    make_sqlite(
        root / "b" / "b.sqlite",
        [
            "CREATE TABLE codes (code TEXT PRIMARY KEY)",
            "INSERT INTO codes VALUES (CAST(X'FF' AS TEXT)), (CAST(X'FE' AS TEXT))",
        ],
    )
    return root


def test_a_folder_copy_into_duckdb_is_all_or_nothing(tmp_path, capsys):
    folder = make_folder(tmp_path / "src")
    out = tmp_path / "out"
    pattern = str(out / "{db_id}" / "{db_id}.duckdb")
    code, _, err = run_cli(capsys, "db", "copy", folder, pattern)
    assert_one_line_error(code, err, "table codes", "nothing was copied")
    assert not out.exists()  # not a.duckdb, nor the folders made for it
    # A destination that is there already stays as it was, --force or not.
    code, _, err = run_cli(capsys, "db", "copy", folder / "a" / "a.sqlite", keep_file(tmp_path / "a.duckdb"))
    assert code == 0, err
    (out / "a").mkdir(parents=True)
    (tmp_path / "a.duckdb").rename(out / "a" / "a.duckdb")
    with sqlite3.connect(folder / "a" / "a.sqlite") as conn:
        conn.execute("DELETE FROM items")
    conn.close()
    before = digest(out / "a" / "a.duckdb")
    code, _, err = run_cli(capsys, "db", "copy", folder, pattern, "--force")
    assert_one_line_error(code, err, "table codes")
    assert digest(out / "a" / "a.duckdb") == before
    assert duck_rows(out / "a" / "a.duckdb", "SELECT COUNT(*) FROM items") == [(2,)]
    assert sorted(p.name for p in out.iterdir()) == ["a"]
    assert sorted(p.name for p in (out / "a").iterdir()) == ["a.duckdb"]
    # Once b is fixed, both are copied and --force replaces a's table.
    with sqlite3.connect(folder / "b" / "b.sqlite") as conn:
        conn.execute("DELETE FROM codes WHERE code = CAST(X'FE' AS TEXT)")
    conn.close()
    code, _, err = run_cli(capsys, "db", "copy", folder, pattern, "--force")
    assert code == 0, err
    assert "copied 2 database(s)" in err and "codes.code: 1 value(s) not valid UTF-8" in err
    assert duck_rows(out / "a" / "a.duckdb", "SELECT COUNT(*) FROM items") == [(0,)]
    assert duck_rows(out / "a" / "a.duckdb", "SELECT x FROM keep") == [(7,)]  # its other tables stay


def test_a_folder_copy_into_postgres_is_all_or_nothing(postgres_server, tmp_path, capsys):
    folder = make_folder(tmp_path / "src")
    with postgres_server.admin() as conn:
        for schema in ("a", "b"):
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    pattern = postgres_server.url("postgres", schema="{db_id}")
    code, _, err = run_cli(capsys, "db", "copy", folder, pattern)
    assert_one_line_error(code, err, "codes", "nothing was copied")
    assert not pg_schema_exists(postgres_server, "a") and not pg_schema_exists(postgres_server, "b")
    # A destination that is there already stays as it was, --force or not.
    code, _, err = run_cli(capsys, "db", "copy", folder / "a" / "a.sqlite", postgres_server.url(schema="a"))
    assert code == 0, err
    with sqlite3.connect(folder / "a" / "a.sqlite") as conn:
        conn.execute("DELETE FROM items")
    conn.close()
    code, _, err = run_cli(capsys, "db", "copy", folder, pattern, "--force")
    assert_one_line_error(code, err, "codes")
    assert pg_rows(postgres_server, "SELECT id, name FROM a.items ORDER BY id") == [(1, "x"), (2, "y")]
    assert pg_tables(postgres_server, "a") == [("items",)]
    assert not pg_schema_exists(postgres_server, "b")
    # Without --force the table already in `a` is refused before anything is written.
    code, _, err = run_cli(capsys, "db", "copy", folder, pattern)
    assert_one_line_error(code, err, "already has table(s) items", "--force")
    assert not pg_schema_exists(postgres_server, "b")


# ------------------------------------------------------------------------------ bounded memory

_MEASURE = textwrap.dedent(
    """
    import json, sys, tracemalloc
    import duckdb, psycopg, pyarrow  # loaded before the baseline: their code is no copy's memory
    from text2sql.sql.copy import copy_database

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    baseline = status("VmRSS")
    tracemalloc.start()
    copy_database(sys.argv[1], sys.argv[2], show_progress=False)
    python_peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps({"rss": status("VmHWM") - baseline, "python": python_peak}))
    """
)
MB = 2**20


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """400 MB of blobs: 400 rows of 1 MB, random so that nothing compresses them away."""
    path = tmp_path_factory.mktemp("blobs") / "blobs.sqlite"
    return make_sqlite(
        path,
        [
            "CREATE TABLE files (id INTEGER PRIMARY KEY, data BLOB)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) "
            "INSERT INTO files SELECT i, randomblob(1048576) FROM n",
        ],
    )


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_large_blobs_are_copied_in_bounded_memory(engine, blobs, tmp_path, request):
    if engine == "duckdb":
        dest = str(tmp_path / "blobs.duckdb")
    else:
        dest = request.getfixturevalue("postgres_server").url("postgres", schema="blobs")
    done = subprocess.run([sys.executable, "-c", _MEASURE, str(blobs), dest], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    used = json.loads(done.stdout)
    # The copy's own values: a batch of at most 16 MB (all 400 MB at once before batches had a size).
    assert used["python"] < 64 * MB, used
    # The whole process. DuckDB itself holds the large values of one row group (here all 400 MB)
    # while it writes them, within its own cap of 1 GB (copy_writers._DUCKDB_MEMORY). Measured: 41 MB
    # on PostgreSQL, 640 MB on DuckDB; a copy that read 5,000 rows at a time peaked at 3.2 GB.
    assert used["rss"] < (300 if engine == "postgres" else 300 + 1024) * MB, used
    if engine == "duckdb":
        assert duck_rows(dest, "SELECT COUNT(*), SUM(octet_length(data)) FROM files") == [(400, 400 * MB)]
    else:
        server = request.getfixturevalue("postgres_server")
        assert pg_rows(server, "SELECT COUNT(*), SUM(octet_length(data)) FROM blobs.files") == [(400, 400 * MB)]
