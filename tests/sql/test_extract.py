"""Extracting the one SQL statement from raw model output."""

from __future__ import annotations

import pytest

from text2sql.sql.extract import extract_sql

# Seed 002: the untuned TinyLlama's answer, preamble and explanation included.
SEED_002_OUTPUT = (
    "To calculate the number of heads of the departments older than 56, you can use the "
    "following SQL query:\n\nSELECT COUNT(*) FROM departments WHERE age > 56;\n\n"
    'In the above query, "departments" is the name of the table and "age" is the column name...'
)


@pytest.mark.parametrize(
    ("output", "sql"),
    [
        (SEED_002_OUTPUT, "SELECT COUNT(*) FROM departments WHERE age > 56"),
        # Seed 002 after fine-tuning: the SQL alone.
        ("SELECT COUNT(*) FROM head WHERE age > 56", "SELECT COUNT(*) FROM head WHERE age > 56"),
        ("  SELECT name FROM t;  \n", "SELECT name FROM t"),
    ],
)
def test_seed_outputs(output, sql):
    assert extract_sql(output) == sql


def test_sql_fenced_block():
    assert extract_sql("```sql\nSELECT name\nFROM t;\n```") == "SELECT name\nFROM t"


def test_reasoning_then_sql_block_takes_the_last_sql_block():
    # Seed 001's assistant turns: chain-of-thought, sometimes with draft queries, then the answer.
    output = (
        "Step 1: we need employees with a salary.\n"
        "A first draft:\n```sql\nSELECT name FROM employees\n```\n"
        "We also need the filter, so the final query is:\n"
        "```sql\nSELECT name FROM employees WHERE salary > 50000;\n```\n"
        "This returns the names."
    )
    assert extract_sql(output) == "SELECT name FROM employees WHERE salary > 50000"


def test_sql_block_preferred_over_other_blocks():
    output = "```sql\nSELECT a FROM t\n```\nOutput:\n```\n| a |\n|---|\n| 1 |\n```"
    assert extract_sql(output) == "SELECT a FROM t"


def test_untagged_block_and_unclosed_block():
    assert extract_sql("Query:\n```\nSELECT a FROM t\n```") == "SELECT a FROM t"
    # Generation stopped before the closing fence.
    assert extract_sql("Answer:\n```sql\nSELECT a FROM t WHERE b = 1\n") == "SELECT a FROM t WHERE b = 1"


def test_think_block_is_ignored():
    output = "<think>maybe SELECT x FROM y? No.</think>\nSELECT name FROM t"
    assert extract_sql(output) == "SELECT name FROM t"


@pytest.mark.parametrize(
    "output",
    [
        "<|assistant|>\nSELECT a FROM b</s>",
        # The decoded text still holds the prompt (seed 002's template).
        "<|system|>\nCREATE TABLE b(a INTEGER)</s>\n<|user|>\nAll a?</s>\n<|assistant|>\nSELECT a FROM b</s>",
        "<|im_start|>assistant\nSELECT a FROM b<|im_end|>\n<|im_start|>user\nthanks",
        "[INST] All a? [/INST] SELECT a FROM b </s>",
        "<|start_header_id|>assistant<|end_header_id|>\n\nSELECT a FROM b<|eot_id|>",
        "SELECT a FROM b<|endoftext|>garbage after the end",
    ],
)
def test_chat_artifacts_are_removed(output):
    assert extract_sql(output) == "SELECT a FROM b"


@pytest.mark.parametrize(
    "output",
    [
        "SQL: SELECT a FROM b",
        "Answer: SELECT a FROM b;",
        "SQL Query:\nSELECT a FROM b",
        "Here is the SQL query:\n\nSELECT a FROM b",
        "Here is the SQL query: SELECT a FROM b",
        "You can get them with `SELECT a FROM b` easily.",
    ],
)
def test_labels_and_preambles_are_removed(output):
    assert extract_sql(output) == "SELECT a FROM b"


@pytest.mark.parametrize(
    "output",
    [
        "SELECT a FROM b; This query selects every a.",
        "SELECT a FROM b\nThis query selects every a.",
        "SELECT a FROM b\n\nIn the above query, we read it's a column.",
        "SELECT a FROM b\n\nExplanation: the query reads column a.",
    ],
)
def test_trailing_commentary_is_removed(output):
    assert extract_sql(output) == "SELECT a FROM b"


def test_multi_line_query_with_capitalised_identifiers_is_kept():
    sql = "SELECT\n  Name,\n  Age\nFROM people\nWHERE Age > 3\nORDER BY Name"
    assert extract_sql(sql) == sql


def test_broken_query_is_not_shortened_into_a_valid_one():
    sql = "SELECT name\nFROM t\nWHERE x = = 1"
    assert extract_sql(sql) == sql


@pytest.mark.parametrize(
    ("output", "sql"),
    [
        ("SELECT 'a;b' FROM t; SELECT 2", "SELECT 'a;b' FROM t"),
        ('SELECT "odd;name" FROM t;', 'SELECT "odd;name" FROM t'),
        ("SELECT 'it''s; fine' FROM t;\nDone.", "SELECT 'it''s; fine' FROM t"),
        ("SELECT a -- pick a; then b\nFROM t;", "SELECT a -- pick a; then b\nFROM t"),
        ("SELECT 1; DROP TABLE t;", "SELECT 1"),
    ],
)
def test_one_statement_cut_at_the_first_real_semicolon(output, sql):
    assert extract_sql(output) == sql


def test_cte_start_is_found_but_prose_starting_with_with_is_not():
    output = "With the given schema, the query is:\nWITH x AS (SELECT 1 AS n) SELECT n FROM x;"
    assert extract_sql(output) == "WITH x AS (SELECT 1 AS n) SELECT n FROM x"


def test_lowercase_and_parenthesised_queries():
    assert extract_sql("select a from b") == "select a from b"
    union = "(SELECT a FROM t) UNION (SELECT b FROM u)"
    assert extract_sql(union) == union


@pytest.mark.parametrize("output", ["", "   \n  ", "</s>", "<|assistant|>\n<|im_end|>"])
def test_empty_output(output):
    assert extract_sql(output) == ""


def test_output_without_sql_is_returned_cleaned_for_execution_to_reject():
    assert extract_sql("I don't know.</s>") == "I don't know."
