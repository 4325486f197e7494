"""`data.db`: one SQLite file for every row that names none. A CSV plus one database evaluates with
execution accuracy using only what the README says."""

import csv
import json
import sqlite3

import pytest

from cli_support import assert_one_line_error, run_cli
from text2sql.config import load_config
from text2sql.data.readers import ReadOptions, read_examples
from text2sql.data.schema import schema_text

ROWS = [
    ("How many orders are there?", "SELECT COUNT(*) FROM orders"),
    ("Which cities have orders?", "SELECT DISTINCT city FROM orders ORDER BY city"),
    ("What is the largest order total?", "SELECT MAX(total) FROM orders"),
]


@pytest.fixture
def shop(tmp_path):
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, city TEXT, total REAL);"
            "INSERT INTO orders VALUES (1, 'Paris', 10), (2, 'Rome', 20), (3, 'Paris', 5);"
        )
    data = tmp_path / "questions.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("input_text", "sql"), *ROWS])
    return data, db


def test_every_row_gets_the_database_and_its_schema(shop):
    data, db = shop
    examples = list(read_examples(data, ReadOptions(db=str(db), schema_format="compact")))
    assert len(examples) == 3
    assert {e.db_path for e in examples} == {str(db.resolve())} and {e.db_id for e in examples} == {"shop"}
    assert all(e.schema == schema_text(db, "compact") for e in examples)


def test_a_csv_and_one_database_evaluate_by_execution(capsys, shop, tmp_path):
    data, db = shop
    gold = tmp_path / "gold.sql"
    gold.write_text("\n".join(sql for _, sql in ROWS[:2]) + "\nSELECT MIN(total) FROM orders\n")
    code, out, err = run_cli(
        capsys,
        "evaluate",
        "--predictions",
        gold,
        "--data",
        data,
        "--db",
        db,
        "--output",
        tmp_path / "eval",
        "--num-examples",
        "0",
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_execution_scored"] == 3 and metrics["execution_accuracy"] == pytest.approx(2 / 3)
    assert metrics["error_counts"] == {"wrong_result": 1}


def test_a_run_config_with_data_db_prepares_executable_rows(shop, tmp_path):
    from stage_support import prepare_with_model

    data, db = shop
    cfg = load_config(
        None,
        [
            f"data.train={data}",
            f"data.db={db}",
            f"output_dir={tmp_path / 'run'}",
            "data.validation_size=0",
            "data.test_size=0",
        ],
    )
    report = prepare_with_model(cfg).report
    assert report["rows_out"]["train"] == 3 and report["not_executable"]["train"] == 0


def test_validate_explains_a_db_dir_without_db_ids(capsys, shop, tmp_path):
    data, db = shop
    (tmp_path / "dbs").mkdir()
    code, _, err = run_cli(capsys, "validate", f"data.train={data}", f"data.db_dir={tmp_path / 'dbs'}")
    assert_one_line_error(code, err, "data.db_dir is set but no row", "has a db_id", "data.db=")
    code, _, err = run_cli(capsys, "validate", f"data.train={data}", f"data.db={tmp_path / 'none.sqlite'}")
    assert_one_line_error(code, err, "data.db: no database file at")
    code, out, err = run_cli(capsys, "validate", f"data.train={data}", f"data.db={db}")
    assert code == 0, err
    assert "3/3" in out  # every gold query ran on the database
