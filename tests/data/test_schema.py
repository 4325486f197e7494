"""Schema introspection and rendering: quoting, keys, formats, sample rows, caching, real schemas."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from text2sql.data.schema import (
    ForeignKey,
    quote_identifier,
    read_schema,
    render_schema,
    schema_from_tables_json,
    schema_text,
)
from text2sql.errors import ConfigError, DataError


def make_db(path: Path, script: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


SHOP = """
CREATE TABLE department (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE "order" (
    id INTEGER PRIMARY KEY,
    "customer name" TEXT,
    dept_id INTEGER REFERENCES department(id),
    "group" TEXT
);
CREATE TABLE line (order_id INTEGER, n INTEGER, qty REAL, PRIMARY KEY (order_id, n),
                   FOREIGN KEY (order_id) REFERENCES "order"(id));
CREATE TABLE "straße" (id INTEGER PRIMARY KEY, dept INTEGER REFERENCES department);
"""


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    return make_db(tmp_path / "shop.sqlite", SHOP)


# ------------------------------------------------------------------------------------------ quoting


@pytest.mark.parametrize(
    "name, expected",
    [
        ("employee", "employee"),
        ("Dept_ID2", "Dept_ID2"),
        ("customer name", '"customer name"'),
        ("order", '"order"'),  # only a keyword as part of "ORDER BY" in sqlglot's list
        ("Group", '"Group"'),
        ("select", '"select"'),
        ("Date", '"Date"'),
        ("straße", '"straße"'),
        ("名前", '"名前"'),
        ('say "hi"', '"say ""hi"""'),
        ("2nd", '"2nd"'),
        ("a-b", '"a-b"'),
    ],
)
def test_quote_identifier(name: str, expected: str) -> None:
    assert quote_identifier(name) == expected


def test_quoted_names_are_valid_sqlite(tmp_path: Path) -> None:
    # The renderer's output must be runnable SQL: build a table from awkward names, read it back.
    names = ["order", "customer name", 'say "hi"', "名前", "select", "2nd"]
    cols = ", ".join(f"{quote_identifier(n)} TEXT" for n in names)
    db = make_db(tmp_path / "q.sqlite", f"CREATE TABLE {quote_identifier('group')} ({cols});")
    schema = read_schema(db)
    assert [t.name for t in schema.tables] == ["group"]
    assert [c.name for c in schema.tables[0].columns] == names


# -------------------------------------------------------------------------------------- from SQLite


def test_read_schema_keys(shop: Path) -> None:
    schema = read_schema(shop)
    assert [t.name for t in schema.tables] == ["department", "order", "line", "straße"]
    order, line, strasse = schema.tables[1], schema.tables[2], schema.tables[3]
    assert [(c.name, c.type) for c in order.columns][:2] == [("id", "INTEGER"), ("customer name", "TEXT")]
    assert order.primary_key == ["id"]
    assert order.foreign_keys == [ForeignKey(("dept_id",), "department", ("id",))]
    assert line.primary_key == ["order_id", "n"]
    assert line.foreign_keys == [ForeignKey(("order_id",), "order", ("id",))]
    # `REFERENCES department` without a column list means department's primary key.
    assert strasse.foreign_keys == [ForeignKey(("dept",), "department", ("id",))]


def test_render_sql_format(shop: Path) -> None:
    text = render_schema(read_schema(shop), fmt="sql")
    assert text == (
        "CREATE TABLE department (\n"
        "  id INTEGER PRIMARY KEY,\n"
        "  name TEXT\n"
        ");\n"
        'CREATE TABLE "order" (\n'
        "  id INTEGER PRIMARY KEY,\n"
        '  "customer name" TEXT,\n'
        "  dept_id INTEGER,\n"
        '  "group" TEXT,\n'
        "  FOREIGN KEY (dept_id) REFERENCES department (id)\n"
        ");\n"
        "CREATE TABLE line (\n"
        "  order_id INTEGER,\n"
        "  n INTEGER,\n"
        "  qty REAL,\n"
        "  PRIMARY KEY (order_id, n),\n"
        '  FOREIGN KEY (order_id) REFERENCES "order" (id)\n'
        ");\n"
        'CREATE TABLE "straße" (\n'
        "  id INTEGER PRIMARY KEY,\n"
        "  dept INTEGER,\n"
        "  FOREIGN KEY (dept) REFERENCES department (id)\n"
        ");"
    )


