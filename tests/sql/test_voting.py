"""Execution voting: the largest group of equal results wins, failures never do, ties go to the most
likely candidate."""

from __future__ import annotations

import pytest

from text2sql.data import bundled
from text2sql.sql.execution import open_database
from text2sql.sql.voting import vote

COUNT = "SELECT COUNT(*) FROM airports"
COUNT_AGAIN = "SELECT count(airport_code) FROM airports"  # other text, same result
WRONG = "SELECT COUNT(*) FROM airlines"
BROKEN = "SELECT nope FROM airports"


@pytest.fixture()
def db():
    with open_database(bundled.db_path("airline")) as database:
        yield database


def test_the_largest_group_of_equal_results_wins(db):
    result = vote(db, [WRONG, COUNT, COUNT_AGAIN, BROKEN], [-0.1, -2.0, -3.0, -0.01])
    assert result.chosen == 1  # the more likely member of the winning group
    assert result.groups[0] == [1, 2] and result.support == 2
    assert all(3 not in g for g in result.groups)  # a failing candidate is in no group


def test_a_tie_goes_to_the_group_holding_the_most_likely_candidate(db):
    assert vote(db, [WRONG, COUNT], [-1.0, -0.5]).chosen == 1
    assert vote(db, [WRONG, COUNT], [-0.5, -1.0]).chosen == 0
    assert vote(db, [WRONG, COUNT]).chosen == 0  # without scores: the order given


def test_when_every_candidate_fails_the_most_likely_is_returned(db):
    result = vote(db, [BROKEN, "", "DROP TABLE airports"], [-3.0, -1.0, -2.0])
    assert result.chosen == 1 and result.groups == []
    assert not any(r.ok for r in result.results)
    assert db.execute(COUNT).ok  # nothing was dropped


def test_order_counts_when_the_query_orders_its_rows(db):
    up = "SELECT airport_code FROM airports ORDER BY airport_code LIMIT 3"
    down = "SELECT airport_code FROM airports ORDER BY airport_code DESC LIMIT 3"
    assert len(vote(db, [up, down]).groups) == 2
    a = "SELECT name FROM airlines WHERE airline_id < 4"
    b = "SELECT name FROM airlines WHERE airline_id < 4 ORDER BY name DESC"
    assert vote(db, [a, b]).groups[0] == [0, 1]  # the group's first query does not order: sets compared
