"""SQLite's gold SQL written for PostgreSQL and DuckDB, keeping what SQLite meant."""

from __future__ import annotations

import pytest

from text2sql.sql.transpile import TranspileError, transpile


def test_names_are_lower_case_on_postgres_only():
    sql = 'SELECT T1.Name FROM Customers AS T1 JOIN "Order Items" AS T2 ON T1.id = T2.cid'
    assert (
        transpile(sql, "postgres") == 'SELECT t1.name FROM customers AS t1 JOIN "order items" AS t2 ON t1.id = t2.cid'
    )
    assert transpile(sql, "duckdb") == sql


def test_like_stays_case_insensitive():
    assert transpile("SELECT a FROM t WHERE a LIKE '%x%'", "postgres") == "SELECT a FROM t WHERE a ILIKE '%x%'"
    assert transpile("SELECT a FROM t WHERE NOT a LIKE 'x'", "duckdb") == "SELECT a FROM t WHERE NOT a ILIKE 'x'"


def test_double_quoted_strings_are_strings_unless_they_name_a_column():
    sql = 'SELECT "name" FROM t WHERE city = "Paris"'
    assert transpile(sql, "postgres", columns={"Name", "city"}) == "SELECT \"name\" FROM t WHERE city = 'Paris'"
    # Without the columns nothing can be told apart, and nothing is changed.
    assert transpile(sql, "postgres") == 'SELECT "name" FROM t WHERE city = "paris"'


def test_bare_grouped_columns_are_aggregated():
    sql = "SELECT T1.name, COUNT(*) FROM c AS T1 JOIN o AS T2 ON T1.id = T2.cid GROUP BY T2.cid HAVING COUNT(*) > 1"
    out = transpile(sql, "duckdb")
    assert out.startswith("SELECT MIN(T1.name), COUNT(*)") and "GROUP BY T2.cid" in out
    # Grouped columns, aliases and aggregates are left alone, and so are subqueries' own columns.
    kept = "SELECT city, MAX(x) AS m FROM t WHERE y IN (SELECT y FROM u) GROUP BY city HAVING m > 1"
    assert transpile(kept, "duckdb") == kept


def test_what_cannot_be_parsed_is_an_error():
    with pytest.raises(TranspileError):
        transpile("SELECT FROM WHERE (", "postgres")
    with pytest.raises(TranspileError, match="one statement"):
        transpile("SELECT 1; SELECT 2", "postgres")