def test_rendered_sql_recreates_the_same_schema(shop: Path, tmp_path: Path) -> None:
    # Equivalence by execution: the prompt's CREATE TABLE text builds a database with the same
    # tables, columns, primary and foreign keys as the original.
    original = read_schema(shop)
    copy = make_db(tmp_path / "copy.sqlite", render_schema(original))
    assert read_schema(copy).tables == original.tables


def test_render_compact_format(shop: Path) -> None:
    text = render_schema(read_schema(shop), fmt="compact")
    assert text.splitlines() == [
        "department(id PK, name)",
        '"order"(id PK, "customer name", dept_id -> department.id, "group")',
        'line(order_id PK -> "order".id, n PK, qty)',
        '"straße"(id PK, dept -> department.id)',
    ]


def test_unknown_schema_format(shop: Path) -> None:
    with pytest.raises(ConfigError, match="data.schema_format.*sql, compact"):
        render_schema(read_schema(shop), fmt="yaml")


def test_tables_in_sqlite_master_order(tmp_path: Path) -> None:
    db = make_db(tmp_path / "o.sqlite", "CREATE TABLE zeta (a); CREATE TABLE alpha (b); CREATE INDEX i ON zeta(a);")
    assert [t.name for t in read_schema(db).tables] == ["zeta", "alpha"]


def test_rendering_is_deterministic(shop: Path) -> None:
    texts = {render_schema(read_schema(shop), fmt, sample_rows=2) for fmt in ("sql", "sql", "sql")}
    assert len(texts) == 1


# -------------------------------------------------------------------------------------- sample rows


def test_sample_rows_in_rowid_order(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "s.sqlite",
        """
        CREATE TABLE person (name TEXT, note TEXT, photo BLOB);
        INSERT INTO person VALUES ('zed', NULL, NULL);
        INSERT INTO person VALUES ('O''Brien', 'a */ b', x'00ff');
        INSERT INTO person VALUES ('amy', 'line1
line2', NULL);
        INSERT INTO person VALUES ('bob', 'never shown', NULL);
        """,
    )
    text = render_schema(read_schema(db), sample_rows=3)
    assert text.endswith(
        "/* 3 example rows from person:\n"
        "('zed', NULL, NULL)\n"
        "('O''Brien', 'a * / b', <blob 2 bytes>)\n"
        "('amy', 'line1\\nline2', NULL)\n"
        "*/"
    )
    compact = render_schema(read_schema(db), fmt="compact", sample_rows=1)
    assert compact == "person(name, note, photo)\n  -- ('zed', NULL, NULL)"


def test_sample_rows_long_values_are_cut(tmp_path: Path) -> None:
    db = make_db(tmp_path / "l.sqlite", f"CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('{'y' * 500}');")
    text = render_schema(read_schema(db), sample_rows=1)
    assert "'" + "y" * 80 + "...'" in text
    assert "y" * 81 not in text


def test_sample_rows_without_rowid_table(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "w.sqlite",
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v INT) WITHOUT ROWID; INSERT INTO kv VALUES ('b', 2), ('a', 1);",
    )
    assert render_schema(read_schema(db), fmt="compact", sample_rows=5).splitlines()[1:] == [
        "  -- ('a', 1)",
        "  -- ('b', 2)",
    ]


def test_empty_table_has_no_sample_comment(shop: Path) -> None:
    assert "/*" not in render_schema(read_schema(shop), sample_rows=3)


# --------------------------------------------------------------------------------- from tables.json

TABLES_ENTRY = {
    "db_id": "shop",
    "table_names_original": ["department", "order", "line"],
    "column_names_original": [
        [-1, "*"],
        [0, "id"],
        [0, "name"],
        [1, "id"],
        [1, "customer name"],
        [1, "dept_id"],
        [2, "order_id"],
        [2, "n"],
        [2, "flag"],
    ],
    "column_types": ["text", "number", "text", "number", "text", "number", "number", "number", "others"],
    "primary_keys": [1, 3, [6, 7]],
    "foreign_keys": [[5, 1], [6, 3], [6, 3]],
}


