"""Spider's exact-set match (component matching, values ignored), on sqlglot.

Spider's official "exact match" (`evaluation.py --etype match` in taoyds/spider) does not compare
query text: it parses both queries into components and calls a prediction right when every
component equals the gold's, most of them as sets. So `SELECT b, a` matches `SELECT a, b`, JOIN order
and table aliases do not matter, and literal values are ignored (`DISABLE_VALUE`): `WHERE name =
'Bob'` matches `WHERE name = 'Alice'`. Plain exact match (string equality after normalizing) fails
all of these; execution accuracy, conversely, accepts different queries that happen to return the
same rows, which this metric does not.

Components of one SELECT, and how each is compared (after `Evaluator.eval_exact_match` and the
`eval_*` functions it calls):

- select: the output columns with their aggregates, as a multiset (`eval_sel`).
- from: the tables, as a multiset (`sorted(table_units)`); aliases are resolved to table names.
  The JOIN ... ON conditions are not compared, as in Spider.
- where: the conditions `(not, op, column/aggregate, value, value)` as a multiset (`eval_where`); a
  value is None unless it is a subquery, which is compared recursively (`rebuild_sql_val`). As in
  Spider, a column on the right (`a = b`) counts as a value and is ignored too.
- and_or: the set of connectors used in WHERE (`eval_and_or`).
- group_by: the columns, in order (`eval_having` compares the lists); having: the conditions and
  connectors, in order, values ignored (`eval_having`).
- order_by: one direction and the ordered list of expressions (`parse_order_by` keeps a single
  direction for the whole clause: the last ASC/DESC written, default ASC); limit: present or not,
  never its value (`eval_order`, `eval_keywords`).
- intersect / union / except: the right operand, compared recursively (`eval_IUEN`). As in Spider's
  parser, `A UNION B EXCEPT C` is A with union B, B with except C, and an ORDER BY / LIMIT written
  after the last operand belongs to that operand.

Spider's keyword component (`eval_keywords`) is implied by the above, except for keywords inside
JOIN ... ON conditions, which are not modelled. Identifiers are compared case-insensitively.

What this deliberately does not model, or models differently:

- No schema. Spider resolves every column to `table.column` through the database schema; here a
  column is `table.column` when it is qualified (alias resolved) or the SELECT reads one table, and
  the bare column name otherwise: `SELECT name FROM a JOIN b` does not match `SELECT a.name ...`.
- No foreign-key canonicalization (`build_foreign_key_map`, `rebuild_sql_col`): Spider treats
  `T1.singer_id` and `T2.singer_id` as equal when one references the other; here they differ.
- DISTINCT is ignored everywhere (`DISABLE_DISTINCT = True` in Spider), and so is UNION vs
  UNION ALL; LEFT/INNER join kinds and OFFSET are ignored.
- Spider compares a subquery inside a condition by plain equality of its parse, so there the
  order of its lists, its DISTINCTs and its LIMIT value count too; here every subquery is compared
  with the outer query's semantics (a pred `... (SELECT ... LIMIT 3)` matches a gold `LIMIT 1`).
- Literals are ignored everywhere, not only in conditions; a WITH clause, which Spider cannot parse,
  is compared as an extra `with` component.
- A prediction sqlglot cannot parse, or that is not a query, scores 0.0 (Spider scores it against an
  empty query); a gold query that cannot be parsed cannot be scored (None).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

AGGREGATES: dict[type[exp.Expression], str] = {
    exp.Count: "count",
    exp.Max: "max",
    exp.Min: "min",
    exp.Sum: "sum",
    exp.Avg: "avg",
}
ARITHMETIC: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}
# Spider's WHERE_OPS; `<>` parses as NEQ like `!=`, and ILIKE folds into LIKE (SQLite's LIKE ignores case).
CONDITION_OPS: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.GT: ">",
    exp.LT: "<",
    exp.GTE: ">=",
    exp.LTE: "<=",
    exp.NEQ: "!=",
    exp.In: "in",
    exp.Like: "like",
    exp.ILike: "like",
    exp.Is: "is",
    exp.Between: "between",
}
SET_OPS = ("intersect", "union", "except")
VALUE = "value"  # what every literal becomes: values are ignored


class _Unsupported(Exception):
    """A construct in a query position that is not a query (VALUES, a bare expression...)."""


@dataclass(frozen=True)
class _Scope:
    """What the column references of one SELECT resolve against."""

    aliases: dict[str, str] = field(default_factory=dict)  # alias or table name -> table name, outer scopes included
    single: str | None = None  # the table of a one-table FROM: where unqualified columns come from
    outputs: dict[str, Any] = field(default_factory=dict)  # SELECT aliases, for ORDER BY / GROUP BY / HAVING


def _bag(items: list[Any]) -> tuple[Any, ...]:
    """A multiset, as a sorted tuple (repr sorts mixed tuples, None and dicts alike)."""
    return tuple(sorted(items, key=repr))


def _unwrap(node: exp.Expression) -> exp.Expression:
    while isinstance(node, (exp.Paren, exp.Alias)):
        node = node.this
    return node


def _column(node: exp.Column, scope: _Scope) -> Any:
    name = "*" if isinstance(node.this, exp.Star) else node.name.lower()
    qualifier = node.table.lower()
    if qualifier:
        return ("col", f"{scope.aliases.get(qualifier, qualifier)}.{name}")
    if name in scope.outputs:
        return scope.outputs[name]
    if scope.single:
        return ("col", f"{scope.single}.{name}")
    # Several tables and no schema to tell which one holds the column: keep the bare name.
    return ("col", name)


def _unit(node: exp.Expression, scope: _Scope) -> Any:
    """A select item, condition operand, GROUP BY or ORDER BY expression (Spider's val_unit)."""
    node = _unwrap(node)
    if isinstance(node, exp.Star):
        return ("col", "*")
    if isinstance(node, exp.Column):
        return _column(node, scope)
    if isinstance(node, (exp.Literal, exp.Null, exp.Boolean, exp.Placeholder)) or (
        isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal)
    ):
        return VALUE
    if isinstance(node, (exp.Subquery, exp.Query)):
        return ("sql", _query(node, scope))
    agg = AGGREGATES.get(type(node))
    if agg is not None and not node.args.get("expressions"):  # max(a, b) is a scalar, not an aggregate
        inner = node.this
        if isinstance(inner, exp.Distinct) and len(inner.expressions) == 1:
            inner = inner.expressions[0]  # DISTINCT inside an aggregate is ignored, as in Spider
        return (agg, _unit(inner, scope))
    op = ARITHMETIC.get(type(node))
    if op is not None:
        return (op, _unit(node.this, scope), _unit(node.expression, scope))
    return _generic(node, scope)


