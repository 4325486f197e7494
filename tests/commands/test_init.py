"""`text2sql init`: a commented config for the user's data, database and model, that loads and validates."""

import csv
import sqlite3

import pytest
import torch

from cli_support import assert_one_line_error, run_cli
from text2sql.config import load_config


@pytest.fixture
def shop(tmp_path):
    """A user's own data: a CSV of questions and SQL, and one SQLite database they run on."""
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, city TEXT, total REAL);"
            "INSERT INTO orders VALUES (1, 'Paris', 10), (2, 'Rome', 20), (3, 'Paris', 5);"
        )
    rows = [
        ("How many orders are there?", "SELECT COUNT(*) FROM orders"),
        ("Which cities have orders?", "SELECT DISTINCT city FROM orders"),
    ] * 10
    data = tmp_path / "train.csv"
    with data.open("w", newline="") as f:
        csv.writer(f).writerows([("input_text", "sql"), *rows])
    return data, db


def test_init_writes_a_config_for_a_pretrained_model(capsys, tmp_path, shop):
    data, db = shop
    out = tmp_path / "shop.yaml"
    model = "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    code, stdout, err = run_cli(
        capsys, "init", "--data", data, "--db", db, "--model", model, "--output", out, "--device", "gpu"
    )
    assert code == 0, err
    assert f"text2sql run {out}" in stdout
    text = out.read_text()
    assert text.startswith(f"# text2sql run {out}")  # headed by the command that runs it, as presets are
    cfg = load_config(out)
    assert cfg.data.db == str(db) and cfg.data.train == str(data)
    assert cfg.finetune.method == "lora" and cfg.data.schema_format == "sql"  # a pretrained model's settings
    assert cfg.evaluation.max_new_tokens == 256 and cfg.data.max_length == 2048 and cfg.evaluation.baseline
    # The same for a CPU: compact schemas, one epoch, the loss on a sample; the model cannot be
    # probed offline, which is said, and the config is written all the same.
    cpu = tmp_path / "cpu.yaml"
    code, stdout, err = run_cli(
        capsys, "init", "--data", data, "--db", db, "--model", model, "--output", cpu, "--device", "cpu"
    )
    assert code == 0, err
    cfg = load_config(cpu)
    assert cfg.data.schema_format == "compact" and cfg.training["num_train_epochs"] == 1
    assert cfg.evaluation.loss_samples == 32 and cfg.finetune.method == "lora"
    if not torch.cuda.is_available():
        assert "no estimate: the probe of Qwen/Qwen2.5-Coder-0.5B-Instruct" in stdout


def test_init_for_a_tiny_model_trains_it_fully_and_validates(capsys, tmp_path, shop):
    data, db = shop
    out = tmp_path / "tiny.yaml"
    assert run_cli(capsys, "init", "--data", data, "--db", db, "--model", "tiny:llama", "--output", out)[0] == 0
    cfg = load_config(out)
    assert cfg.finetune.method == "full" and cfg.data.schema_format == "compact"
    code, stdout, err = run_cli(capsys, "validate", out)
    assert code == 0, err
    assert "config, data and databases are valid" in stdout and "20/20" in stdout  # every gold query ran


def test_init_refuses_to_overwrite_and_bad_paths(capsys, tmp_path, shop):
    data, db = shop
    out = tmp_path / "x.yaml"
    out.write_text("mine\n")
    code, _, err = run_cli(capsys, "init", "--data", data, "--model", "tiny:llama", "--output", out)
    assert_one_line_error(code, err, "already exists", "--force")
    assert out.read_text() == "mine\n"
    code, _, err = run_cli(
        capsys, "init", "--data", tmp_path / "no.csv", "--model", "tiny:llama", "--output", tmp_path / "y.yaml"
    )
    assert_one_line_error(code, err, "no.csv")
    code, _, err = run_cli(
        capsys,
        "init",
        "--data",
        data,
        "--db",
        tmp_path / "no.sqlite",
        "--model",
        "tiny:llama",
        "--output",
        tmp_path / "z.yaml",
    )
    assert_one_line_error(code, err, "--db", "no such file")
    assert not (tmp_path / "y.yaml").exists() and not (tmp_path / "z.yaml").exists()


@pytest.mark.parametrize("engine", ["postgres", "duckdb"])
def test_init_and_validate_on_a_server_or_duckdb_file(capsys, tmp_path, shop, engine, request):
    from text2sql.sql.copy import copy_database

    data, db = shop
    if engine == "postgres":
        server = request.getfixturevalue("postgres_server")
        copy_database(db, server.url("postgres", schema="init_shop"), force=True, show_progress=False)
        target = server.grant_reader("postgres", "init_shop")  # model SQL runs only as a role that may read
    else:
        target = str(tmp_path / "shop.duckdb")
        copy_database(db, target, force=True, show_progress=False)
    out = tmp_path / f"{engine}.yaml"
    assert run_cli(capsys, "init", "--data", data, "--db", target, "--model", "tiny:llama", "--output", out)[0] == 0
    assert load_config(out).data.db == target
    code, stdout, err = run_cli(capsys, "validate", out)
    assert code == 0, err
    assert "20/20" in stdout  # every gold query ran on the engine
    code, _, err = run_cli(
        capsys,
        "init",
        "--data",
        data,
        "--db",
        "postgresql://me:pw@host/x",
        "--model",
        "tiny:llama",
        "--output",
        tmp_path / "pw.yaml",
    )
    assert_one_line_error(code, err, "holds a password", "PGPASSWORD")
    assert not (tmp_path / "pw.yaml").exists()
