"""Question templates, several per query shape: the seed picks one per pair, so the same SQL shape is
asked in varied words ("list", "show", "which", "what are", "give me", "find", ...). Slots are filled
from column names (`names`), stored values and the filters' words (`conditions`):

    thing / things        one / several rows of the table the question is about ("customer" / "customers")
    fields / field        the columns it asks to see, several or one ("names and prices" / "name and price")
    be                    "is" for one field, "are" for several
    clause                its filters as a relative clause, with a leading space (" whose city is 'Boston'"),
                          or "" without any; have: the same after "have" ("city Boston and price above 50")
    among                 " among those" + clause, or ""
    measure, agg, agg2    a number column, and "average", "highest", ...; sup: "highest", "most recent", ...
    adj                   an adjective that names a sort by itself ("cheapest", "longest"; wording.IMPLIED), or
                          compares by itself ("cheaper", "longer"; wording.IMPLIED too); named: a row's label alone
    group / groups        a column the rows are grouped by, or counted in distinct values
    k, order, top         a count of rows; how they are sorted ("sorted by price in descending order"); "top"
    which                 how a row is named ("named 'Boston'", "with ID 4")
    p... / c... / role    the parent and the child table of a join, and what the child calls its parent
    relate                "have" or "are the origin of": how parents relate to their children; lack: "have no"
                          or "are not the origin of any"; without: "without any" or "that are not the origin of any"
"""

from __future__ import annotations