def _generic(node: exp.Expression, scope: _Scope) -> Any:
    """Any other expression (function, CASE, ...): its node type and canonical arguments."""
    parts: list[Any] = [node.key]
    for key, value in sorted(node.args.items()):
        if isinstance(value, exp.Identifier):
            parts.append((key, value.name.lower()))
        elif isinstance(value, exp.Expression):
            parts.append((key, _unit(value, scope)))
        elif isinstance(value, list):
            parts.append((key, tuple(_unit(v, scope) if isinstance(v, exp.Expression) else v for v in value)))
        elif isinstance(value, str):
            parts.append((key, value.lower()))
        elif value is not None and value is not False:
            parts.append((key, value))
    return tuple(parts)


def _value(node: exp.Expression | None, scope: _Scope) -> Any:
    """A condition's right-hand side: a subquery is compared, anything else is ignored (None)."""
    if node is None:
        return None
    node = _unwrap(node)
    return _query(node, scope) if isinstance(node, (exp.Subquery, exp.Query)) else None


def _flatten(node: exp.Expression, conds: list[exp.Expression], connectors: list[str]) -> None:
    """Spider's flat condition list: leaves and AND/OR in written order, parentheses dropped."""
    node = _unwrap(node)
    if isinstance(node, (exp.And, exp.Or)):
        _flatten(node.this, conds, connectors)
        connectors.append(node.key)  # "and" / "or"
        _flatten(node.expression, conds, connectors)
    else:
        conds.append(node)


def _condition(node: exp.Expression, scope: _Scope) -> tuple[Any, ...]:
    """Spider's cond_unit (not, op, val_unit, val1, val2), with values ignored."""
    negated = False
    while isinstance(node, exp.Not):
        negated = not negated
        node = _unwrap(node.this)
    negated ^= bool(node.args.get("negate"))  # NOT LIKE is Like(negate=True) in recent sqlglot
    if isinstance(node, exp.Exists):
        return (negated, "exists", None, _value(node.this, scope), None)
    op = CONDITION_OPS.get(type(node))
    if op is None:  # GLOB, a bare column, NOT (a AND b)...: the whole predicate as one unit
        return (negated, node.key, _unit(node, scope), None, None)
    lhs = _unit(node.this, scope)
    if isinstance(node, exp.Between):
        return (negated, op, lhs, _value(node.args.get("low"), scope), _value(node.args.get("high"), scope))
    if isinstance(node, exp.In):
        query = node.args.get("query")
        if query is None and len(node.expressions) == 1:
            query = node.expressions[0]
        return (negated, op, lhs, _value(query, scope), None)
    return (negated, op, lhs, _value(node.expression, scope), None)


def _conditions(clause: exp.Expression | None, scope: _Scope) -> tuple[list[Any], list[str]]:
    if clause is None:
        return [], []
    leaves: list[exp.Expression] = []
    connectors: list[str] = []
    _flatten(clause.this, leaves, connectors)
    return [_condition(leaf, scope) for leaf in leaves], connectors


