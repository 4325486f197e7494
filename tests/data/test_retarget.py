"""Data for another engine: the bundled databases copied to PostgreSQL (a real server) and DuckDB,
the gold SQL of the test split transpiled and checked on both, and gold-as-prediction scored there."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import sqlglot
from datasets import load_from_disk

from stage_support import prepare_with_model
from text2sql.config import load_config
from text2sql.data import bundled
from text2sql.data.readers import ReadOptions, ReadStats, read_examples
from text2sql.data.retarget import differs_on, fails_on, retarget
from text2sql.sql.copy import copy_database
from text2sql.sql.match import execute_pairs


@pytest.fixture(scope="module", params=["postgres", "duckdb"])
def bundled_copy(request, tmp_path_factory) -> tuple[str, str]:
    """(dialect, target_db pattern) of the bundled databases copied to that engine."""
    if request.param == "postgres":
        server = request.getfixturevalue("postgres_server")
        pattern = server.url("postgres", schema="bundled_{db_id}")
    else:
        pattern = str(tmp_path_factory.mktemp("duckdb") / "{db_id}.duckdb")
    for db_id in bundled.db_ids():
        copy_database(bundled.db_path(db_id), pattern.replace("{db_id}", db_id), force=True, show_progress=False)
        if request.param == "postgres":  # model SQL runs only as a role that may read
            server.grant_reader("postgres", f"bundled_{db_id}")
    if request.param == "postgres":
        pattern = server.url("postgres", user="reader", schema="bundled_{db_id}")
    return request.param, pattern


def test_the_test_split_holds_on_each_engine_and_scores_one(bundled_copy):
    dialect, pattern = bundled_copy
    opts = ReadOptions(format="bundled")
    stats = ReadStats()
    kept = list(
        retarget(read_examples("bundled", opts, split="test", stats=stats), dialect, pattern, opts, stats, timeout=5)
    )
    total = len(kept) + stats.total_dropped
    assert total > 300 and len(kept) / total >= 0.95, dict(stats.dropped)
    assert all(ex.db_path.startswith(pattern.split("{db_id}")[0]) for ex in kept)
    assert all(ex.extra["source_sql"] and ex.extra["source_db"].endswith(".sqlite") for ex in kept)
    # Gold as the prediction, written differently (so that it runs on its own), on the target engine.
    predictions = [sqlglot.transpile(ex.sql, read=dialect, write=dialect, pretty=True)[0] for ex in kept]
    assert sum(p != ex.sql for p, ex in zip(predictions, kept)) > len(kept) // 2
    outcomes = execute_pairs(kept, predictions)
    assert [o[0] for o in outcomes] == [1.0] * len(kept), [o for o in outcomes if o[0] != 1.0][:3]


def test_pairs_are_kept_only_when_the_rows_match(bundled_copy):
    dialect, pattern = bundled_copy
    opts = ReadOptions(format="bundled")
    ex = next(iter(read_examples("bundled", opts, split="test")))
    same = replace(ex, sql="SELECT 1 WHERE 'a' LIKE 'A'")  # LIKE ignores case in SQLite: ILIKE keeps that
    differs = replace(ex, sql="SELECT 0.1 + 0.2 = 0.3")  # floats in SQLite, exact decimals on the others
    fails = replace(ex, sql="SELECT total(1)")  # SQLite's own aggregate
    stats = ReadStats()
    kept = list(retarget([same, differs, fails], dialect, pattern, opts, stats, timeout=5))
    assert [k.extra["source_sql"] for k in kept] == [same.sql]
    assert kept[0].sql == "SELECT 1 WHERE 'a' ILIKE 'A'"
    assert stats.dropped == {differs_on(dialect): 1, fails_on(dialect): 1}


@pytest.mark.parametrize("bundled_copy", ["duckdb"], indirect=True)
def test_a_follow_up_shows_its_earlier_turns_in_the_target_dialect(bundled_copy):
    dialect, pattern = bundled_copy
    opts = ReadOptions(format="bundled")
    ex = next(iter(read_examples("bundled", opts, split="test")))
    follow_up = replace(ex, history=[("Is 'a' like 'A'?", "SELECT 1 WHERE 'a' LIKE 'A'")])
    unreadable = replace(ex, history=[("?", "SELECT FROM WHERE (")])
    stats = ReadStats()
    kept = list(retarget([follow_up, unreadable], dialect, pattern, opts, stats, timeout=5))
    assert [k.history for k in kept] == [[("Is 'a' like 'A'?", "SELECT 1 WHERE 'a' ILIKE 'A'")]]
    assert stats.total_dropped == 1


@pytest.mark.parametrize("bundled_copy", ["postgres"], indirect=True)  # DuckDB's rows: the split test above
def test_prepare_for_a_target_writes_its_sql_schema_and_report(bundled_copy, tmp_path):
    dialect, pattern = bundled_copy
    cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            "data.schema_format=compact",
            f"data.target_dialect={dialect}",
            f"data.target_db={pattern}",
        ],
    )
    result = prepare_with_model(cfg)
    report = json.loads((result.path / "prepare_report.json").read_text())
    test = load_from_disk(str(result.path / "test"))
    assert all(p.startswith(pattern.split("{db_id}")[0]) for p in test["db_path"])
    name = {"postgres": "PostgreSQL", "duckdb": "DuckDB"}[dialect]
    assert f"one {name} query" in report["prompt"]["system"]
    assert report["rows_out"]["test"] >= 0.95 * report["rows_in"]["test"]
