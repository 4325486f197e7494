"""The command line: every verb listed, bad input → one line, non-zero exit, no traceback."""

import json
import subprocess
import sys

import pytest

from cli_support import assert_one_line_error, run_cli
from repo import ROOT
from text2sql.cli import main

VERBS = ["prepare", "validate", "init-model", "train", "merge", "evaluate", "run", "serve", "predict", "compare"]


def test_help_lists_every_verb():
    out = subprocess.run(
        [sys.executable, "-m", "text2sql", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for verb in VERBS:
        assert verb in out


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "text2sql",
            "prepare",
            f"data.train={tmp_path / 'missing.csv'}",
            f"output_dir={tmp_path / 'o'}",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "missing.csv" in proc.stderr


@pytest.fixture
def out(tmp_path):
    return f"output_dir={tmp_path / 'run'}"


def test_missing_file(capsys, tmp_path, out):
    code, _, err = run_cli(capsys, "prepare", f"data.train={tmp_path / 'nope.csv'}", out)
    assert_one_line_error(code, err, "nope.csv")


def test_unknown_format(capsys, tmp_path, out):
    src = tmp_path / "data.xml"
    src.write_text("<rows/>")
    code, _, err = run_cli(capsys, "prepare", f"data.train={src}", out)
    assert_one_line_error(code, err, "data.xml", "data.format")


def test_csv_without_sql_column(capsys, tmp_path, out):
    src = tmp_path / "t.csv"
    src.write_text("input_text,query\nq,SELECT 1\n")
    code, _, err = run_cli(capsys, "prepare", f"data.train={src}", out)
    assert_one_line_error(code, err, "sql", "data.sql_column")


def test_empty_file(capsys, tmp_path, out):
    src = tmp_path / "t.csv"
    src.write_text("")
    code, _, err = run_cli(capsys, "prepare", f"data.train={src}", out)
    assert_one_line_error(code, err, "t.csv")


def test_not_utf8(capsys, tmp_path, out):
    src = tmp_path / "t.csv"
    src.write_bytes("input_text,sql\ncaf\xe9?,SELECT 1\n".encode("latin-1"))
    code, _, err = run_cli(capsys, "prepare", f"data.train={src}", out)
    assert_one_line_error(code, err, "UTF-8")


def test_malformed_jsonl_names_the_line(capsys, tmp_path, out):
    src = tmp_path / "t.jsonl"
    good = json.dumps({"question": "q", "context": "CREATE TABLE t (a)", "answer": "SELECT a FROM t"})
    src.write_text(f"{good}\n{good}\n{{broken\n")
    code, _, err = run_cli(capsys, "prepare", f"data.train={src}", out)
    assert_one_line_error(code, err, "line 3")


def test_spider_folder_without_tables_json(capsys, tmp_path, out):
    folder = tmp_path / "spider"
    folder.mkdir()
    (folder / "dev.json").write_text(json.dumps([{"db_id": "x", "question": "q", "query": "SELECT 1"}]))
    code, _, err = run_cli(capsys, "prepare", f"data.train={folder / 'dev.json'}", "data.format=spider", out)
    assert_one_line_error(code, err, "tables.json")


def test_db_id_without_database_or_schema(capsys, tmp_path, out):
    folder = tmp_path / "spider"
    folder.mkdir()
    (folder / "dev.json").write_text(json.dumps([{"db_id": "ghost", "question": "q", "query": "SELECT 1"}]))
    (folder / "tables.json").write_text("[]")
    code, _, err = run_cli(capsys, "prepare", f"data.train={folder / 'dev.json'}", out)
    assert_one_line_error(code, err, "ghost")


def test_unknown_config_key(capsys, out):
    code, _, err = run_cli(capsys, "validate", "data.trian=x.csv", out)
    assert_one_line_error(code, err, "did you mean 'data.train'")


def test_wrong_type(capsys, out):
    code, _, err = run_cli(capsys, "validate", "training.num_train_epochs=many", out)
    assert_one_line_error(code, err, "training.num_train_epochs")


def test_different_run_needs_force(capsys, tmp_path):
    src = tmp_path / "t.csv"
    src.write_text("input_text,sql\n" + "".join(f"question {i}?,SELECT {i}\n" for i in range(30)))
    args = ["prepare", f"data.train={src}", f"output_dir={tmp_path / 'run'}", "model.name_or_path=tiny:gpt2"]
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *args, "data.max_length=64")
    assert_one_line_error(code, err, "different run", "--force")
    code, out_text, _ = run_cli(capsys, *args, "data.max_length=64", "--force")
    assert code == 0 and "written" in out_text


def test_debug_shows_the_traceback(tmp_path):
    from text2sql.errors import Text2SQLError

    with pytest.raises(Text2SQLError):
        main(["prepare", "--debug", f"data.train={tmp_path / 'nope.csv'}"])


def test_config_prints_the_resolved_config_and_every_key(capsys, tmp_path):
    import yaml

    from text2sql.config import load_config

    root = ROOT
    code, out, _ = run_cli(capsys, "config", root / "configs/quickstart.yaml", "training.max_steps=7", "finetune.r=4")
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["training"]["max_steps"] == 7 and printed["finetune"]["r"] == 4
    assert printed["training"]["adam_beta2"] == 0.95  # from the file
    (tmp_path / "c.yaml").write_text(out)
    assert load_config(tmp_path / "c.yaml") == load_config(
        root / "configs/quickstart.yaml", ["training.max_steps=7", "finetune.r=4"]
    )

    code, out, _ = run_cli(capsys, "config", "--keys")
    keys = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and "data.schema_format" in keys and "tuning.search_space" in keys
    assert keys["training.learning_rate"].split()[1] == "0.0002"
    assert "lora" not in keys and "training" not in keys  # sections are expanded, not printed whole

    code, _, err = run_cli(capsys, "config", "training.max_stepz=1")
    assert_one_line_error(code, err, "did you mean 'training.max_steps'")


def test_validate_bundled(capsys):
    code, out_text, _ = run_cli(capsys, "validate", "--gold-limit", "50")
    assert code == 0
    assert "train" in out_text and "50/50" in out_text


def test_validate_reports_failing_gold(capsys, tmp_path):
    import sqlite3

    db = tmp_path / "spider" / "database" / "shop" / "shop.sqlite"
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'pen')")
    rows = [
        {"db_id": "shop", "question": "names?", "query": "SELECT name FROM items"},
        {"db_id": "shop", "question": "bad?", "query": "SELECT nme FROM items"},
    ]
    (tmp_path / "spider" / "dev.json").write_text(json.dumps(rows))
    tables = [
        {
            "db_id": "shop",
            "table_names_original": ["items"],
            "table_names": ["items"],
            "column_names_original": [[-1, "*"], [0, "id"], [0, "name"]],
            "column_names": [[-1, "*"], [0, "id"], [0, "name"]],
            "column_types": ["text", "number", "text"],
            "primary_keys": [1],
            "foreign_keys": [],
        }
    ]
    (tmp_path / "spider" / "tables.json").write_text(json.dumps(tables))
    code, _, err = run_cli(capsys, "validate", f"data.train={tmp_path / 'spider' / 'dev.json'}")
    assert_one_line_error(code, err, "1 of 2 gold SQL", "nme")


def test_init_model_builds_and_refuses_overwrite(capsys, tmp_path):
    target = tmp_path / "m"
    code, out_text, _ = run_cli(capsys, "init-model", "--arch", "gpt2", "--output", str(target))
    assert code == 0 and (target / "config.json").is_file()
    code, _, err = run_cli(capsys, "init-model", "--arch", "gpt2", "--output", str(target))
    assert_one_line_error(code, err, "--force")
