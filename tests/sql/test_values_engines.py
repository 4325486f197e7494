"""Value hints come from the database the SQL runs on, whatever its engine: the same values are
found in the same columns on SQLite, DuckDB and PostgreSQL, and reading them changes nothing."""

from __future__ import annotations

import pytest

from engines_support import shop_on
from text2sql.data.schema import read_schema
from text2sql.data.values import value_index

ENGINES = ("sqlite", "duckdb", "postgres")


@pytest.fixture(scope="module", params=ENGINES)
def shop(request, tmp_path_factory) -> str:
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    return shop_on(request.param, tmp_path_factory.mktemp(request.param), server, schema="values_shop")


def test_the_same_values_are_found_on_every_engine(shop):
    index = value_index(shop, read_schema(shop))
    by_column = {column.lower(): sorted(index.values[i] for i, o in enumerate(index.owners) if index.columns[o] == (table, column))
                 for table, column in index.columns}  # fmt: skip
    assert by_column["city"] == ["Berlin", "London", "Paris"]
    assert "Chloé" in by_column["name"] and "D'Arcy" in by_column["name"]
    hints = {(t.lower(), c.lower()): v for (t, c), v in index.match("What did chloe from paris order?").items()}
    assert hints[("customers", "name")] == ["Chloé"] and hints[("customers", "city")] == ["Paris"]
    assert index.match("How many orders are there?") == {}
