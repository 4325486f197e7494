"""Readers: every input format → Example, drop counting, format detection, one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import sys
import types
from pathlib import Path

import pytest

from text2sql.data.readers import ReadOptions, ReadStats, detect_format, read_examples, split_reasoning
from text2sql.data.readers.ddl import extract_create_tables
from text2sql.data.schema import schema_text
from text2sql.errors import DataError


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_db(path: Path, script: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.commit()
    conn.close()
    return path


def read(source, stats: ReadStats | None = None, split: str | None = None, **options):
    return list(read_examples(source, ReadOptions(**options), split=split, stats=stats))


SINGER_DDL = "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, age INTEGER);"


# ---------------------------------------------------------------------------------------------- csv


def test_csv_seed_000_columns(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "train.csv",
        ["input_text", "sql", "sql_complexity"],
        [
            ["Show all employees", "SELECT * FROM employees", "basic SQL"],
            ["", "SELECT 1", "basic SQL"],  # empty question: dropped, counted
            ["Count them", "  ", "aggregation"],  # empty SQL: dropped, counted
            ["Names, with a comma\nand a newline", "SELECT name FROM employees", ""],
        ],
    )
    stats = ReadStats()
    examples = read(path, stats)
    assert [(e.id, e.question, e.sql, e.complexity) for e in examples] == [
        ("train-0", "Show all employees", "SELECT * FROM employees", "basic SQL"),
        ("train-3", "Names, with a comma\nand a newline", "SELECT name FROM employees", None),
    ]
    assert all(e.schema == "" and e.db_path is None for e in examples)
    assert (stats.records, stats.kept, dict(stats.dropped)) == (4, 2, {"empty question": 1, "empty sql": 1})
    assert stats.summary() == (
        f"{path}: 4 rows read, 2 kept (2 without a database to execute on), 2 dropped (1 empty question, 1 empty sql)"
    )


def test_csv_custom_column_names(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "d.csv", ["q", "query", "level", "id"], [["How many?", "SELECT 1", "easy", "x7"]])
    [example] = read(path, question_column="q", sql_column="query", complexity_column="level")
    assert (example.question, example.sql, example.complexity, example.id) == ("How many?", "SELECT 1", "easy", "x7")


def test_csv_with_bom_and_db_id(tmp_path: Path) -> None:
    db = make_db(tmp_path / "dbs" / "music" / "music.sqlite", SINGER_DDL)
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffinput_text,sql,db_id\r\nHow many singers?,SELECT count(*) FROM singer,music\r\n".encode())
    [example] = read(path, db_dir=str(tmp_path / "dbs"))
    assert example.db_path == str(db)
    assert example.schema == schema_text(db)
    # Without data.db_dir the db_id is kept but the row is not executable.
    [example] = read(path)
    assert (example.db_id, example.db_path, example.schema) == ("music", None, "")


def test_csv_reasoning_target(tmp_path: Path) -> None:
    target = "Count every singer.\n```sql\nSELECT count(*) FROM singer\n```"
    path = write_csv(
        tmp_path / "r.csv", ["input_text", "sql"], [["How many?", target], ["Names?", "SELECT name FROM singer"]]
    )
    stats = ReadStats()
    [example] = read(path, stats, require_reasoning=True)
    assert (example.reasoning, example.sql) == ("Count every singer.", "SELECT count(*) FROM singer")
    assert stats.dropped == {"no reasoning": 1}


def test_csv_streams_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", ["input_text", "sql"], [[f"q{i}", f"SELECT {i}"] for i in range(1000)])
    stream = read_examples(path, ReadOptions())
    assert iter(stream) is stream and not isinstance(stream, list)
    assert next(stream).sql == "SELECT 0"
    assert stream.stats.records == 1  # only what has been consumed was read


# --------------------------------------------------------------------------------------------- chat


def test_chat_jsonl_schema_question_and_system(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "chat.jsonl",
        [
            {
                "id": "c1",
                "messages": [
                    {"role": "system", "content": "You are a SQL expert."},
                    {"role": "user", "content": f"Schema:\n{SINGER_DDL}\nQuestion: How many singers?"},
                    {"role": "assistant", "content": "SELECT count(*) FROM singer;"},
                ],
            },
            {
                "messages": [
                    {"role": "user", "content": "How old is the oldest singer?"},
                    {"role": "assistant", "content": "SELECT max(age) FROM singer"},
                ]
            },
            {"messages": [{"role": "user", "content": "unanswered"}]},
        ],
    )
    stats = ReadStats()
    first, second = read(path, stats)
    assert (first.id, first.question, first.schema, first.sql) == (
        "c1",
        "How many singers?",
        SINGER_DDL,
        "SELECT count(*) FROM singer;",
    )
    assert first.extra == {"system": "You are a SQL expert."}
    assert (second.id, second.question, second.schema, second.extra) == (
        "chat-1",
        "How old is the oldest singer?",
        "",
        {},
    )
    assert stats.dropped == {"no assistant turn": 1}


def test_chat_schema_in_system_prompt_seed_002(tmp_path: Path) -> None:
    system = "Provide only SQL for the user's query given this context --> CREATE TABLE head(age INTEGER)"
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            {
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": "How many heads of the departments are older than 56?"},
                    {"role": "assistant", "content": "SELECT COUNT(*) FROM head WHERE age > 56"},
                ]
            }
        ],
    )
    [example] = read(path)
    assert example.schema == "CREATE TABLE head(age INTEGER);"
    assert example.extra["system"] == "Provide only SQL for the user's query given this context -->"
    assert example.question == "How many heads of the departments are older than 56?"


def test_chat_reasoning_and_sections_seed_001(tmp_path: Path) -> None:
    user = (
        "Database Engine:\nSQLite\n\nDatabase Schema:\n"
        "CREATE TABLE singer (\n  singer_id INTEGER PRIMARY KEY, -- the singer's id\n  age INTEGER\n)\n"
        "This schema describes the database.\n\n"
        "External Knowledge:\nold means age > 60\n\n"
        "Question:\nHow many old singers are there?\n\n"
        "Instructions:\n- Output the SQL in a ```sql block.\n"
    )
    answer = "Old singers have age > 60.\nI count them.\n```sql\nSELECT count(*)\nFROM singer WHERE age > 60;\n```"
    path = write_jsonl(
        tmp_path / "synsql.jsonl",
        [
            {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]},
            {
                "messages": [
                    {"role": "user", "content": "Names?"},
                    {"role": "assistant", "content": "SELECT name FROM singer"},
                ]
            },
        ],
    )
    stats = ReadStats()
    [example] = read(path, stats, require_reasoning=True)
    assert example.question == "How many old singers are there?"
    assert example.evidence == "old means age > 60"
    assert example.schema.startswith("CREATE TABLE singer (\n") and example.schema.endswith(");")
    assert example.reasoning == "Old singers have age > 60.\nI count them."
    assert example.sql == "SELECT count(*)\nFROM singer WHERE age > 60;"
    assert stats.dropped == {"no reasoning": 1}


@pytest.mark.parametrize(
    "target, reasoning, sql",
    [
        ("SELECT 1", None, "SELECT 1"),
        ("```sql\nSELECT 1\n```", None, "SELECT 1"),
        ("Think.\n```SQLite\nSELECT 1\n```\nDone.", "Think.", "SELECT 1"),
        (
            "Draft:\n```sql\nSELECT 0\n```\nFinal:\n```sql\nSELECT 1\n```",
            "Draft:\n```sql\nSELECT 0\n```\nFinal:",
            "SELECT 1",
        ),
        ("Plain fence.\n```\nSELECT 2\n```", "Plain fence.", "SELECT 2"),
    ],
)
def test_split_reasoning(target: str, reasoning: str | None, sql: str) -> None:
    assert split_reasoning(target) == (reasoning, sql)


@pytest.mark.parametrize(
    "text, statements, rest",
    [
        ("CREATE TABLE head(age INTEGER)", ["CREATE TABLE head(age INTEGER);"], ""),
        (
            'x CREATE TABLE IF NOT EXISTS main."my t" (a int); CREATE TABLE [b c](d) y',
            ['CREATE TABLE IF NOT EXISTS main."my t" (a int);', "CREATE TABLE [b c](d);"],
            "x  y",
        ),
        (
            "CREATE TABLE t (\n  a TEXT, -- the user's (odd) name\n  b INT\n) WITHOUT ROWID; Q?",
            ["CREATE TABLE t (\n  a TEXT, -- the user's (odd) name\n  b INT\n) WITHOUT ROWID;"],
            " Q?",
        ),
        (
            "Use the CREATE TABLE statements above (all of them).",
            [],
            "Use the CREATE TABLE statements above (all of them).",
        ),
        ("CREATE TABLE t AS SELECT 1", [], "CREATE TABLE t AS SELECT 1"),
    ],
)
def test_extract_create_tables(text: str, statements: list[str], rest: str) -> None:
    assert extract_create_tables(text) == (statements, rest)


def test_chat_bad_messages(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "human", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"c.jsonl: row c-0: message role 'human'; use system, user or assistant"):
        read(path)


# ----------------------------------------------------------------------------------- create_context

CREATE_CONTEXT_ROWS = [
    {
        "question": "How many heads of the departments are older than 56 ?",
        "context": "CREATE TABLE head (age INTEGER)",
        "answer": "SELECT COUNT(*) FROM head WHERE age > 56",
    },
    {
        "question": "List the names of departments and their heads.",
        "context": "CREATE TABLE department (id VARCHAR, name VARCHAR); CREATE TABLE head (department_id VARCHAR, name VARCHAR)",
        "answer": "SELECT T1.name, T2.name FROM department AS T1 JOIN head AS T2 ON T1.id = T2.department_id",
    },
]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_create_context(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sql_create_context{suffix}"
    write_json(path, CREATE_CONTEXT_ROWS) if suffix == ".json" else write_jsonl(path, CREATE_CONTEXT_ROWS)
    assert detect_format(str(path), ReadOptions()) == "create_context"
    first, second = read(path)
    assert (first.schema, first.sql) == ("CREATE TABLE head (age INTEGER);", CREATE_CONTEXT_ROWS[0]["answer"])
    assert second.schema == (
        "CREATE TABLE department (id VARCHAR, name VARCHAR);\nCREATE TABLE head (department_id VARCHAR, name VARCHAR);"
    )
    assert [e.id for e in (first, second)] == ["sql_create_context-0", "sql_create_context-1"]


# ----------------------------------------------------------------------------------- spider / bird


def spider_folder(root: Path, with_tables: bool = True, with_db: bool = True) -> Path:
    """A Spider-layout folder: dev.json over two databases, only `music` has a SQLite file."""
    root.mkdir(parents=True, exist_ok=True)
    write_json(
        root / "dev.json",
        [
            {
                "db_id": "music",
                "question": "How many singers?",
                "query": "SELECT count(*) FROM singer",
                "sql": {"select": []},
            },
            {"db_id": "shop", "question": "How many orders?", "query": 'SELECT count(*) FROM "order"'},
            {"db_id": "music", "question": "", "query": "SELECT 1"},
        ],
    )
    if with_tables:
        write_json(
            root / "tables.json",
            [
                {
                    "db_id": "shop",
                    "table_names_original": ["order"],
                    "column_names_original": [[-1, "*"], [0, "id"]],
                    "column_types": ["text", "number"],
                    "primary_keys": [1],
                    "foreign_keys": [],
                },
            ],
        )
    if with_db:
        make_db(root / "database" / "music" / "music.sqlite", SINGER_DDL + "INSERT INTO singer VALUES (1, 'a', 30);")
    return root


def test_spider_with_and_without_databases(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider")
    stats = ReadStats()
    music, shop = read(root / "dev.json", stats)
    db = root / "database" / "music" / "music.sqlite"
    assert (music.db_id, music.db_path, music.schema) == ("music", str(db), schema_text(db))
    assert (music.id, music.sql) == ("dev-0", "SELECT count(*) FROM singer")
    assert (shop.db_path, shop.schema) == (None, 'CREATE TABLE "order" (\n  id NUMBER PRIMARY KEY\n);')
    assert (stats.records, stats.kept, stats.without_database, dict(stats.dropped)) == (3, 2, 1, {"empty question": 1})
    # With the database executable, the gold SQL runs.
    assert sqlite3.connect(music.db_path).execute(music.sql).fetchone() == (1,)


def test_spider_folder_as_source_and_schema_options(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider")
    assert detect_format(str(root), ReadOptions()) == "spider"
    music, shop = read(root, schema_format="compact", schema_sample_rows=1)
    assert music.schema == "singer(singer_id PK, name, age)\n  -- (1, 'a', 30)"
    assert shop.schema == '"order"(id PK)'  # no database: no sample rows
    with pytest.raises(DataError, match=r"spider: no train_spider.json / train.json for the train split"):
        read(root, split="train")


def test_spider_databases_under_db_dir(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_db=False)
    make_db(tmp_path / "elsewhere" / "music" / "music.sqlite", SINGER_DDL)
    db = make_db(tmp_path / "elsewhere" / "shop" / "shop.sqlite", 'CREATE TABLE "order" (id INTEGER PRIMARY KEY);')
    music, shop = read(root / "dev.json", db_dir=str(tmp_path / "elsewhere"))
    assert shop.db_path == str(db)
    assert shop.schema == 'CREATE TABLE "order" (\n  id INTEGER PRIMARY KEY\n);'  # from SQLite, not tables.json


def test_spider_without_tables_json(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_tables=False, with_db=False)
    with pytest.raises(DataError) as info:
        read_examples(root / "dev.json", ReadOptions())  # checked before the first row is read
    message = str(info.value)
    assert "db_id 'music', 'shop': no database" in message
    assert f"no tables.json (expected at {root / 'tables.json'})" in message
    assert "\n" not in message


def test_spider_folder_with_only_dev_json(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_tables=False, with_db=False)
    assert detect_format(str(root), ReadOptions()) == "spider"
    with pytest.raises(DataError, match=r"no tables.json \(expected at .*spider/tables.json\)"):
        read_examples(root, ReadOptions())


def test_spider_db_id_in_neither(tmp_path: Path) -> None:
    root = spider_folder(tmp_path / "spider", with_db=False)
    with pytest.raises(
        DataError,
        match=r"db_id 'music': no database \(no <db_id>/<db_id>.sqlite in .*spider/database, "
        r".*\) and no schema \(not in .*tables.json\); set data.db_dir",
    ):
        read(root / "dev.json")


def test_bird_evidence_difficulty_and_ids(tmp_path: Path) -> None:
    root = tmp_path / "bird"
    write_json(
        root.mkdir() or root / "mini_dev_sqlite.json",
        [
            {
                "question_id": 1471,
                "db_id": "cards",
                "question": "Ratio of EUR to CZK payers?",
                "evidence": "ratio = count(EUR) / count(CZK)",
                "SQL": "SELECT 1.0",
                "difficulty": "simple",
            },
            {
                "question_id": 1472,
                "db_id": "cards",
                "question": "How many?",
                "evidence": "",
                "SQL": "SELECT count(*) FROM customers",
                "difficulty": "challenging",
            },
        ],
    )
    write_json(
        root / "dev_tables.json",
        [
            {
                "db_id": "cards",
                "table_names_original": ["customers"],
                "column_names_original": [[-1, "*"], [0, "CustomerID"]],
                "column_types": ["text", "integer"],
                "primary_keys": [1],
                "foreign_keys": [],
            },
        ],
    )
    assert detect_format(str(root / "mini_dev_sqlite.json"), ReadOptions()) == "bird"
    assert detect_format(str(root), ReadOptions()) == "bird"
    first, second = read(root / "mini_dev_sqlite.json")
    assert (first.id, first.evidence, first.complexity, first.sql) == (
        "1471",
        "ratio = count(EUR) / count(CZK)",
        "simple",
        "SELECT 1.0",
    )
    assert (second.id, second.evidence, second.complexity, second.db_path) == ("1472", None, "challenging", None)
    assert first.schema == "CREATE TABLE customers (\n  CustomerID INTEGER PRIMARY KEY\n);"
    # With its database in dev_databases/ the row becomes executable.
    db = make_db(
        root / "dev_databases" / "cards" / "cards.sqlite", "CREATE TABLE customers (CustomerID INTEGER PRIMARY KEY);"
    )
    assert read(root)[0].db_path == str(db)


# ------------------------------------------------------------------------------------------------ hf


def test_save_to_disk_dataset_dict(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    rows = {
        "question": [r["question"] for r in CREATE_CONTEXT_ROWS],
        "context": [r["context"] for r in CREATE_CONTEXT_ROWS],
        "answer": [r["answer"] for r in CREATE_CONTEXT_ROWS],
    }
    folder = tmp_path / "saved"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rows),
            "validation": datasets.Dataset.from_dict({k: v[:1] for k, v in rows.items()}),
        }
    ).save_to_disk(str(folder))
    assert detect_format(str(folder), ReadOptions()) == "hf"
    train = read(folder, split="train")
    assert [e.id for e in train] == ["saved-train-0", "saved-train-1"]
    assert train[1].schema.count("CREATE TABLE") == 2
    assert len(read(folder, split="dev")) == 1  # 'dev' finds the 'validation' split
    assert len(read(folder, split="train", hf_split="validation")) == 1  # data.hf_split wins
    with pytest.raises(DataError, match=r"saved: holds splits train, validation; set data.hf_split"):
        read(folder)
    with pytest.raises(DataError, match=r"saved: no split 'test' \(splits: train, validation\)"):
        read(folder, split="test")


def test_save_to_disk_dataset_chat_rows(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    messages = [
        [
            {"role": "user", "content": "How many singers?"},
            {"role": "assistant", "content": "SELECT count(*) FROM singer"},
        ]
    ]
    datasets.Dataset.from_dict({"messages": messages}).save_to_disk(str(tmp_path / "chat_ds"))
    [example] = read(tmp_path / "chat_ds")
    assert (example.question, example.sql, example.id) == (
        "How many singers?",
        "SELECT count(*) FROM singer",
        "chat_ds-0",
    )


def test_parquet_and_arrow(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    dataset = datasets.Dataset.from_dict(
        {"input_text": ["How many?", "Names?"], "sql": ["SELECT 1", "SELECT name FROM t"]}
    )
    dataset.to_parquet(str(tmp_path / "rows.parquet"))
    assert detect_format(str(tmp_path / "rows.parquet"), ReadOptions()) == "hf"
    examples = read(tmp_path / "rows.parquet")
    assert [(e.id, e.question, e.sql) for e in examples] == [
        ("rows-0", "How many?", "SELECT 1"),
        ("rows-1", "Names?", "SELECT name FROM t"),
    ]
    dataset.save_to_disk(str(tmp_path / "arrow_ds"))
    arrow_file = next((tmp_path / "arrow_ds").glob("*.arrow"))
    assert [e.sql for e in read(arrow_file)] == ["SELECT 1", "SELECT name FROM t"]


def test_hf_spider_rows_use_db_dir(tmp_path: Path) -> None:
    pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    db = make_db(tmp_path / "dbs" / "music" / "music.sqlite", SINGER_DDL)
    table = pa.table({"db_id": ["music"], "question": ["How many singers?"], "query": ["SELECT count(*) FROM singer"]})
    pq.write_table(table, tmp_path / "spider_rows.parquet")
    [example] = read(tmp_path / "spider_rows.parquet", db_dir=str(tmp_path / "dbs"))
    assert (example.db_path, example.schema) == (str(db), schema_text(db))
    with pytest.raises(DataError, match=r"db_id 'music': no database \(data.db_dir is unset\)"):
        read(tmp_path / "spider_rows.parquet")


def test_hub_id_errors_are_one_line(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'owner/name' on the Hub\n(long traceback text)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    assert detect_format("owner/name", ReadOptions()) == "hf"
    with pytest.raises(
        DataError,
        match=r"^owner/name: cannot load from the Hugging Face hub \(ConnectionError: "
        r"Couldn't reach 'owner/name' on the Hub\); check the id",
    ) as info:
        read_examples("owner/name", ReadOptions(), split="train")
    assert "\n" not in str(info.value)


def test_hub_id_maps_rows_like_files(monkeypatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load(name, config, split):
        calls.append((name, config, split))
        return datasets.Dataset.from_list(CREATE_CONTEXT_ROWS)

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    examples = read("b-mc2/sql-create-context", split="train", hf_config="default")
    assert calls == [("b-mc2/sql-create-context", "default", "train")]
    assert [e.id for e in examples] == ["sql-create-context-train-0", "sql-create-context-train-1"]
    assert examples[0].schema == "CREATE TABLE head (age INTEGER);"


# ------------------------------------------------------------------------------------------- bundled


@pytest.fixture
def fake_bundled(tmp_path: Path, monkeypatch):
    """A stand-in for text2sql.data.bundled with the same API and layout."""
    import text2sql.data

    databases = tmp_path / "bundled" / "databases"
    db = make_db(databases / "music" / "music.sqlite", SINGER_DDL)
    splits = {}
    for split in ("train", "validation", "test"):
        splits[split] = write_jsonl(
            tmp_path / "bundled" / f"{split}.jsonl",
            [
                {
                    "id": f"{split}-music-0",
                    "db_id": "music",
                    "question": "How many singers?",
                    "sql": "SELECT count(*) FROM singer",
                    "sql_complexity": "aggregation",
                },
            ],
        )
    module = types.ModuleType("text2sql.data.bundled")
    module.SPLITS = ("train", "validation", "test")
    module.database_dir = lambda: databases
    module.db_ids = lambda: ["music"]
    module.db_path = lambda db_id: databases / db_id / f"{db_id}.sqlite"
    module.split_path = lambda split: splits[split]
    monkeypatch.setitem(sys.modules, "text2sql.data.bundled", module)
    monkeypatch.setattr(text2sql.data, "bundled", module, raising=False)
    return db


def test_bundled_reader(fake_bundled: Path) -> None:
    assert detect_format("bundled", ReadOptions()) == "bundled"
    [example] = read("bundled", split="validation")
    assert (example.id, example.db_path, example.complexity) == ("validation-music-0", str(fake_bundled), "aggregation")
    assert example.schema == schema_text(fake_bundled)
    assert read("bundled")[0].id == "train-music-0"  # no split: train
    with pytest.raises(DataError, match=r"bundled: no split 'eval'; use one of: train, validation, test"):
        read("bundled", split="eval")


def test_real_bundled_dataset() -> None:
    bundled = pytest.importorskip("text2sql.data.bundled")
    if not hasattr(bundled, "split_path"):
        pytest.skip("text2sql.data.bundled is not written yet")
    stats = ReadStats()
    examples = read("bundled", stats, split="train")
    assert examples and stats.without_database == 0 and stats.total_dropped == 0
    for example in examples:
        assert example.db_path and example.schema.startswith("CREATE TABLE")
        sqlite3.connect(f"file:{example.db_path}?mode=ro", uri=True).execute(example.sql).fetchall()


# ---------------------------------------------------------------------------------- format detection


def test_detection_by_fields_and_explicit_override(tmp_path: Path) -> None:
    flat = write_jsonl(tmp_path / "flat.jsonl", [{"input_text": "How many?", "sql": "SELECT 1"}])
    assert detect_format(str(flat), ReadOptions()) == "csv"
    assert read(flat)[0].sql == "SELECT 1"
    chat = write_jsonl(tmp_path / "chat.json", [{"messages": []}])  # JSON Lines under a .json name
    assert detect_format(str(chat), ReadOptions()) == "chat"
    spider_like = write_jsonl(tmp_path / "rows.jsonl", [{"db_id": "x", "question": "q", "sql": "SELECT 1"}])
    assert detect_format(str(spider_like), ReadOptions()) == "spider"
    # data.format overrides detection: the same fields read as flat records with configured columns.
    [example] = read(spider_like, format="csv", question_column="question")
    assert (example.question, example.db_id, example.db_path) == ("q", "x", None)


def test_undetectable_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"prompt": "p", "completion": "c"}])
    with pytest.raises(
        DataError,
        match=r"odd.jsonl: cannot tell the format from the fields \(completion, prompt\); "
        r"set data.format to one of: csv, chat",
    ):
        read(path)


# -------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope.csv: file not found; check the path"):
        read(tmp_path / "nope.csv")
    # A missing relative path that looks like owner/name is still a missing file, not a hub id.
    with pytest.raises(DataError, match=r"^data/train.csv: file not found"):
        read("data/train.csv")


def test_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"data.format 'xml' is unknown; use one of: auto, csv, chat, create_context, "
        r"spider, bird, hf, bundled",
    ):
        read_examples(tmp_path / "x.csv", ReadOptions(format="xml"))


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataError, match=r"data.txt: unknown file type '.txt'; use .csv, .jsonl, .json"):
        read(tmp_path / "data.txt")


def test_csv_without_sql_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "train.csv", ["question", "answer"], [["q", "a"]])
    with pytest.raises(DataError) as info:
        read(path, question_column="question")
    assert str(info.value) == (
        f"{path}: no 'sql' column (columns: question, answer); set data.sql_column to the column that holds the SQL"
    )


def test_csv_without_configured_complexity_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "t.csv", ["input_text", "sql"], [["q", "SELECT 1"]])
    with pytest.raises(DataError, match=r"no 'level' column \(columns: input_text, sql\); set data.complexity_column"):
        read(path, complexity_column="level")


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.json"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"{name}: the file is empty"):
        read(tmp_path / name, format="csv")


@pytest.mark.parametrize(
    "name, content",
    [
        ("header_only.csv", "input_text,sql\n"),
        ("blank.jsonl", "\n\n"),
        ("empty_array.json", "[]"),
    ],
)
def test_file_without_rows(tmp_path: Path, name: str, content: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=rf"{name}: holds no rows"):
        read(tmp_path / name, format="csv")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("input_text,sql\nWhere is Zürich?,SELECT 1\n".encode("latin-1"))
    with pytest.raises(
        DataError,
        match=r"latin1.csv: not UTF-8 text \(invalid byte at offset 25, line 2\); "
        r"re-encode it as UTF-8",
    ):
        read(path)
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"input_text": "ok", "sql": "SELECT 1"}\n{"input_text": "Z\xfcrich", "sql": "SELECT 2"}\n')
    with pytest.raises(DataError, match=r"latin1.jsonl: not UTF-8 text \(invalid byte at offset 57, line 2\)"):
        read(jsonl)


def test_malformed_jsonl_names_the_line_and_streams_until_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"input_text": "a", "sql": "SELECT 1"}\n{"input_text": "b", "sql": "SELECT 2"}\n{"input_text": "c",\n'
    )
    stream = read_examples(path, ReadOptions())
    assert [next(stream).sql, next(stream).sql] == ["SELECT 1", "SELECT 2"]
    with pytest.raises(
        DataError,
        match=r"bad.jsonl line 3: not valid JSON \(Expecting property name enclosed in double "
        r"quotes, column 20\); fix or remove that line",
    ):
        next(stream)


def test_malformed_json_array(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[\n {"question": "q", "context": "c", "answer": "a"},\n {"question": }\n]')
    with pytest.raises(DataError, match=r"bad.json line 3: not valid JSON \(Expecting value, column 15\)"):
        read(path)


def test_json_not_an_array_of_objects(tmp_path: Path) -> None:
    path = write_json(tmp_path / "strings.json", ["a", "b"])
    with pytest.raises(DataError, match=r"strings.json: item 0 of the array is str, expected a JSON object"):
        read(path)


def test_missing_field_for_explicit_format(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input_text": "q", "sql": "SELECT 1"}])
    with pytest.raises(
        DataError, match=r"rows.jsonl: no 'messages' field \(fields: input_text, sql\); set data.format"
    ):
        read(path, format="chat")


def test_hf_format_for_a_plain_file(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"input_text": "q", "sql": "SELECT 1"}])
    with pytest.raises(
        DataError, match=r"rows.jsonl: data.format hf reads .parquet/.arrow files, save_to_disk folders"
    ):
        read(path, format="hf")


def test_not_a_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"neither a datasets.save_to_disk folder .* nor a Spider/BIRD folder"):
        read(tmp_path)


# ------------------------------------------------------------------------------------------ real data


def test_real_spider_dev(shared_datasets: Path) -> None:
    stats = ReadStats()
    examples = read(shared_datasets / "spider_en" / "dev.json", stats)
    assert len(examples) == 1034 and stats.records == 1034 and stats.total_dropped == 0
    assert stats.without_database == 1034  # the dev databases are not shipped
    assert all(e.db_path is None and e.schema.startswith("CREATE TABLE") for e in examples)
    first = examples[0]
    assert (first.id, first.db_id, first.question, first.sql) == (
        "dev-0",
        "concert_singer",
        "How many singers do we have?",
        "SELECT count(*) FROM singer",
    )
    assert "CREATE TABLE singer (\n  Singer_ID NUMBER PRIMARY KEY," in first.schema
    assert len({e.id for e in examples}) == 1034


def test_real_department_store_as_spider_folder(shared_datasets: Path, tmp_path: Path) -> None:
    source = shared_datasets / "spider_en" / "database" / "department_store"
    root = tmp_path / "spider"
    (root / "database" / "department_store").mkdir(parents=True)
    db = root / "database" / "department_store" / "department_store.sqlite"
    shutil.copy(source / "department_store.sqlite", db)
    lines = (source / "train_gold_department_store.sql").read_text().splitlines()
    rows = []
    for i, line in enumerate(text for text in lines if text.strip()):
        sql, db_id = line.rsplit("\t", 1)
        rows.append({"db_id": db_id, "question": f"question {i}", "query": sql})
    write_json(root / "dev.json", rows)
    stats = ReadStats()
    examples = read(root, stats)  # the folder: dev.json, no tables.json needed since the database exists
    assert len(examples) == 88 and stats.without_database == 0
    expected_schema = schema_text(db)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    for example in examples:
        assert example.db_path == str(db) and example.schema == expected_schema
        conn.execute(example.sql).fetchall()  # every gold query runs on the database it points at


def test_real_bird_mini_dev(shared_datasets: Path) -> None:
    stats = ReadStats()
    examples = read(shared_datasets / "bird_minidev" / "mini_dev_sqlite.json", stats)
    assert len(examples) == 500 and stats.without_database == 500
    assert {e.complexity for e in examples} == {"simple", "moderate", "challenging"}
    assert sum(e.evidence is not None for e in examples) > 450
    first = examples[0]
    assert (first.id, first.db_id, first.complexity) == ("1471", "debit_card_specializing", "simple")
    assert first.evidence.startswith("ratio of customers who pay in EUR")
    assert first.schema.startswith("CREATE TABLE customers (")
