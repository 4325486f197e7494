"""Query shapes, each a function that draws one candidate pair (SQL in the database's dialect and its
templated question) from a profiled database, or None when the database has nothing that shape
needs. `SHAPES` lists them by the complexity class the evaluator reports for them (see
`evaluation.evalset.derive_complexity`): basic, aggregation, ordering, join, nested, set operation.

A candidate says what its result must look like to be kept (`checks`): fewer rows than the table
when a filter is meant to narrow it, a count below the table's rows and above zero, sort keys without
ties where rows are ordered or cut by LIMIT.
"""

from __future__ import annotations

from text2sql.data.synth import compound_shapes as linked
from text2sql.data.synth import simple_shapes as simple
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

SHAPES: dict[str, tuple[Shape, ...]] = {
    BASIC: (
        simple.filter_eq,
        simple.filter_cmp,
        simple.filter_two,
        simple.lookup,
        simple.filter_date,
        simple.distinct_cmp,
    ),
    AGGREGATION: (
        simple.count_eq,
        simple.stat,
        simple.group_count,
        simple.group_stat,
        simple.having,
        simple.count_distinct,
        simple.count_cmp,
    ),
    ORDERING: (simple.top_k, simple.top_one_eq, simple.sorted_eq, simple.group_top),
    JOIN: (
        linked.join_filter_parent,
        linked.join_filter_child,
        linked.join_count,
        linked.join_stat,
        linked.join_both_labels,
    ),
    NESTED: (linked.nested_in, linked.nested_not_in, linked.nested_avg, linked.nested_than, linked.nested_having),
    SET_OPERATION: (linked.union, linked.intersect, linked.except_, linked.except_join, linked.intersect_eq),
}

__all__ = ["CLASSES", "SHAPES", "Candidate", "DatabaseView", "Shape"]
