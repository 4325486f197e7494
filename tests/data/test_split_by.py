"""`data.split_by=db_id`: validation and test hold whole databases that train never sees."""

import csv

import pytest
from datasets import Dataset, load_from_disk

from stage_support import prepare_with_model
from text2sql.config import load_config
from text2sql.data.prepare import _split_off
from text2sql.errors import DataError

# Rows per database: uneven, as real collections are.
SIZES = {"shop": 40, "school": 25, "flights": 30, "library": 20, "hospital": 35, "music": 15, "games": 35}


def rows(sizes=SIZES):
    return [
        {"db_id": db, "question": f"How many rows in {db} have id {i}?", "sql": f"SELECT {i}"}
        for db, n in sizes.items()
        for i in range(n)
    ]


def config(tmp_path, *overrides):
    return load_config(None, [f"output_dir={tmp_path / 'run'}", "model.name_or_path=tiny:gpt2", *overrides])


def by_db(tmp_path, data, *overrides, validation=True, test=True):
    """`_split_off` of `data` (rows as dicts) with data.split_by=db_id."""
    cfg = config(tmp_path, "data.split_by=db_id", *overrides)
    return _split_off(Dataset.from_list(data), cfg, validation, test)


def db_ids(ds):
    return set(ds["db_id"])


def test_held_out_splits_hold_whole_databases(tmp_path):
    parts = by_db(tmp_path, rows())
    train, validation, test = db_ids(parts["train"]), db_ids(parts["validation"]), db_ids(parts["test"])
    assert train and validation and test
    assert not train & validation and not train & test and not validation & test
    assert train | validation | test == set(SIZES)
    assert sum(len(p) for p in parts.values()) == sum(SIZES.values())
    # each held-out share reaches its 10% with whole databases, and takes no more than it needs
    for part in (parts["validation"], parts["test"]):
        assert 0.1 * 200 <= len(part) < 0.1 * 200 + max(SIZES.values())


def test_db_split_keeps_the_row_order_and_is_seeded(tmp_path):
    data = rows()
    first, again = by_db(tmp_path, data), by_db(tmp_path, data)
    for name in ("train", "validation", "test"):
        assert first[name]["question"] == again[name]["question"]
        order = [r["question"] for r in data if r["db_id"] in db_ids(first[name])]
        assert first[name]["question"] == order
    picks = {frozenset(db_ids(by_db(tmp_path, data, f"data.split_seed={seed}")["test"])) for seed in range(6)}
    assert len(picks) > 1


def test_rows_without_db_id_are_one_group(tmp_path):
    data = rows({"shop": 30, "school": 30}) + [
        {"db_id": None, "question": f"q{i}?", "sql": "SELECT 1"} for i in range(30)
    ]
    parts = by_db(tmp_path, data, validation=False)
    groups = [db_ids(parts["train"]), db_ids(parts["test"])]
    assert not groups[0] & groups[1]
    assert groups[0] | groups[1] == {"shop", "school", None}


def test_large_share_leaves_a_database_in_train(tmp_path):
    parts = by_db(tmp_path, rows({"a": 5, "b": 5}), "data.test_size=0.9", validation=False)
    assert len(db_ids(parts["train"])) == 1 and len(db_ids(parts["test"])) == 1


def test_one_database_is_refused_with_the_fix(tmp_path):
    with pytest.raises(DataError, match="split_by=db_id needs at least two databases.*set data.split_by=row"):
        by_db(tmp_path, rows({"shop": 50}))
    no_ids = [{"db_id": None, "question": f"q{i}?", "sql": "SELECT 1"} for i in range(50)]
    with pytest.raises(DataError, match=r"all 50 training row\(s\) have no db_id"):
        by_db(tmp_path, no_ids)


def test_row_split_is_the_default(tmp_path):
    assert config(tmp_path).data.split_by == "row"
    parts = _split_off(Dataset.from_list(rows()), config(tmp_path), True, True)
    assert db_ids(parts["train"]) & db_ids(parts["test"])


def test_prepare_splits_a_csv_by_database(tmp_path):
    src = tmp_path / "train.csv"
    with open(src, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(("db_id", "input_text", "sql"))
        w.writerows((r["db_id"], r["question"], r["sql"]) for r in rows())
    result = prepare_with_model(config(tmp_path, f"data.train={src}", "data.split_by=db_id"))
    ds = load_from_disk(str(result.path))
    train = db_ids(ds["train"])
    assert not train & db_ids(ds["validation"]) and not train & db_ids(ds["test"])
    assert result.report["rows_out"]["train"] == len(ds["train"]) > 100
