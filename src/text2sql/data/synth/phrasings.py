"""Question templates, several per query shape: the seed picks one per pair, so the same SQL shape is
asked in varied words. Slots are filled from humanised names and database values (`shapes`):

    thing / things         one / several rows of the table ("customer" / "customers")
    label / labels         the column that names a row ("name" / "names")
    col / cols, v, v2      a column rows share values of ("city" / "cities"), and values of it
    measure / measures, x  a number column ("price" / "prices") and a value of it
    above                  "above", "greater than", ... or "below", "less than", ...
    agg                    "average", "highest", "lowest", "total"
    sup                    "highest" or "lowest"; k a count
    date_col, when, d      a date column, "after" or "before", a date
    c... / p...            the same of the child and the parent table of a join; role: what the child
                           calls its parent ("customer", "origin")
"""

from __future__ import annotations

PHRASINGS: dict[str, tuple[str, ...]] = {
    # basic
    "filter_eq": (
        "List the {labels} of {things} whose {col} is {v}.",
        "What are the {labels} of the {things} with {col} {v}?",
        "Which {things} have {col} {v}? Give their {labels}.",
        "Show the {label} of every {thing} where {col} is {v}.",
    ),
    "filter_cmp": (
        "Which {things} have {measure} {above} {x}? Show their {labels} and {measures}.",
        "List the {label} and {measure} of {things} whose {measure} is {above} {x}.",
        "Show {things} with {measure} {above} {x}, with their {label} and {measure}.",
        "What are the {labels} and {measures} of the {things} with {measure} {above} {x}?",
    ),
    "filter_two": (
        "Which {things} with {col} {v} have {measure} {above} {x}?",
        "List the {labels} of {things} whose {col} is {v} and whose {measure} is {above} {x}.",
        "Show the {label} of each {thing} where {col} is {v} and {measure} is {above} {x}.",
        "Among {things} with {col} {v}, which have {measure} {above} {x}?",
    ),
    "lookup": (
        "What is the {col} of the {thing} whose {label} is {v}?",
        "Give the {col} of the {thing} with {label} {v}.",
        "Show the {col} for the {thing} {v}.",
        "What {col} does the {thing} {v} have?",
    ),
    "filter_date": (
        "Which {things} have {date_col} {when} {d}? List their {labels}.",
        "List the {labels} of {things} whose {date_col} is {when} {d}.",
        "Show the {label} of every {thing} with {date_col} {when} {d}.",
    ),
    "distinct_cmp": (
        "Which different {cols} do {things} with {measure} {above} {x} have?",
        "List the distinct {cols} of {things} whose {measure} is {above} {x}.",
        "What {cols} occur among {things} with {measure} {above} {x}?",
    ),
    # aggregation
    "count_eq": (
        "How many {things} have {col} {v}?",
        "Count the {things} whose {col} is {v}.",
        "What is the number of {things} with {col} {v}?",
        "How many {things} are there with {col} {v}?",
    ),
    "stat": (
        "What is the {agg} {measure} of all {things}?",
        "Find the {agg} {measure} among {things}.",
        "Show the {agg} {measure} of the {things}.",
    ),
    "stat_eq": (
        "What is the {agg} {measure} of {things} whose {col} is {v}?",
        "Find the {agg} {measure} among {things} with {col} {v}.",
        "For {things} with {col} {v}, what is the {agg} {measure}?",
    ),
    "group_count": (
        "How many {things} are there for each {col}?",
        "Count the {things} per {col}.",
        "For each {col}, show the number of {things}.",
        "Show every {col} with its number of {things}.",
    ),
    "group_stat": (
        "What is the {agg} {measure} of {things} for each {col}?",
        "For each {col}, show the {agg} {measure} of its {things}.",
        "Show each {col} with the {agg} {measure} of the {things} that have it.",
    ),
    "having": (
        "Which {cols} have more than {k} {things}?",
        "List the {cols} shared by more than {k} {things}.",
        "Show the {cols} that more than {k} {things} have.",
    ),
    "count_distinct": (
        "How many different {cols} do the {things} have?",
        "Count the distinct {cols} of {things}.",
        "How many distinct {cols} are there among the {things}?",
    ),
    "count_cmp": (
        "How many {things} have {measure} {above} {x}?",
        "Count the {things} whose {measure} is {above} {x}.",
        "What is the number of {things} with {measure} {above} {x}?",
    ),
    # ordering
    "top_k": (
        "List the {labels} of the {k} {things} with the {sup} {measure}.",
        "Which {k} {things} have the {sup} {measure}?",
        "Show the {k} {things} with the {sup} {measure}.",
        "What are the {k} {things} with the {sup} {measure}? Give their {labels}.",
    ),
    "top_one_eq": (
        "Which {thing} with {col} {v} has the {sup} {measure}?",
        "Among {things} whose {col} is {v}, which one has the {sup} {measure}?",
        "Give the {label} of the {thing} with the {sup} {measure} among those with {col} {v}.",
    ),
    "sorted_eq": (
        "List the {labels} and {measures} of {things} with {col} {v}, from {sup} to {other} {measure}.",
        "Show {things} whose {col} is {v} with their {measures}, sorted from {sup} {measure} to {other}.",
        "Order the {things} with {col} {v} by {measure}, {sup} first, showing {label} and {measure}.",
    ),
    "group_top": (
        "Which {col} has the most {things}?",
        "What is the most common {col} among {things}?",
        "Find the {col} with the largest number of {things}.",
    ),
    # join
    "join_filter_parent": (
        "List the {clabels} of {cthings} whose {role}'s {pcol} is {v}.",
        "Which {cthings} have a {role} with {pcol} {v}? Give their {clabels}.",
        "Show the {clabel} of every {cthing} whose {role} has {pcol} {v}.",
    ),
    "join_filter_child": (
        "Which {pthings} have {cthings} with {ccol} {v}?",
        "List the {plabels} of {pthings} that are the {role} of {cthings} with {ccol} {v}.",
        "Show the distinct {plabels} of {pthings} with at least one {cthing} whose {ccol} is {v}.",
    ),
    "join_count": (
        "How many {cthings} does each {pthing} have? Show the {plabel} and the count.",
        "For each {pthing}, give its {plabel} and the number of {cthings}.",
        "Count the {cthings} of every {pthing}, listed by {plabel}.",
    ),
    "join_stat": (
        "What is the {agg} {cmeasure} of the {cthings} whose {role} is {v}?",
        "Find the {agg} {cmeasure} over {cthings} of the {pthing} {v}.",
        "For the {pthing} with {plabel} {v}, what is the {agg} {cmeasure} of its {cthings}?",
    ),
    "join_count_for": (
        "How many {cthings} does the {pthing} {v} have?",
        "Count the {cthings} whose {role} is {v}.",
        "What is the number of {cthings} of the {pthing} with {plabel} {v}?",
    ),
    "join_both_labels": (
        "List each {cthing} with {cmeasure} {above} {x} together with the {plabel} of its {role}.",
        "For {cthings} whose {cmeasure} is {above} {x}, show the {clabel} and the {role}'s {plabel}.",
        "Show the {clabel} of {cthings} with {cmeasure} {above} {x} and the {plabel} of their {role}.",
    ),
    # nested
    "nested_in": (
        "List the {plabels} of {pthings} that are the {role} of some {cthing} with {ccol} {v}.",
        "Which {pthings} appear as {role} among the {cthings} whose {ccol} is {v}?",
        "Give the {plabels} of {pthings} linked to {cthings} with {ccol} {v}.",
    ),
    "nested_not_in": (
        "Which {pthings} have no {cthings}?",
        "List the {plabels} of {pthings} without any {cthing}.",
        "Show the {pthings} that are the {role} of no {cthing}.",
    ),
    "nested_not_in_eq": (
        "Which {pthings} have no {cthings} with {ccol} {v}?",
        "List the {plabels} of {pthings} that are the {role} of no {cthing} whose {ccol} is {v}.",
        "Show the {pthings} without any {cthing} where {ccol} is {v}.",
    ),
    "nested_avg": (
        "Which {things} have {measure} {above} the average? Show the {label} and {measure}.",
        "List the {things} whose {measure} is {above} the average {measure} of all {things}.",
        "Show the {label} and {measure} of {things} with {measure} {above} average.",
    ),
    "nested_than": (
        "Which {things} have {measure} {above} that of the {thing} {v}?",
        "List the {labels} of {things} whose {measure} is {above} the {measure} of the {thing} {v}.",
        "Show the {things} whose {measure} is {above} that of the {thing} with {label} {v}.",
    ),
    "nested_having": (
        "Which {pthings} have more than {k} {cthings}?",
        "List the {plabels} of {pthings} that are the {role} of more than {k} {cthings}.",
        "Show the {pthings} with over {k} {cthings}.",
    ),
    # set operation
    "union": (
        "List the {labels} of {things} whose {col} is {v} or {v2}.",
        "Which {things} have {col} {v} or {col} {v2}?",
        "Show the {labels} of all {things} with {col} either {v} or {v2}.",
    ),
    "intersect": (
        "Which {cols} have both {things} with {measure} above {x} and {things} with {measure} below {y}?",
        "List the {cols} that include {things} with {measure} over {x} as well as {things} with {measure} under {y}.",
        "Show the {cols} shared by {things} with {measure} greater than {x} and {things} with {measure} less than {y}.",
    ),
    "except": (
        "Which {cols} have no {things} with {measure} above {x}?",
        "List the {cols} of {things}, leaving out those with any {thing} whose {measure} is above {x}.",
        "Show the {cols} where no {thing} has {measure} greater than {x}.",
    ),
    "except_join": (
        "Which {pthings} have no {cthings} with {ccol} {v}? List their {plabels}.",
        "List the {plabels} of {pthings}, except those that have {cthings} whose {ccol} is {v}.",
        "Show all {pthings} apart from those with any {cthing} where {ccol} is {v}.",
    ),
    "intersect_eq": (
        "Which {cols} have both {things} with {col2} {v} and {things} with {col2} {v2}?",
        "List the {cols} found among {things} with {col2} {v} and also among {things} with {col2} {v2}.",
        "Show the {cols} that {things} with {col2} {v} and {things} with {col2} {v2} have in common.",
    ),
}

# Comparison words: (SQL operator, question words).
GREATER = (">", ("above", "greater than", "more than", "over"))
LESS = ("<", ("below", "less than", "under", "lower than"))
# Aggregates: (SQL function, question word).
AGGREGATES = (("AVG", "average"), ("MAX", "highest"), ("MIN", "lowest"), ("SUM", "total"))