PHRASINGS: dict[str, tuple[str, ...]] = {
    # basic: rows of one table (or of a joined table, the filters on both)
    "list": (
        "List the {fields} of {things}{clause}.",
        "List the {fields} of all {things}{clause}.",
        "Show the {fields} of {things}{clause}.",
        "What are the {fields} of the {things}{clause}?",
        "Give me the {fields} of {things}{clause}.",
        "Find the {fields} of {things}{clause}.",
        "Return the {fields} of the {things}{clause}.",
        "Show me the {fields} for {things}{clause}.",
        "Which {things} have {have}? Show their {fields}.",
        "For {things}{clause}, list the {fields}.",
    ),
    "which": (
        "Which {things} have {have}?",
        "Which {things} have {have}? Give their {fields}.",
        "What {things} have {have}?",
        "Find the {things}{clause}.",
        "Show all {things}{clause}.",
        "List the {things}{clause}.",
        "List the {fields} of {things}{clause}.",
        "What are the {fields} of {things}{clause}?",
        "Give me the {fields} of all {things}{clause}.",
    ),
    "all": (
        "List the {fields} of all {things}.",
        "Show the {fields} of every {thing}.",
        "What are the {fields} of the {things}?",
        "Give me the {fields} of all {things}.",
        "List all {things} with their {fields}.",
        "Find the {fields} of each {thing}.",
    ),
    "lookup": (
        "What {be} the {field} of the {thing} {which}?",
        "Give the {field} of the {thing} {which}.",
        "Show the {field} for the {thing} {which}.",
        "Find the {field} of the {thing} {which}.",
        "What {be} the {field} of {thing} {which}?",
        "Tell me the {field} of the {thing} {which}.",
    ),
    "distinct": (
        "What are the different {groups} of {things}{clause}?",
        "List the distinct {groups} of {things}{clause}.",
        "Which {groups} do {things}{clause} have?",
        "Show all the different {groups} among {things}{clause}.",
        "Find the unique {groups} of {things}{clause}.",
        "What distinct {groups} are there among {things}{clause}?",
    ),
    # aggregation
    "count": (
        "How many {things} have {have}?",
        "How many {things} are there{clause}?",
        "Count the {things}{clause}.",
        "What is the number of {things}{clause}?",
        "Find the number of {things}{clause}.",
        "How many {things}{clause} are there?",
        "Give me the count of {things}{clause}.",
    ),
    "stat": (
        "What {be} the {agg} {measure} of {things}{clause}?",
        "Find the {agg} {measure} of all {things}{clause}.",
        "Show the {agg} {measure} among {things}{clause}.",
        "Give me the {agg} {measure} of the {things}{clause}.",
        "Among {things}{clause}, what {be} the {agg} {measure}?",
        "Compute the {agg} {measure} for {things}{clause}.",
    ),
    "group_count": (
        "How many {things}{clause} are there for each {group}?",
        "For each {group}, how many {things}{clause} are there?",
        "Count the {things}{clause} for each {group}.",
        "Show each {group} and the number of {things}{clause}.",
        "What is the number of {things}{clause} in each {group}?",
        "List every {group} with its count of {things}{clause}.",
        "Count the {things}{clause} by {group}.",
        "Show the number of {things}{clause} per {group}.",
    ),
    "group_stat": (
        "What is the {agg} {measure} of {things}{clause} for each {group}?",
        "For each {group}, show the {agg} {measure} of {things}{clause}.",
        "Show each {group} with the {agg} {measure} of its {things}{clause}.",
        "Find the {agg} {measure} of {things}{clause} by {group}.",
        "List the {agg} {measure} of {things}{clause} per {group}.",
    ),
    "having": (
        "Which {groups} have more than {k} {things}?",
        "List the {groups} shared by more than {k} {things}.",
        "Show the {groups} that more than {k} {things} have.",
        "Find the {groups} with over {k} {things}.",
    ),
    "having_least": (
        "Which {groups} have at least {k} {things}?",
        "List the {groups} with {k} or more {things}.",
        "Show the {groups} that at least {k} {things} have.",
    ),
    "count_distinct": (
        "How many different {groups} do {things}{clause} have?",
        "Count the distinct {groups} of {things}{clause}.",
        "How many distinct {groups} are there among {things}{clause}?",
        "What is the number of different {groups} among {things}{clause}?",
    ),
    # ordering
    "top_one_which": (
        "Which {thing}{clause} has the {sup} {measure}?",
        "Which {thing} has the {sup} {measure}{among}?",
        "What is the {field} of the {thing} with the {sup} {measure}{among}?",
        "Find the {thing}{clause} with the {sup} {measure}.",
    ),
    "top_one": (
        "What is the {field} of the {thing} with the {sup} {measure}{among}?",
        "Find the {field} of the {thing}{clause} with the {sup} {measure}.",
        "Give me the {field} of the {thing} that has the {sup} {measure}{among}.",
        "Show the {field} of the {thing} with the {sup} {measure}{among}.",
        "Among {things}{clause}, which one has the {sup} {measure}? Give its {field}.",
    ),
    # the same, said with an adjective that names the sort by itself ("the 3 cheapest products")
    "top_one_adj_which": (
        "Which {thing}{clause} is the {adj}?",
        "Find the {adj} {thing}{among}.",
        "Which is the {adj} {thing}{among}?",
    ),
    "top_one_adj": (
        "What is the {field} of the {adj} {thing}{among}?",
        "Show the {field} of the {adj} {thing}{among}.",
        "Give me the {field} of the {adj} {thing}{among}.",
    ),
    "top_k_adj_which": (
        "Which {k} {things}{clause} are the {adj}?",
        "List the {k} {adj} {things}{among}.",
        "What are the {k} {adj} {things}{among}?",
    ),
    "top_k_adj": (
        "Show the {fields} of the {k} {adj} {things}{among}.",
        "List the {fields} of the {k} {adj} {things}{among}.",
        "What are the {fields} of the {k} {adj} {things}{among}?",
    ),
    "top_k": (
        "List the {fields} of the {k} {things}{clause} with the {sup} {measure}.",
        "Which {k} {things}{clause} have the {sup} {measure}? Show their {fields}.",
        "Show the {fields} of the {top} {k} {things} by {measure}{among}.",
        "What are the {fields} of the {k} {things} with the {sup} {measure}{among}?",
        "Give me the {fields} of the {k} {things}{clause} that have the {sup} {measure}.",
        "Find the {k} {things} with the {sup} {measure}{among}, and show their {fields}.",
    ),
    "sorted": (
        "List the {fields} of {things}{clause}, {order}.",
        "Show the {fields} of all {things}{clause} {order}.",
        "What are the {fields} of the {things}{clause}, {order}?",
        "Give me the {fields} of {things}{clause} {order}.",
        "Return the {fields} of {things}{clause}, {order}.",
    ),
    "group_top": (
        "Which {group} has the most {things}{clause}?",
        "What is the most common {group} among {things}{clause}?",
        "Find the {group} with the largest number of {things}{clause}.",
        "Which {group} do the most {things}{clause} have?",
    ),
    "group_least": (
        "Which {group} has the fewest {things}{clause}?",
        "What is the least common {group} among {things}{clause}?",
        "Find the {group} with the smallest number of {things}{clause}.",
    ),
    # join: parents of children (DISTINCT), a parent's children counted, parents by their children
    "parents": (
        "List the {fields} of {pthings}{pclause} that {relate} {cthings}{cclause}.",
        "Show the distinct {fields} of {pthings}{pclause} that {relate} at least one {cthing}{cclause}.",
        "What are the {fields} of the {pthings}{pclause} that {relate} {cthings}{cclause}?",
        "Give me the {fields} of all {pthings}{pclause} that {relate} {cthings}{cclause}.",
        "Which {pthings}{pclause} {relate} {cthings}{cclause}? Show their {fields}.",
    ),
    "parents_which": (
        "Which {pthings}{pclause} {relate} {cthings}{cclause}?",
        "Find the different {pthings}{pclause} that {relate} {cthings}{cclause}.",
        "What {pthings}{pclause} {relate} {cthings}{cclause}?",
        "Show the {pthings}{pclause} that {relate} at least one {cthing}{cclause}.",
    ),
    "no_children": (
        "List the {fields} of {pthings}{pclause} {without} {cthing}{cclause}.",
        "Show the {fields} of {pthings}{pclause} {without} {cthing}{cclause}.",
        "What are the {fields} of the {pthings}{pclause} that {lack} {cthings}{cclause}?",
        "Which {pthings}{pclause} {lack} {cthings}{cclause}? Give their {fields}.",
    ),
    "no_children_which": (
        "Which {pthings}{pclause} {lack} {cthings}{cclause}?",
        "Find the {pthings}{pclause} that {lack} {cthings}{cclause}.",
        "Show the {pthings}{pclause} {without} {cthing}{cclause}.",
        "What {pthings}{pclause} {lack} {cthings}{cclause}?",
    ),
    "count_for": (
        "How many {cthings}{cclause} does the {pthing} {which} have?",
        "Count the {cthings}{cclause} of the {pthing} {which}.",
        "What is the number of {cthings}{cclause} for the {pthing} {which}?",
    ),
    "most": (
        "Which {role} has the {most} {cthings}{cclause}?",
        "What is the {field} of the {role} with the {most} {cthings}{cclause}?",
        "Find the {role} with the {most_number} of {cthings}{cclause}.",
        "Give me the {field} of the {role} that has the {most} {cthings}{cclause}.",
    ),
    "most_k": (
        "List the {k} {roles} with the {most} {cthings}{cclause}.",
        "Which {k} {roles} have the {most} {cthings}{cclause}? Show their {fields}.",
        "Show the {fields} of the {k} {roles} with the {most_number} of {cthings}{cclause}.",
    ),
    # nested: comparisons with a value computed by a subquery
    "above_average": (
        "List the {fields} of {things}{clause} whose {measure} is {above} the average {measure} of all {things}.",
        "Show the {fields} of {things}{clause} with {measure} {above} average.",
        "Find the {things}{clause} whose {measure} is {above} the average. Give their {fields}.",
        "What are the {fields} of {things}{clause} with a {measure} {above} the average?",
    ),
    "above_average_which": (
        "Which {things}{clause} have {measure} {above} the average?",
        "Which {things}{clause} have a {measure} {above} the average {measure}?",
        "Find the {things}{clause} whose {measure} is {above} the average {measure} of all {things}.",
    ),
    "than": (
        "Which {things} have {measure} {above} that of the {thing} {which}?",
        "List the {fields} of {things} whose {measure} is {above} the {measure} of the {thing} {which}.",
        "Show the {things} whose {measure} is {above} that of the {thing} {which}.",
    ),
    "than_adj": (
        "Which {things} are {adj} than {named}?",
        "List the {fields} of {things} {adj} than the {thing} {which}.",
        "Show the {things} that are {adj} than {named}.",
        "What {things} are {adj} than {named}?",
        "Find the {fields} of the {things} {adj} than {named}.",
        "Which {things} are {adj} than the {thing} {which}?",
    ),
    "nested_having": (
        "Which {pthings} {relate} more than {k} {cthings}?",
        "List the {plabels} of {pthings} that {relate} more than {k} {cthings}.",
        "Show the {pthings} that {relate} over {k} {cthings}.",
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

# How rows are sorted, by what the key is and which way: {key} is the column's name.
ORDER_WORDS: dict[tuple[str, bool], tuple[str, ...]] = {
    ("number", True): (
        "sorted by {key} in descending order",
        "ordered by {key} from highest to lowest",
        "from the highest {key} to the lowest",
        "in descending order of {key}",
        "with the highest {key} first",
    ),
    ("number", False): (
        "sorted by {key}",
        "sorted by {key} in ascending order",
        "ordered by {key} from lowest to highest",
        "in ascending order of {key}",
        "with the lowest {key} first",
    ),
    ("time", True): (
        "ordered by {key}, most recent first",
        "sorted by {key} from latest to earliest",
        "in descending order of {key}",
    ),
    ("time", False): (
        "ordered by {key}, earliest first",
        "sorted by {key}",
        "sorted by {key} from earliest to latest",
        "in ascending order of {key}",
    ),
    ("text", False): (
        "in alphabetical order",
        "sorted alphabetically",
        "ordered by {key}",
        "sorted by {key} in ascending order",
    ),
    ("text", True): (
        "in reverse alphabetical order",
        "sorted by {key} in descending order",
        "ordered by {key} from Z to A",
    ),
}

# Comparison words of the set-operation shapes: (SQL operator, question words).
GREATER = (">", ("above", "greater than", "more than", "over"))
LESS = ("<", ("below", "less than", "under", "lower than"))
