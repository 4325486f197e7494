"""The schema a prompt shows: pruned to the budget, value hints beside their columns, the same for
training and inference."""

import os
import shutil
import sqlite3

import pytest

from text2sql.config import load_config
from text2sql.data import bundled
from text2sql.data.example import Example
from text2sql.data.prompt import PromptBuilder, prompt_budget
from text2sql.data.schema import schema_text
from text2sql.models.loading import load_tokenizer
from wide_db_support import make_wide_db

JOIN_SQL = (
    "SELECT COUNT(*) FROM orders AS T1 JOIN customers AS T2 ON T1.customer_id = T2.customer_id "
    "WHERE T2.country = 'Japan'"
)


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_path):
    return load_tokenizer(str(tiny_llama_path))


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return make_wide_db(tmp_path_factory.mktemp("shop") / "shop.sqlite")


def builder(tokenizer, *overrides):
    return PromptBuilder.from_config(tokenizer, "decoder", "llama", load_config(None, list(overrides)))


def example(question, db, fmt="sql", sql=JOIN_SQL):
    return Example(question, sql, schema_text(db, fmt), db_path=str(db))


def tokens(b, text):
    return len(b.encode_prompts([text])[0])


def test_without_budget_pressure_or_hints_the_prompt_is_the_rows_own(tokenizer):
    b = builder(tokenizer)
    ex = example("How many airports are there?", bundled.db_path("airline"))
    [fitted] = b.fit([ex])
    assert fitted.text == b.prompt_text(ex.question, ex.schema, ex.evidence)
    assert fitted.fits and not fitted.pruned and fitted.hints == 0
    assert fitted.ids == b.encode_prompts([fitted.text])[0]


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("sql", "  country TEXT -- values: 'United Kingdom'"),  # the last column: no comma
        ("compact", "  -- country: values: 'United Kingdom'"),
        ("tables", "-- airports.country: values: 'United Kingdom'"),
    ],
)
def test_value_hints_sit_beside_their_columns(tokenizer, fmt, line):
    b = builder(tokenizer, "data.value_hints=true", f"data.schema_format={fmt}")
    ex = example("List the airports in united kingdom.", bundled.db_path("airline"), fmt)
    [fitted] = b.fit([ex])
    assert line in fitted.text.splitlines()
    assert fitted.hints >= 1 and not fitted.pruned


def test_a_name_is_found_from_one_of_its_words(tokenizer, shop):
    b = builder(tokenizer, "data.value_hints=true", "data.max_prompt_tokens=4000")
    [fitted] = b.fit([example("What is the email of frank?", shop)])
    assert "full_name TEXT, -- values: 'Frank Müller'" in fitted.text


def test_a_schema_over_budget_keeps_what_the_question_names(tokenizer, shop):
    b = builder(tokenizer, "data.max_prompt_tokens=300", "data.value_hints=true")
    ex = example("How many orders did customers from japan place?", shop)
    assert tokens(b, b.prompt_text(ex.question, ex.schema)) > 300  # the whole schema does not fit
    [fitted] = b.fit([ex])
    assert fitted.fits and fitted.pruned and len(fitted.ids) <= 300
    assert {"customers", "orders"} <= fitted.tables
    assert "warehouses" not in fitted.tables and "departments" not in fitted.tables
    assert "FOREIGN KEY (customer_id) REFERENCES customers (customer_id)" in fitted.text  # the join survives
    assert "country TEXT, -- values: 'Japan'" in fitted.text
    assert fitted.kept_gold(JOIN_SQL, "sqlite") == 1.0
    assert b.fit([ex])[0].text == fitted.text  # deterministic


def test_training_keeps_what_the_gold_sql_uses(tokenizer, shop):
    b = builder(tokenizer, "data.max_prompt_tokens=200")
    sql = "SELECT warehouse_name FROM warehouses WHERE capacity > 800"
    ex = example("Which sites can hold more than 800?", shop, sql=sql)  # names neither table nor column
    [asked] = b.fit([ex])
    [trained] = b.fit([ex], gold=True)
    assert asked.pruned and trained.pruned and len(trained.ids) <= 200
    assert "warehouses" in trained.tables
    assert "warehouse_name" in trained.text and "capacity" in trained.text
    assert asked.kept_gold(sql, "sqlite") == ("warehouses" in asked.tables)


def test_a_prompt_that_cannot_fit_is_flagged_not_cut(tokenizer, shop):
    b = builder(tokenizer, "data.max_prompt_tokens=40")
    ex = example("How many orders did customers from japan place?", shop)
    [fitted] = b.fit([ex])
    assert not fitted.fits
    assert fitted.text == b.prompt_text(ex.question, ex.schema)  # shown whole, never cut mid-schema


def test_create_table_text_without_a_database_is_pruned_too(tokenizer):
    tables = [f"CREATE TABLE t{i} (id INTEGER PRIMARY KEY, label_{i} TEXT, amount_{i} REAL)" for i in range(30)]
    tables.append("CREATE TABLE head (age INTEGER, name TEXT, born_state TEXT)")
    ex = Example("How many heads are older than 56?", "SELECT COUNT(*) FROM head WHERE age > 56", ", ".join(tables))
    b = builder(tokenizer, "data.max_prompt_tokens=150")
    [fitted] = b.fit([ex])
    assert fitted.pruned and fitted.fits and len(fitted.ids) <= 150
    assert "head" in fitted.tables and "CREATE TABLE head (\n  age INTEGER," in fitted.text


def test_the_value_index_follows_an_edited_database(tokenizer, shop, tmp_path):
    db = tmp_path / "shop.sqlite"
    shutil.copy(shop, db)
    b = builder(tokenizer, "data.value_hints=true", "data.max_prompt_tokens=4000")
    question = "Which customers live in kyoto?"
    assert "'Kyoto'" not in b.fit([example(question, db)])[0].text
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE customers SET city = 'Kyoto' WHERE customer_id = 2")
    stat = db.stat()
    os.utime(db, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later mtime even on coarse clocks
    assert "city TEXT, -- values: 'Kyoto'" in b.fit([example(question, db)])[0].text


def test_the_default_budget_leaves_room_for_the_answer():
    cfg = load_config(None, ["data.max_length=1024", "evaluation.max_new_tokens=128"])
    assert prompt_budget(cfg, "decoder") == 896
    cfg = load_config(None, ["data.max_length=256", "evaluation.max_new_tokens=200"])
    assert prompt_budget(cfg, "decoder") == 192  # at most a quarter is set aside
    cfg = load_config(None, ["data.max_prompt_tokens=100", "data.max_source_length=300"])
    assert prompt_budget(cfg, "decoder") == 100 and prompt_budget(load_config(None, []), "seq2seq") == 512


def test_column_descriptions_are_comments_beside_their_columns(tmp_path):
    folder = tmp_path / "shop"
    folder.mkdir()
    db = make_wide_db(folder / "shop.sqlite")
    (folder / "database_description").mkdir()
    (folder / "database_description" / "customers.csv").write_text(
        "original_column_name,column_name,column_description,data_format,value_description\n"
        "loyalty_tier,loyalty tier,tier of the loyalty programme,text,gold > silver > bronze\n",
        encoding="utf-8",
    )
    for fmt, line in [
        ("sql", "  loyalty_tier TEXT -- tier of the loyalty programme; gold > silver > bronze"),
        ("compact", "  -- loyalty_tier: tier of the loyalty programme; gold > silver > bronze"),
    ]:
        assert line in schema_text(db, fmt).splitlines()
