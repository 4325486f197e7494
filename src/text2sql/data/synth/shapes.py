"""Query shapes, each a function that draws one candidate pair (SQL in the database's dialect and its
templated question) from a profiled database, or None when the database has nothing that shape
needs. `SHAPES` lists them by the complexity class the evaluator reports for them (see
`evaluation.evalset.derive_complexity`): basic, aggregation, ordering, join, nested, set operation,
each with a weight: how often it is drawn within its class (a shape with more forms, more often).

A candidate says what its result must look like to be kept (`checks`): fewer rows than the table
when a filter is meant to narrow it, a count below the table's rows and above zero, sort keys without
ties where rows are ordered or cut by LIMIT, and another result without each filter it names.
"""

from __future__ import annotations

from text2sql.data.synth import join_shapes as joins
from text2sql.data.synth import nested_shapes as nested
from text2sql.data.synth import set_shapes as sets
from text2sql.data.synth import table_shapes as one
from text2sql.data.synth.candidate import (
    AGGREGATION,
    BASIC,
    CLASSES,
    JOIN,
    NESTED,
    ORDERING,
    SET_OPERATION,
    Candidate,
    DatabaseView,
    Shape,
)

SHAPES: dict[str, tuple[tuple[Shape, float], ...]] = {
    BASIC: ((one.where_list, 6), (one.lookup, 2), (one.distinct_values, 1.5), (one.select_all, 1)),
    AGGREGATION: (
        (one.count_where, 3),
        (one.stat_where, 3),
        (one.group_where, 4),
        (one.having_count, 1),
        (one.count_distinct, 1),
    ),
    ORDERING: ((one.top_where, 5), (one.sorted_where, 3), (one.group_top, 1.5)),
    JOIN: (
        (joins.join_where, 5),
        (joins.join_parents, 2),
        (joins.join_group, 2.5),
        (joins.join_stat, 2.5),
        (joins.join_most, 1),
        (joins.join_top, 1.5),
        (joins.join_distinct, 1),
        (joins.join_chain, 2.5),
        (joins.join_link, 2.5),
    ),
    NESTED: (
        (nested.nested_in, 3),
        (nested.nested_not_in, 3),
        (nested.nested_parent_in, 2),
        (nested.nested_extreme, 1.5),
        (nested.nested_avg, 1.5),
        (nested.nested_than, 1),
        (nested.nested_having, 1),
    ),
    SET_OPERATION: (
        (sets.union, 1),
        (sets.intersect, 1),
        (sets.except_, 1),
        (sets.except_join, 1),
        (sets.intersect_eq, 1),
    ),
}

__all__ = ["CLASSES", "SHAPES", "Candidate", "DatabaseView", "Shape"]
