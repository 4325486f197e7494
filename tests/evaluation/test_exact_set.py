"""Spider's exact-set match on sqlglot: each component as Spider's evaluation.py compares it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from text2sql.evaluation.exact_set import components, exact_set_match

SPIDER_DEV = Path("/work/shared/datasets/spider_en/dev.json")

JOIN = "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.singer_id = T2.singer_id WHERE T2.year = 2014"


def match(pred: str, gold: str) -> float | None:
    return exact_set_match(pred, gold)


# --- equal: what Spider's component matching deliberately ignores


def test_identical_queries_match():
    assert match(JOIN, JOIN) == 1.0


def test_table_aliases_resolve_to_table_names():
    pred = (
        "SELECT singer.name FROM singer JOIN concert ON singer.singer_id = concert.singer_id WHERE concert.year = 2014"
    )
    assert match(pred, JOIN) == 1.0
    assert match(JOIN.replace("T1", "a").replace("T2", "b"), JOIN) == 1.0


def test_unqualified_columns_of_a_single_table_resolve_to_it():
    assert match("SELECT name FROM singer WHERE age > 20", "SELECT T1.name FROM singer AS T1 WHERE T1.age > 30") == 1.0


def test_join_order_does_not_matter():
    pred = "SELECT T1.name FROM concert AS T2 JOIN singer AS T1 ON T2.singer_id = T1.singer_id WHERE T2.year = 2014"
    assert match(pred, JOIN) == 1.0


def test_select_is_a_multiset():
    # eval_sel counts matches and totals: order is free, but a duplicate column is an extra one.
    assert match("SELECT age, name FROM singer", "SELECT name, age FROM singer") == 1.0
    assert match("SELECT name, name FROM singer", "SELECT name FROM singer") == 0.0


def test_values_are_ignored():
    assert (
        match("SELECT name FROM singer WHERE country = 'Alice'", "SELECT name FROM singer WHERE country = 'Bob'") == 1.0
    )
    assert (
        match('SELECT name FROM singer WHERE country = "France"', "SELECT name FROM singer WHERE country = 'US'") == 1.0
    )
    assert (
        match(
            "SELECT name FROM singer WHERE age BETWEEN 1 AND 2", "SELECT name FROM singer WHERE age BETWEEN 30 AND 40"
        )
        == 1.0
    )
    assert match("SELECT name FROM singer WHERE age > 20", "SELECT name FROM singer WHERE age > 35.5") == 1.0


def test_where_conditions_are_a_set():
    pred = "SELECT name FROM singer WHERE age > 20 AND country = 'US'"
    assert match(pred, "SELECT name FROM singer WHERE country = 'France' AND age > 30") == 1.0


def test_keywords_and_identifiers_are_case_insensitive():
    assert (
        match("select NAME from SINGER as t1 where T1.Age > 1", "SELECT name FROM singer AS T1 WHERE t1.age > 2") == 1.0
    )


def test_distinct_is_ignored_as_in_spider():
    # Spider evaluates with DISABLE_DISTINCT = True, in SELECT and inside aggregates.
    assert match("SELECT DISTINCT country FROM singer", "SELECT country FROM singer") == 1.0
    assert match("SELECT count(DISTINCT country) FROM singer", "SELECT count(country) FROM singer") == 1.0


def test_limit_value_is_ignored():
    gold = "SELECT name FROM singer ORDER BY age DESC LIMIT 1"
    assert match("SELECT name FROM singer ORDER BY age DESC LIMIT 3", gold) == 1.0


def test_order_direction_defaults_to_asc():
    assert match("SELECT name FROM singer ORDER BY age", "SELECT name FROM singer ORDER BY age ASC") == 1.0


def test_select_alias_in_order_by_resolves_to_its_expression():
    pred = "SELECT country, count(*) AS n FROM singer GROUP BY country ORDER BY n DESC"
    assert match(pred, "SELECT country, count(*) FROM singer GROUP BY country ORDER BY count(*) DESC") == 1.0


def test_join_on_conditions_are_not_compared():
    # Spider compares the FROM tables only (eval_exact_match), not the ON conditions.
    pred = "SELECT T1.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.id WHERE T2.year = 2014"
    assert match(pred, JOIN) == 1.0


# --- different: any component that differs


def test_different_comparison_operator_does_not_match():
    assert match("SELECT name FROM singer WHERE age < 20", "SELECT name FROM singer WHERE age > 20") == 0.0
    assert (
        match("SELECT name FROM singer WHERE name NOT LIKE '%a%'", "SELECT name FROM singer WHERE name LIKE '%a%'")
        == 0.0
    )


def test_extra_where_condition_does_not_match():
    gold = "SELECT name FROM singer WHERE age > 20"
    assert match("SELECT name FROM singer WHERE age > 20 AND country = 'US'", gold) == 0.0
    assert match("SELECT name FROM singer", gold) == 0.0


def test_and_differs_from_or():
    gold = "SELECT name FROM singer WHERE age > 20 AND country = 'US'"
    assert match("SELECT name FROM singer WHERE age > 20 OR country = 'US'", gold) == 0.0


def test_different_tables_or_columns_do_not_match():
    assert match("SELECT name FROM concert", "SELECT name FROM singer") == 0.0
    assert match("SELECT age FROM singer", "SELECT name FROM singer") == 0.0
    assert match("SELECT T2.name FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.id", JOIN) == 0.0


def test_count_star_differs_from_count_column():
    assert match("SELECT count(singer_id) FROM singer", "SELECT count(*) FROM singer") == 0.0
    assert match("SELECT max(age) FROM singer", "SELECT min(age) FROM singer") == 0.0
    assert match("SELECT COUNT(*) FROM singer", "select count(*) from singer") == 1.0


def test_nested_subquery_is_compared_recursively():
    gold = "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer WHERE country = 'US')"
    assert match("SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer WHERE country = 'FR')", gold) == 1.0
    assert match("SELECT name FROM singer WHERE age > (SELECT max(age) FROM singer WHERE country = 'US')", gold) == 0.0
    assert match("SELECT name FROM singer WHERE age > 30", gold) == 0.0


def test_in_subquery_and_not_in():
    gold = "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert)"
    assert match("SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM concert)", gold) == 1.0
    assert match("SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM concert)", gold) == 0.0
    assert match("SELECT name FROM singer WHERE singer_id IN (SELECT stadium_id FROM concert)", gold) == 0.0


def test_set_operations_compare_operands_and_operator():
    gold = "SELECT name FROM singer WHERE age > 20 UNION SELECT name FROM singer WHERE country = 'US'"
    assert (
        match("SELECT name FROM singer WHERE age > 40 UNION SELECT name FROM singer WHERE country = 'FR'", gold) == 1.0
    )
    assert match(gold.replace("UNION", "INTERSECT"), gold) == 0.0
    assert match(gold.replace("UNION", "EXCEPT"), gold) == 0.0
    assert match("SELECT name FROM singer WHERE age > 20 UNION SELECT name FROM singer WHERE age < 10", gold) == 0.0
    assert match("SELECT name FROM singer WHERE age > 20", gold) == 0.0


def test_order_by_direction_matters():
    gold = "SELECT name FROM singer ORDER BY age DESC"
    assert match("SELECT name FROM singer ORDER BY age ASC", gold) == 0.0
    assert match("SELECT name FROM singer ORDER BY age", gold) == 0.0
    assert match("SELECT name FROM singer", gold) == 0.0


def test_limit_presence_matters():
    gold = "SELECT name FROM singer ORDER BY age DESC LIMIT 1"
    assert match("SELECT name FROM singer ORDER BY age DESC", gold) == 0.0
    assert match(gold, "SELECT name FROM singer ORDER BY age DESC") == 0.0


def test_group_by_and_having():
    gold = "SELECT country, count(*) FROM singer GROUP BY country HAVING count(*) > 2"
    assert match("SELECT country, count(*) FROM singer GROUP BY country HAVING count(*) > 5", gold) == 1.0
    assert match("SELECT country, count(*) FROM singer GROUP BY country HAVING count(*) < 2", gold) == 0.0
    assert match("SELECT country, count(*) FROM singer GROUP BY country", gold) == 0.0
    assert match("SELECT country, count(*) FROM singer GROUP BY name HAVING count(*) > 2", gold) == 0.0


def test_group_by_columns_are_compared_in_order():
    # eval_having compares the two GROUP BY lists with ==, so Spider's exact match is order-sensitive here.
    gold = "SELECT a, b, count(*) FROM t GROUP BY a, b"
    assert match("SELECT a, b, count(*) FROM t GROUP BY a, b", gold) == 1.0
    assert match("SELECT a, b, count(*) FROM t GROUP BY b, a", gold) == 0.0


# --- parsing failures


def test_unparsable_prediction_scores_zero():
    assert match("SELECT name FROM singer WHERE (", "SELECT name FROM singer") == 0.0
    assert match("", "SELECT name FROM singer") == 0.0
    assert match("hello world", "SELECT name FROM singer") == 0.0  # parses, but is not a query
    assert match("SELECT 1; SELECT 2", "SELECT 1") == 0.0


def test_unparsable_gold_cannot_be_scored():
    assert match("SELECT name FROM singer", "SELECT name FROM singer WHERE (") is None
    assert match("SELECT name FROM singer", "") is None


# --- the decomposition


def test_components_decomposition():
    parts = components(
        "SELECT T1.name, count(*) FROM singer AS T1 JOIN concert AS T2 ON T1.id = T2.id WHERE T2.year = 2014 OR T1.age > 3 GROUP BY T1.name ORDER BY count(*) DESC LIMIT 5"
    )
    assert parts is not None
    assert parts["select"] == (("col", "singer.name"), ("count", ("col", "*")))
    assert parts["from"] == (("table", "concert"), ("table", "singer"))
    # a multiset, kept sorted: the written order is gone
    assert parts["where"] == (
        (False, "=", ("col", "concert.year"), None, None),
        (False, ">", ("col", "singer.age"), None, None),
    )
    assert parts["and_or"] == ("or",)
    assert parts["group_by"] == (("col", "singer.name"),)
    assert parts["order_by"] == ("desc", (("count", ("col", "*")),))
    assert parts["limit"] is True
    assert parts["union"] is None and parts["intersect"] is None and parts["except"] is None
    assert components("SELECT name FROM singer WHERE (") is None


def test_unqualified_column_over_several_tables_keeps_its_bare_name():
    # Without the schema, the table of `name` is unknown: it stays `name` and does not match `singer.name`.
    parts = components("SELECT name FROM singer JOIN concert ON singer.id = concert.id")
    assert parts is not None and parts["select"] == (("col", "name"),)
    assert (
        match(
            "SELECT name FROM singer JOIN concert ON singer.id = concert.id",
            "SELECT singer.name FROM singer JOIN concert ON singer.id = concert.id",
        )
        == 0.0
    )


def test_components_returns_a_copy_of_the_cache():
    sql = "SELECT name FROM singer"
    parts = components(sql)
    assert parts is not None
    parts["select"] = ()
    assert match(sql, sql) == 1.0
    assert components(sql) != parts


# --- the real Spider dev set


@pytest.mark.skipif(not SPIDER_DEV.exists(), reason="Spider dev set not present")
def test_every_spider_dev_gold_query_matches_itself():
    rows = json.loads(SPIDER_DEV.read_text())
    assert len(rows) == 1034
    unparsed = [row["query"] for row in rows if components(row["query"]) is None]
    assert unparsed == []  # sqlglot parses every dev gold query
    assert all(exact_set_match(row["query"], row["query"]) == 1.0 for row in rows)