def test_tables_json_sql_format() -> None:
    text = render_schema(schema_from_tables_json(TABLES_ENTRY))
    assert text == (
        "CREATE TABLE department (\n  id NUMBER PRIMARY KEY,\n  name TEXT\n);\n"
        'CREATE TABLE "order" (\n  id NUMBER PRIMARY KEY,\n  "customer name" TEXT,\n  dept_id NUMBER,\n'
        "  FOREIGN KEY (dept_id) REFERENCES department (id)\n);\n"
        "CREATE TABLE line (\n  order_id NUMBER,\n  n NUMBER,\n  flag,\n  PRIMARY KEY (order_id, n),\n"
        '  FOREIGN KEY (order_id) REFERENCES "order" (id)\n);'
    )


def test_tables_json_compact_format() -> None:
    assert render_schema(schema_from_tables_json(TABLES_ENTRY), fmt="compact").splitlines() == [
        "department(id PK, name)",
        '"order"(id PK, "customer name", dept_id -> department.id)',
        'line(order_id PK -> "order".id, n PK, flag)',
    ]


def test_tables_json_malformed_entry() -> None:
    with pytest.raises(DataError, match="tables.json entry 'x': malformed"):
        schema_from_tables_json({"db_id": "x", "table_names_original": ["t"]})


# ------------------------------------------------------------------------------- schema_text, errors


def test_schema_text_is_cached_until_the_file_changes(tmp_path: Path) -> None:
    db = make_db(tmp_path / "c.sqlite", "CREATE TABLE a (x);")
    first = schema_text(db)
    assert schema_text(str(db)) is first  # same object: read once, not once per row
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE b (y)")
    conn.commit()
    conn.close()
    stat = db.stat()
    os.utime(db, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert "CREATE TABLE b" in schema_text(db)


def test_schema_text_missing_database(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.sqlite: database file not found"):
        schema_text(tmp_path / "nope.sqlite")


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("this is not sqlite, just text long enough to have a header" * 10)
    with pytest.raises(DataError, match="bad.sqlite: not a readable SQLite database"):
        read_schema(bad)


def test_reading_never_writes(shop: Path) -> None:
    before = shop.read_bytes()
    render_schema(read_schema(shop), sample_rows=3)
    assert shop.read_bytes() == before
    assert sorted(p.name for p in shop.parent.iterdir()) == ["shop.sqlite"]


# ----------------------------------------------------------------------------------------- real data


def test_department_store_schema(shared_datasets: Path) -> None:
    db = shared_datasets / "spider_en" / "database" / "department_store" / "department_store.sqlite"
    schema = read_schema(db)
    assert len(schema.tables) == 14
    text = schema_text(db)
    assert "CREATE TABLE Supplier_Addresses (" in text
    assert "  PRIMARY KEY (supplier_id, address_id),\n" in text
    assert "FOREIGN KEY (dept_store_chain_id) REFERENCES Department_Store_Chain (dept_store_chain_id)" in text
    compact = schema_text(db, fmt="compact", sample_rows=1)
    assert "Departments(department_id PK, dept_store_id -> Department_Stores.dept_store_id, department_name)" in compact
    assert "  -- (1, 5, 'human resource')" in compact
    # The rendered schema is valid SQLite.
    sqlite3.connect(":memory:").executescript(text)


@pytest.mark.parametrize("relpath", ["spider_en/tables.json", "bird_minidev/dev_tables.json"])
def test_every_real_tables_json_entry_renders_as_valid_sqlite(shared_datasets: Path, relpath: str) -> None:
    entries = json.loads((shared_datasets / relpath).read_text())
    for entry in entries:
        schema = schema_from_tables_json(entry)
        conn = sqlite3.connect(":memory:")
        conn.executescript(render_schema(schema))
        created = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert created == [t.name for t in schema.tables], entry["db_id"]
        assert render_schema(schema, fmt="compact").count("\n") == len(schema.tables) - 1


def test_spider_tables_json_entry(shared_datasets: Path) -> None:
    entries = {e["db_id"]: e for e in json.loads((shared_datasets / "spider_en/tables.json").read_text())}
    text = render_schema(schema_from_tables_json(entries["perpetrator"]))
    assert '  "Home Town" TEXT\n' in text
    assert '  "Date" TEXT,\n' in text
    assert "FOREIGN KEY (People_ID) REFERENCES people (People_ID)" in text
    # sqlite_sequence (listed by some Spider entries) is SQLite-internal and left out.
    assert "sqlite_sequence" not in render_schema(schema_from_tables_json(entries["world_1"]))
