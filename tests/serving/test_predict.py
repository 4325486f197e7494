"""`text2sql predict`: the SQL alone on stdout, rows as a table with --execute, one-line errors."""

from __future__ import annotations

import sqlite3

import pytest

from text2sql.cli import main
from text2sql.data.bundled import db_path
from text2sql.errors import Text2SQLError
from text2sql.inference.generate import HFGenerator, RawOutput
from text2sql.serving.predict import format_table, predict

AIRLINE = str(db_path("airline"))


@pytest.fixture
def answers(monkeypatch, tiny_llama_path):
    """Make the model answer `answers.text` (chatter included) instead of running it."""
    from text2sql.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_llama_path))
    state = type("Answers", (), {"text": "SELECT COUNT(*) FROM flights", "prompts": []})()

    def fake_generate(self, prompts, max_new_tokens, sampling=None, **kwargs):
        state.prompts.extend(tokenizer.decode(p) for p in prompts)
        ids = tokenizer.encode(state.text, add_special_tokens=False) + [tokenizer.eos_token_id]
        return [RawOutput(ids, hit_eos=True) for _ in prompts]

    monkeypatch.setattr(HFGenerator, "generate", fake_generate)
    return state


def test_prints_the_sql_and_nothing_else_with_the_real_model(capsys, tiny_llama_path):
    expected = predict(str(tiny_llama_path), "How many flights are there?", db=AIRLINE, max_new_tokens=6).sql
    code = main(
        [
            "predict",
            "--model",
            str(tiny_llama_path),
            "--db",
            AIRLINE,
            "How many flights are there?",
            "--max-new-tokens",
            "6",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert out == expected + "\n"
    assert err == ""  # no progress bars or logs by default


def test_execute_prints_an_aligned_table(capsys, tiny_llama_path, answers):
    answers.text = (
        "Here is the query:\n```sql\nSELECT flight_id, flight_number FROM flights ORDER BY flight_id LIMIT 3;\n```"
    )
    code = main(["predict", "--model", str(tiny_llama_path), "--db", AIRLINE, "Three flights?", "--execute"])
    out, _ = capsys.readouterr()
    assert code == 0
    with sqlite3.connect(AIRLINE) as conn:
        rows = conn.execute("SELECT flight_id, flight_number FROM flights ORDER BY flight_id LIMIT 3").fetchall()
    lines = out.splitlines()
    assert lines[0] == "SELECT flight_id, flight_number FROM flights ORDER BY flight_id LIMIT 3"
    assert lines[1] == ""
    assert lines[2].split() == ["flight_id", "flight_number"]
    assert [line.split(None, 1) for line in lines[4:7]] == [[str(a), str(b)] for a, b in rows]
    assert lines[-1] == "(3 rows)"


def test_execute_caps_rows_shown(capsys, tiny_llama_path, answers):
    answers.text = "SELECT flight_id FROM flights"
    code = main(
        ["predict", "--model", str(tiny_llama_path), "--db", AIRLINE, "All flights?", "--execute", "--rows", "2"]
    )
    out, _ = capsys.readouterr()
    with sqlite3.connect(AIRLINE) as conn:
        total = conn.execute("SELECT COUNT(*) FROM flights").fetchone()[0]
    assert code == 0 and out.splitlines()[-1] == f"... {total - 2} more rows"


def test_failing_sql_exits_non_zero_and_leaves_the_database_alone(capsys, tiny_llama_path, answers, tmp_path):
    import shutil

    db = tmp_path / "airline.sqlite"
    shutil.copy(AIRLINE, db)
    before = db.read_bytes()
    answers.text = "DELETE FROM flights"
    code = main(["predict", "--model", str(tiny_llama_path), "--db", str(db), "Remove flights", "--execute"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "DELETE FROM flights\n" and "not authorized" in err
    assert db.read_bytes() == before


def test_schema_file_goes_into_the_training_prompt(capsys, tiny_llama_path, answers, tmp_path):
    from text2sql.inference.loading import load_for_inference

    schema = tmp_path / "schema.sql"
    schema.write_text("-- heads\nCREATE TABLE head(age INTEGER)\n", encoding="utf-8")
    answers.text = "SELECT COUNT(*) FROM head WHERE age > 56"
    code = main(["predict", "--model", str(tiny_llama_path), "--schema", str(schema), "How many heads are over 56?"])
    out, _ = capsys.readouterr()
    assert code == 0 and out == "SELECT COUNT(*) FROM head WHERE age > 56\n"
    builder = load_for_inference(str(tiny_llama_path), load_weights=False).builder
    assert answers.prompts[-1] == builder.prompt_text("How many heads are over 56?", "CREATE TABLE head(age INTEGER);")


def run_error(capsys, *args):
    code = main(["predict", *args])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and out == "" and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_bundled_database_by_name(capsys, tiny_llama_path, answers):
    code = main(["predict", "--model", str(tiny_llama_path), "--db", "airline", "How many flights?", "--execute"])
    out, _ = capsys.readouterr()
    with sqlite3.connect(AIRLINE) as conn:
        [(count,)] = conn.execute("SELECT COUNT(*) FROM flights").fetchall()
    assert code == 0 and out.splitlines()[0] == "SELECT COUNT(*) FROM flights"
    assert out.splitlines()[-2].strip() == str(count) and out.splitlines()[-1] == "(1 row)"
    assert "CREATE TABLE flights" in answers.prompts[0]  # the bundled database's schema was in the prompt


def test_bad_input_is_one_line(capsys, tmp_path, tiny_llama_path):
    model = str(tiny_llama_path)
    missing = run_error(capsys, "--model", model, "--db", str(tmp_path / "none.sqlite"), "q")
    assert (
        "not found; give a SQLite or DuckDB file, a postgresql:// URL or a bundled database (airline, clinic, retail, university)"
        in missing
    )
    assert "needs --db" in run_error(capsys, "--model", model, "--schema", AIRLINE, "q", "--execute")
    assert "does not exist" in run_error(capsys, "--model", str(tmp_path / "no-model"), "--db", AIRLINE, "q")
    empty = tmp_path / "empty.sql"
    empty.write_text("nothing here", encoding="utf-8")
    assert "no CREATE TABLE" in run_error(capsys, "--model", model, "--schema", str(empty), "q")
    assert "question is empty" in run_error(capsys, "--model", model, "--db", AIRLINE, "  ")
    with pytest.raises(SystemExit):  # argparse: --db and --schema are mutually exclusive
        main(["predict", "--model", model, "--db", AIRLINE, "--schema", str(empty), "q"])
    capsys.readouterr()
    with pytest.raises(Text2SQLError, match="exactly one"):
        predict(model, "q")


def test_format_table():
    table = format_table(["id", "name"], [(1, "Ann"), (22, None), (3, b"\x01")], limit=2)
    assert table.splitlines() == ["id  name", "--  ----", "1   Ann", "22  NULL", "... 1 more rows"]
    assert format_table(["n"], [(1,)]).splitlines()[-1] == "(1 row)"