def _select(node: exp.Select, outer: _Scope, modifiers: exp.Expression | None) -> dict[str, Any]:
    """The components of one SELECT; `modifiers` is the set operation whose ORDER BY / LIMIT it takes."""
    from_ = node.args.get("from_") or node.args.get("from")
    sources = ([from_.this] if from_ else []) + [join.this for join in node.args.get("joins") or []]
    aliases = dict(outer.aliases)  # correlated subqueries see the outer aliases; their own shadow them
    tables: list[Any] = []
    for source in sources:
        if isinstance(source, exp.Table):
            name = source.name.lower()
            aliases[name] = name
            aliases[(source.alias or name).lower()] = name
            tables.append(("table", name))
        elif isinstance(source, exp.Subquery):
            if source.alias:
                aliases[source.alias.lower()] = source.alias.lower()
            tables.append(("sql", _query(source.this, outer)))
        else:
            tables.append(_generic(source, outer))
    single = tables[0][1] if len(tables) == 1 and tables[0][0] == "table" else None
    scope = _Scope(aliases=aliases, single=single)

    select_items = [_unit(item, scope) for item in node.expressions]
    # ORDER BY, GROUP BY and HAVING may name a SELECT alias (`count(*) AS n ... ORDER BY n`).
    outputs = {
        item.alias.lower(): unit for item, unit in zip(node.expressions, select_items) if isinstance(item, exp.Alias)
    }
    late = _Scope(aliases=aliases, single=single, outputs=outputs)

    where, connectors = _conditions(node.args.get("where"), scope)
    having, having_connectors = _conditions(node.args.get("having"), late)
    having_list: list[Any] = []
    for i, cond in enumerate(having):
        having_list += [cond] if i == 0 else [having_connectors[i - 1], cond]
    group = node.args.get("group")

    order = node.args.get("order") or (modifiers.args.get("order") if modifiers is not None else None)
    order_by = None
    if order is not None:
        direction = "asc"
        for ordered in order.expressions:
            desc = ordered.args.get("desc")
            if desc is not None:  # explicit ASC is desc=False, no keyword is None
                direction = "desc" if desc else "asc"
        order_by = (direction, tuple(_unit(o.this, late) for o in order.expressions))
    limit = node.args.get("limit") or (modifiers.args.get("limit") if modifiers is not None else None)

    components: dict[str, Any] = {
        "select": _bag(select_items),
        "from": _bag(tables),
        "where": _bag(where),
        "and_or": tuple(sorted(set(connectors))),
        "group_by": tuple(_unit(g, late) for g in group.expressions) if group else (),
        "having": tuple(having_list),
        "order_by": order_by,
        "limit": limit is not None,
    }
    components.update(dict.fromkeys(SET_OPS))
    return components


def _query(node: exp.Expression, outer: _Scope, modifiers: exp.Expression | None = None) -> dict[str, Any]:
    while isinstance(node, (exp.Subquery, exp.Paren)):
        node = node.this
    if isinstance(node, exp.Select):
        result = _select(node, outer, modifiers)
    elif isinstance(node, exp.SetOperation):
        # Spider's shape: the leftmost operand, each right operand hanging off the previous one.
        spine: list[exp.SetOperation] = []
        left: exp.Expression = node
        while isinstance(left, exp.SetOperation):
            spine.append(left)
            left = left.this
        result = last = _query(left, outer)
        for operation in reversed(spine):
            operand = _query(operation.expression, outer, modifiers=operation)
            last[operation.key] = operand
            last = operand
    else:
        raise _Unsupported(node.key)
    with_ = node.args.get("with_") or node.args.get("with")
    if with_ is not None:
        result["with"] = _bag([(cte.alias.lower(), _query(cte.this, outer)) for cte in with_.expressions])
    return result


@functools.lru_cache(maxsize=8192)
def _parse(sql: str, dialect: str) -> dict[str, Any] | None:
    """The components of `sql`, or None when it does not parse as one query (cached: gold repeats)."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if isinstance(s, exp.Expression)]
        if len(statements) != 1:
            return None
        return _query(statements[0], _Scope())
    except (sqlglot.errors.SqlglotError, _Unsupported, RecursionError):
        return None


def components(sql: str, dialect: str = "sqlite") -> dict[str, Any] | None:
    """The decomposition exact-set match compares (for tests and debugging); None if it does not parse.

    Keys: select, from, where, and_or, group_by, having, order_by, limit, intersect, union, except
    (a nested decomposition or None), and with when there is a WITH clause.
    """
    parsed = _parse(sql, dialect)
    return copy.deepcopy(parsed)  # the cached value is shared: hand out a copy


def exact_set_match(pred: str, gold: str, dialect: str = "sqlite") -> float | None:
    """1.0 when every component of pred equals gold's as sets (Spider's exact-set match, values ignored);
    0.0 otherwise; None when the gold does not parse."""
    gold_components = _parse(gold, dialect)
    if gold_components is None:
        return None
    pred_components = _parse(pred, dialect)
    return 1.0 if pred_components == gold_components else 0.0
