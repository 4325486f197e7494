"""`prepare`: streaming readers → tokenized, prompt-masked DatasetDict with a report."""

import csv
import json

import pytest
from datasets import load_from_disk

from stage_support import prepare_with_model
from text2sql.config import load_config
from text2sql.data.prompt import IGNORE_INDEX
from text2sql.errors import OutputExistsError


def write_csv(path, rows, header=("input_text", "sql", "sql_complexity")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def csv_rows(n):
    return [
        (
            f"How many employees are in department {i}?",
            f"SELECT COUNT(*) FROM employees WHERE dept = {i}",
            "aggregation",
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def bundled_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "qs"
    cfg = load_config(None, [f"output_dir={out}", "data.schema_format=compact"])
    return cfg, prepare_with_model(cfg)


def test_bundled_prepare_writes_memory_mapped_splits(bundled_run):
    cfg, result = bundled_run
    ds = load_from_disk(str(result.path))
    assert set(ds) == {"train", "validation", "test"}
    assert len(ds["train"]) > 2000 and len(ds["test"]) > 200
    # memory-mapped Arrow, not an in-memory copy
    assert ds["train"].cache_files
    row = ds["train"][0]
    p = row["prompt_length"]
    assert row["labels"][:p] == [IGNORE_INDEX] * p
    assert row["labels"][p:] == row["input_ids"][p:]
    # no fixed-length padding: lengths vary
    assert len(set(ds["train"]["length"])) > 5
    assert (result.path / "config.yaml").is_file()
    assert (result.path.parent / "config.yaml").is_file()
    report = json.loads((result.path / "prepare_report.json").read_text())
    assert report["rows_out"]["train"] == len(ds["train"])
    assert report["test_overlap"]["test"] == 0
    assert {"p50", "p90", "p99", "max"} <= set(report["token_lengths"]["train"]["total"])


def test_second_prepare_is_skipped_and_changed_config_refused(bundled_run):
    cfg, _ = bundled_run
    again = prepare_with_model(cfg)
    assert again.skipped
    changed = cfg.model_copy(deep=True)
    changed.data.max_length = 100
    with pytest.raises(OutputExistsError, match="different run.*data.max_length.*--force"):
        prepare_with_model(changed)


def test_csv_random_split_max_samples_and_drops(tmp_path):
    rows = csv_rows(200) + [csv_rows(1)[0]] * 3 + [("", "SELECT 1", "basic")]
    src = write_csv(tmp_path / "train.csv", rows)
    cfg = load_config(
        None,
        [
            f"data.train={src}",
            f"output_dir={tmp_path / 'run'}",
            "model.name_or_path=tiny:gpt2",
            "data.max_samples.test=10",
            "data.test_size=0.2",
            "data.validation_size=0.1",
        ],
    )
    result = prepare_with_model(cfg)
    rep = result.report
    assert rep["duplicates"]["train"] == 3
    assert rep["dropped"]["train"]["duplicate"] == 3
    assert rep["dropped"]["train"]["empty question"] == 1
    assert rep["rows_out"]["test"] == 10
    assert rep["dropped"]["test"]["max_samples"] == 30
    assert rep["rows_out"]["validation"] == 20
    assert rep["rows_out"]["train"] == 200 - 40 - 20
    ds = load_from_disk(str(result.path))
    assert set(ds["test"]["complexity"]) == {"aggregation"}
    # splits are disjoint
    assert not set(ds["train"]["question"]) & set(ds["test"]["question"])


def test_split_is_seeded(tmp_path):
    src = write_csv(tmp_path / "train.csv", csv_rows(100))
    questions = []
    for name in ("a", "b"):
        cfg = load_config(None, [f"data.train={src}", f"output_dir={tmp_path / name}", "model.name_or_path=tiny:gpt2"])
        questions.append(load_from_disk(str(prepare_with_model(cfg).path))["test"]["question"])
    assert questions[0] == questions[1]


def test_too_long_rows_dropped_and_counted_never_truncated(tmp_path):
    rows = csv_rows(50) + [("long one", "SELECT " + ", ".join(f"col{i}" for i in range(300)) + " FROM t", "basic")]
    src = write_csv(tmp_path / "train.csv", rows)
    test = write_csv(tmp_path / "test.csv", csv_rows(5))
    cfg = load_config(
        None,
        [
            f"data.train={src}",
            f"data.test={test}",
            "data.validation_size=0",
            f"output_dir={tmp_path / 'run'}",
            "model.name_or_path=tiny:gpt2",
            "data.max_length=120",
        ],
    )
    rep = prepare_with_model(cfg).report
    assert rep["dropped"]["train"]["too_long"] == 1
    assert rep["rows_out"]["train"] == 50
    assert rep["token_lengths"]["train"]["total"]["max"] <= 120


def test_test_rows_also_in_train_are_reported_and_optionally_dropped(tmp_path):
    src = write_csv(tmp_path / "train.csv", csv_rows(30))
    test = write_csv(tmp_path / "test.csv", csv_rows(30)[:4] + [("other?", "SELECT 2", "basic")])
    base = [f"data.train={src}", f"data.test={test}", "model.name_or_path=tiny:gpt2", "data.validation_size=0"]
    rep = prepare_with_model(load_config(None, base + [f"output_dir={tmp_path / 'a'}"])).report
    assert rep["test_overlap"]["test"] == 4 and rep["rows_out"]["test"] == 5
    rep = prepare_with_model(
        load_config(None, base + [f"output_dir={tmp_path / 'b'}", "data.drop_test_overlap=true"])
    ).report
    assert rep["rows_out"]["test"] == 1 and rep["dropped"]["test"]["also_in_train"] == 4


def test_seq2seq_lengths_use_source_and_target_limits(tmp_path):
    short = [(f"Show the number {i}", f"SELECT {i}", "basic") for i in range(40)]
    src = write_csv(tmp_path / "train.csv", csv_rows(40) + short)
    cfg = load_config(
        None,
        [
            f"data.train={src}",
            f"output_dir={tmp_path / 'run'}",
            "model.name_or_path=tiny:t5",
            "data.max_target_length=8",
        ],
    )
    rep = prepare_with_model(cfg).report
    assert rep["dropped"]["train"]["target_too_long"] > 0
    assert rep["prompt"]["kind"] == "seq2seq"


def test_edited_input_file_reprepares_without_force(tmp_path):
    src = write_csv(tmp_path / "train.csv", csv_rows(40))
    cfg = load_config(None, [f"data.train={src}", f"output_dir={tmp_path / 'run'}", "model.name_or_path=tiny:gpt2"])
    first = prepare_with_model(cfg)
    write_csv(src, csv_rows(60))
    second = prepare_with_model(cfg)
    assert not second.skipped
    assert sum(second.report["rows_out"].values()) > sum(first.report["rows_out"].values())


def test_non_run_output_dir_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    cfg = load_config(None, [f"output_dir={tmp_path}"])
    with pytest.raises(OutputExistsError, match="holds no text2sql run"):
        prepare_with_model(cfg)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
