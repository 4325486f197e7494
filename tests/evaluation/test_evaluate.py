"""`evaluate` end to end: gold SQL scored as predictions, real Spider data, predictions files, and
generation with tiny models."""

import csv
import json
import shutil
import sqlite3

import pytest

from text2sql.data import bundled
from text2sql.errors import ConfigError, DataError, MissingExtraError, OutputExistsError
from text2sql.evaluation.evaluate import RESULTS_COLUMNS, evaluate

SEED_000_COLUMNS = ["input_text", "expected_sql", "predicted_sql", "sql_complexity", "exact_match", "f1_score"]


def _gold_file(path, split):
    path.write_text("\n".join(r["sql"] for r in bundled.iter_rows(split)) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("split", ["test", "validation"])
def test_gold_as_predictions_scores_one_on_every_bundled_database(tmp_path, split):
    result = evaluate(
        "bundled", tmp_path / "out", predictions=_gold_file(tmp_path / "gold.sql", split), split=split, progress=False
    )
    m = result.metrics
    assert {s.db_id for s in result.scored} == set(bundled.db_ids())
    assert m["execution_accuracy"] == 1.0 and m["exact_match"] == 1.0 and m["valid_sql_rate"] == 1.0
    assert m["num_not_executable"] == 0 and m["gold_errors"] == 0
    for label, group in m["by_complexity"].items():
        assert group["execution_accuracy"] == 1.0, label
    for db_id in bundled.db_ids():
        assert all(s.execution_match == 1.0 for s in result.scored if s.db_id == db_id)

    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {
        "results.csv",
        "predictions.jsonl",
        "metrics.json",
        "report.html",
        "stage.json",
    }
    with open(out / "results.csv", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames[:6] == SEED_000_COLUMNS and tuple(reader.fieldnames) == RESULTS_COLUMNS
        first = next(reader)
    assert first["exact_match"] == "1.0" and first["execution_match"] == "1.0" and first["valid_sql"] == "1"
    saved = json.loads((out / "metrics.json").read_text())
    for key in ("exact_match", "f1_score", "execution_accuracy", "valid_sql_rate", "num_examples", "by_complexity"):
        assert key in saved
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == m["num_examples"] and records[0]["predicted_sql"] == records[0]["gold_sql"]


def test_department_store_gold_queries_all_execute(shared_datasets, tmp_path):
    source = shared_datasets / "spider_en" / "database" / "department_store"
    lines = (source / "train_gold_department_store.sql").read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.strip()]
    assert len(lines) == 88
    spider = tmp_path / "spider"
    (spider / "database" / "department_store").mkdir(parents=True)
    shutil.copy(source / "department_store.sqlite", spider / "database" / "department_store")
    records = [
        {"db_id": "department_store", "question": f"gold query {i}", "query": line.split("\t")[0]}
        for i, line in enumerate(lines)
    ]
    (spider / "train_spider.json").write_text(json.dumps(records), encoding="utf-8")

    result = evaluate(
        str(spider / "train_spider.json"),
        tmp_path / "out",
        predictions=source / "train_gold_department_store.sql",
        progress=False,
    )
    m = result.metrics
    assert m["num_examples"] == 88 and m["num_execution_scored"] == 88
    assert m["execution_accuracy"] == 1.0 and m["gold_errors"] == 0
    assert result.evalset.complexity_source == "derived"  # Spider rows carry no label: derived from the SQL


def test_spider_dev_without_databases_reports_em_f1_and_unexecuted_rows(shared_datasets, tmp_path, capsys):
    from text2sql.cli import main

    spider = shared_datasets / "spider_en"
    code = main(
        [
            "evaluate",
            "--predictions",
            str(spider / "dev_gold.sql"),
            "--data",
            str(spider / "dev.json"),
            "--output",
            str(tmp_path / "out"),
            "--num-examples",
            "0",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1,034 of 1,034 rows could not be executed" in out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["num_examples"] == 1034 and m["num_not_executable"] == 1034
    assert m["exact_match"] == 1.0 and m["f1_score"] == 1.0
    assert m["execution_accuracy"] is None and m["error_counts"] == {"no_database": 1034}
    assert sum(g["num_examples"] for g in m["by_complexity"].values()) == 1034


def test_jsonl_predictions_by_id_with_raw_model_output(tmp_path):
    rows = list(bundled.iter_rows("test"))[:6]
    wrapped = [
        "<|assistant|>\n```sql\n{sql}\n```</s>",
        "Here is the SQL query:\n\n{sql};\n\nThis query lists the rows you asked for.",
        "{sql}",
    ]
    with open(tmp_path / "p.jsonl", "w", encoding="utf-8") as f:
        for i, row in reversed(list(enumerate(rows))):  # any order: matched by id
            f.write(json.dumps({"id": row["id"], "output": wrapped[i % 3].format(sql=row["sql"])}) + "\n")
    result = evaluate("bundled", tmp_path / "out", predictions=tmp_path / "p.jsonl", max_samples=6, progress=False)
    assert result.metrics["execution_accuracy"] == 1.0 and result.metrics["exact_match"] == 1.0
    assert result.scored[0].raw_output.startswith("<|assistant|>")

    # predictions.jsonl written by evaluate reads back as predictions
    again = evaluate(
        "bundled", tmp_path / "again", predictions=tmp_path / "out" / "predictions.jsonl", max_samples=6, progress=False
    )
    assert again.metrics["execution_accuracy"] == 1.0


def test_predictions_that_do_not_line_up_are_refused(tmp_path):
    short = tmp_path / "short.sql"
    short.write_text("SELECT 1\nSELECT 2\n")
    with pytest.raises(DataError, match="2 prediction lines for 365 data rows"):
        evaluate("bundled", tmp_path / "a", predictions=short, progress=False)
    # the first N lines are used when --max-samples cuts the data
    ok = evaluate(
        "bundled", tmp_path / "b", predictions=_gold_file(tmp_path / "g.sql", "test"), max_samples=5, progress=False
    )
    assert ok.metrics["num_examples"] == 5 and ok.metrics["execution_accuracy"] == 1.0
    partial = tmp_path / "p.jsonl"
    partial.write_text(json.dumps({"id": "airline-00009", "sql": "SELECT 1"}) + "\n")
    with pytest.raises(DataError, match="no prediction for 2 of 3 rows"):
        evaluate("bundled", tmp_path / "c", predictions=partial, max_samples=3, progress=False)


def test_output_and_argument_checks(tmp_path):
    gold = _gold_file(tmp_path / "gold.sql", "test")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError, match="--force"):
        evaluate("bundled", tmp_path / "full", predictions=gold, progress=False)
    evaluate("bundled", tmp_path / "full", predictions=gold, force=True, max_samples=2, progress=False)
    assert (tmp_path / "full" / "keep.txt").exists() and (tmp_path / "full" / "metrics.json").exists()
    with pytest.raises(ConfigError, match="exactly one"):
        evaluate("bundled", tmp_path / "x", model="tiny:llama", predictions=gold)
    with pytest.raises(ConfigError, match="exactly one"):
        evaluate("bundled", tmp_path / "x")
    with pytest.raises(MissingExtraError, match=r"text2sql\[vllm\]"):
        evaluate("bundled", tmp_path / "v", model="tiny:llama", backend="vllm")


def test_csv_rows_without_database_and_a_database_dir(tmp_path):
    db_dir = tmp_path / "dbs" / "shop"
    db_dir.mkdir(parents=True)
    with sqlite3.connect(db_dir / "shop.sqlite") as conn:
        conn.execute("CREATE TABLE items (name TEXT, price REAL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [("a", 1.0), ("b", 2.5)])
    data = tmp_path / "data.csv"
    data.write_text(
        "input_text,sql,sql_complexity,db_id\n"
        "How many items?,SELECT COUNT(*) FROM items,aggregation,shop\n"
        "Most expensive?,SELECT name FROM items ORDER BY price DESC LIMIT 1,ordering,shop\n"
        "No database here,SELECT 1,basic,\n"
    )
    preds = tmp_path / "p.sql"
    preds.write_text("SELECT count(*) FROM items\nSELECT name FROM items ORDER BY price LIMIT 1\nSELECT 1\n")
    m = evaluate(str(data), tmp_path / "out", predictions=preds, db_dir=str(tmp_path / "dbs"), progress=False).metrics
    assert m["num_executable"] == 2 and m["num_not_executable"] == 1
    assert m["execution_accuracy"] == 0.5 and m["exact_match"] == pytest.approx(2 / 3)
    assert m["by_complexity"]["ordering"]["execution_accuracy"] == 0.0
    assert m["error_counts"] == {"wrong_result": 1, "no_database": 1}


def test_evaluate_a_tiny_model(tmp_path, tiny_llama_path):
    result = evaluate(
        "bundled",
        tmp_path / "out",
        model=str(tiny_llama_path),
        max_samples=6,
        batch_size=4,
        max_new_tokens=6,
        text_metrics=True,
        progress=False,
    )
    m = result.metrics
    assert m["num_examples"] == 6 and m["num_execution_scored"] == 6
    assert m["loss"] > 0 and m["perplexity"] == pytest.approx(2.718281828 ** m["loss"], rel=1e-6)
    assert m["examples_per_second"] > 0 and m["run"]["model"]["source"] == "base"
    assert 0 <= m["execution_accuracy"] <= 1 and "bleu" in m
    assert all(s.raw_output is not None for s in result.scored)
    assert (tmp_path / "out" / "report.html").stat().st_size > 1000


def test_loss_uses_prepared_labels_when_the_tokenizer_matches(tmp_path, tiny_llama_path):
    from stage_support import prepare_with_model
    from text2sql.config import load_config

    cfg = load_config(
        None,
        [
            f"output_dir={tmp_path / 'run'}",
            f"model.name_or_path={tiny_llama_path}",
            "data.max_samples.train=20",
            "data.max_samples.test=4",
            "data.max_samples.validation=4",
        ],
    )
    prepared = prepare_with_model(cfg).path
    result = evaluate(str(prepared), tmp_path / "out", model=str(tiny_llama_path), max_new_tokens=4, progress=False)
    assert result.evalset.prepared and result.evalset.split == "test"
    assert result.metrics["loss_labels"] == "prepared" and result.metrics["num_examples"] == 4
    # the prompt builder rebuilt from the model folder reproduces training's token ids exactly
    from text2sql.evaluation.loss import encode_rows
    from text2sql.inference.loading import load_for_inference

    im = load_for_inference(str(tiny_llama_path), load_weights=False)
    rows = result.evalset.rows
    assert encode_rows(rows, im.builder, use_prepared=True) == encode_rows(rows, im.builder, use_prepared=False)


def test_trimmed_loss_equals_full_loss(tiny_llama_path, monkeypatch):
    import text2sql.evaluation.loss as loss_module
    from text2sql.evaluation.evalset import load_eval_set
    from text2sql.inference.loading import load_for_inference

    im = load_for_inference(str(tiny_llama_path))
    rows = load_eval_set("bundled", split="test", read_options=im.read_options()).rows[::50]
    encoded = loss_module.encode_rows(rows, im.builder, use_prepared=False)
    trimmed = loss_module.teacher_forced_loss(im.model, "decoder", encoded, pad_id=0, batch_size=3)
    monkeypatch.setattr(loss_module, "_accepts", lambda model, name: False)
    full = loss_module.teacher_forced_loss(im.model, "decoder", encoded, pad_id=0, batch_size=3)
    assert (
        trimmed["num_tokens"]
        == full["num_tokens"]
        == sum(sum(label != -100 for label in labels[1:]) for _, labels in encoded)
    )
    assert trimmed["loss"] == pytest.approx(full["loss"], rel=1e-5)
