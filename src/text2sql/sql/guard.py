"""The check every piece of untrusted SQL passes before a server engine (PostgreSQL, DuckDB) sees it.
It fails closed: SQL runs only when the guard can parse it into exactly one read-only query in the
engine's dialect and recognises every function it calls.

- Unparsable SQL, several statements, anything but a query, and anything inside a query that
  writes, locks rows or was only kept as raw text by the parser are refused with the reason.
- A function runs only when it is on the engine's allow-list of functions known to have no effect
  outside the query (`text2sql.sql.functions`); everything else, including a function the guard
  does not know, is refused with its category (runs SQL given as text, reads files, takes locks...).
  Names are read from the SQL text as written, so a parser that maps one function onto another
  cannot hide a call, and every name followed by `(` that the guard cannot place is refused.
- The server's own catalogs (`pg_catalog`, `information_schema`, `pg_*`, `duckdb_*`) and files named
  as tables are not read.
- With `permissions` (`text2sql.sql.permissions.Access`), a query reads only the tables and columns
  they allow: sqlglot's `qualify` resolves every column to its table with the database's catalog as
  the schema (stars expanded, USING and NATURAL joins spelled out, correlated subqueries included),
  and what it cannot resolve is refused, as are whole-row references (`row_to_json(t)`), columns by
  position (`#2`), PIVOT/UNPIVOT and a star it could not expand.

The engines add their own layers (read-only transactions or connections, least-privilege roles,
timeouts, byte and row caps), so that one gap in one layer is not an escape. SQLite is not checked
here: its compiler asks an authorizer about every action and function (`sqlite`), which is the same
allow-list applied by the engine's own parser.
"""

from __future__ import annotations

import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope
from sqlglot.schema import MappingSchema
from sqlglot.tokens import TokenType

from text2sql.sql.functions import classify, refusal
from text2sql.sql.permissions import Access, hidden_message
from text2sql.sql.results import FORBIDDEN, MAX_SQL_BYTES, SYNTAX
from text2sql.sql.targets import DISPLAY_NAMES

_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Into, exp.Copy)
# Function-shaped nodes that come from syntax rather than from a name in the text (`x::int`,
# `CAST(...)`, `EXTRACT(... FROM ...)`, `a AND b`, `ARRAY[...]`): each is one fixed, harmless operation.
_SYNTAX = (
    exp.Cast,
    exp.TryCast,
    exp.Extract,
    exp.Substring,
    exp.Trim,
    exp.StrPosition,
    exp.Overlay,
    exp.Ceil,
    exp.Floor,
    exp.Initcap,
    exp.Chr,
    exp.Normalize,
    exp.Max,
    exp.Min,
    exp.ArgMax,
    exp.ArgMin,
    exp.GroupConcat,
    exp.ArrayAgg,
    exp.Quantile,
    exp.ApproxQuantile,
    exp.CurrentDate,
    exp.CurrentTime,
    exp.CurrentTimestamp,
    exp.Exists,
    exp.Array,
    exp.Struct,
    exp.Case,
    exp.If,
    exp.Any,
    exp.All,
    exp.Connector,
    exp.Xor,
    exp.Coalesce,
    exp.TsOrDsToTimestamp,
    exp.TsOrDsToDate,
    exp.Interval,
    exp.Decode,
)
# Schemas and name prefixes of the engines' own catalogs: what other sessions run, settings, roles.
_SYSTEM_SCHEMAS = {
    "postgres": {"pg_catalog", "information_schema", "pg_toast"},
    "duckdb": {"pg_catalog", "information_schema", "system", "temp"},
}
SYSTEM_PREFIXES = {"postgres": ("pg_",), "duckdb": ("duckdb_", "pragma_", "sqlite_", "pg_")}
_NAME = re.compile(r'^(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")$')
_NAMES = (TokenType.VAR, TokenType.IDENTIFIER)


def check_query(
    sql: str, dialect: str, *, defined: frozenset[str] = frozenset(), permissions: Access | None = None
) -> tuple[str, str] | None:
    """(reason, category) when `sql` must not run on a `dialect` database; None when it may (the
    engine still runs it read-only). `defined`: function names the database itself defines (its own
    functions and macros, extension overloads), refused although the allow-list has the name.
    `permissions`: the tables and columns the query may read (None: all of them)."""
    text = (sql or "").strip().rstrip(";").rstrip()
    if not text:
        return "empty SQL", SYNTAX
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SQL_BYTES:
        return f"SQL longer than {MAX_SQL_BYTES:,} bytes; only shorter queries are run", FORBIDDEN
    name = DISPLAY_NAMES.get(dialect, dialect)
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except (SqlglotError, RecursionError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"the guard cannot parse this as one {name} query ({reason}); only SQL it can check is run", SYNTAX
    if not statements:
        return "empty SQL", SYNTAX
    if len(statements) > 1:
        return f"{len(statements)} statements; only one query is run", FORBIDDEN
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        return f"a {statement.key.upper()} statement; only queries are run", FORBIDDEN
    refused = _check_nodes(statement, text, dialect, defined) or _check_calls(statement, tokens, dialect, defined)
    if refused is None and permissions is not None:
        hidden = permission_refusal(statement, permissions)
        return (hidden, FORBIDDEN) if hidden else None
    return refused


def _check_nodes(statement: exp.Expr, text: str, dialect: str, defined: frozenset[str]) -> tuple[str, str] | None:
    for node in statement.walk():
        if isinstance(node, _WRITES):
            return f"{node.key.upper()} inside a query; only reading is allowed", FORBIDDEN
        if isinstance(node, exp.Command):
            return f"the guard does not recognise '{_cut(node.sql(dialect))}'; only SQL it can check is run", FORBIDDEN
        if isinstance(node, exp.Lock):
            return "row locks (FOR UPDATE / FOR SHARE); only reading is allowed", FORBIDDEN
        if isinstance(node, exp.Table):
            refused = _check_table(node, dialect) or _check_table_text(node, text, dialect)
        elif isinstance(node, exp.Func):
            refused = _check_function(node, text, dialect, defined)
        else:
            refused = None
        if refused:
            return refused, FORBIDDEN
    return None


def _check_function(node: exp.Func, text: str, dialect: str, defined: frozenset[str]) -> str | None:
    written = _written_name(node, text)
    if written is None:
        if isinstance(node, _SYNTAX):
            return None
        return f"the guard does not recognise the expression {node.key.upper()}; only SQL it can check is run"
    parent = node.parent
    if dialect == "postgres" and isinstance(parent, exp.Dot) and parent.expression is node:
        # Schema-qualified: only the system catalog's own functions, by their reviewed names.
        if not (isinstance(parent.this, (exp.Column, exp.Identifier, exp.Var)) and parent.this.name == "pg_catalog"):
            return f"a schema-qualified function ({_cut(parent.sql(dialect))}); call it by its plain name"
    return _check_name(written, dialect, defined)


def _check_name(name: str, dialect: str, defined: frozenset[str]) -> str | None:
    if name in defined:
        return f"function {name}() is defined by this database, not by {DISPLAY_NAMES.get(dialect, dialect)}; it is not run"
    verdict = classify(name, dialect)
    return None if verdict.allowed else refusal(name, verdict)


def _written_name(node: exp.Func, text: str) -> str | None:
    """The function's name as the engine reads it from the text (unquoted: lower case), or None when
    the node comes from syntax rather than from a name."""
    start, end = node.meta.get("start"), node.meta.get("end")
    if start is None or end is None:
        return None
    raw = text[start : end + 1]
    if not _NAME.match(raw):
        return None
    return raw[1:-1].replace('""', '"') if raw.startswith('"') else raw.lower()


def _check_table(node: exp.Table, dialect: str) -> str | None:
    schema = (node.db or "").lower()
    table = (node.name or "").lower()
    if schema in _SYSTEM_SCHEMAS.get(dialect, ()) or (
        not schema and table.startswith(SYSTEM_PREFIXES.get(dialect, ()))
    ):
        return f"{node.sql(dialect)} is a system catalog; only the database's own tables are read"
    return None


def _check_table_text(node: exp.Table, text: str, dialect: str) -> str | None:
    """DuckDB reads a file named as a string in FROM ('data.csv'); the parser keeps it as a quoted
    name, so the text itself tells."""
    start = node.this.meta.get("start") if isinstance(node.this, exp.Identifier) else None
    if start is not None and text[start : start + 1] == "'":
        return f"a file or string as a table ({_cut(text[start : node.this.meta['end'] + 1])}); only the database's tables are read"
    return None


def _check_calls(statement: exp.Expr, tokens: list, dialect: str, defined: frozenset[str]) -> tuple[str, str] | None:
    """Every name followed by `(` is a name the query declares with its columns (`WITH t(a) AS`,
    `AS g(x)`) or an allowed function; anything else is refused."""
    declared = {n.name.lower() for n in statement.find_all(exp.TableAlias) if n.name and n.args.get("columns")}
    parser = Dialect.get_or_raise(dialect).parser_class
    syntax = set(parser.FUNCTION_PARSERS) | set(parser.NO_PAREN_FUNCTION_PARSERS)
    for token, following in zip(tokens, tokens[1:]):
        if following.token_type != TokenType.L_PAREN or token.token_type not in _NAMES:
            continue
        if token.token_type == TokenType.VAR and token.text.upper() in syntax:
            continue  # parsed by its own rule into a node the walk checked (CAST, EXTRACT, XMLTABLE...)
        name = token.text if token.token_type == TokenType.IDENTIFIER else token.text.lower()
        if name.lower() in declared:
            continue
        refused = _check_name(name, dialect, defined)
        if refused:
            return refused, FORBIDDEN
    return None


def _cut(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------- permissions


def permission_refusal(statement: exp.Expr, access: Access) -> str | None:
    """Why the parsed query `statement` must not run for a user with `access`: it reads a table or
    column the permissions hide, or something the check cannot place; None when it reads only what
    they allow."""
    tree = statement.copy()
    try:
        for node in tree.walk():
            if isinstance(node, exp.PositionalColumn):
                return (
                    f"a column by its position ({node.sql(access.dialect)}); name the column, so that it can be checked"
                )
            if isinstance(node, exp.Pivot):
                return "PIVOT and UNPIVOT read columns the query does not name; name the columns and aggregate them"
        normalize_identifiers(tree, dialect=access.dialect)
        _drop_exists_stars(tree)
        refused = _hidden_tables(tree, access)
        if refused:
            return refused
        qualify(
            tree,
            dialect=access.dialect,
            schema=_sqlglot_schema(access),
            quote_identifiers=False,
            identify=False,
            validate_qualify_columns=True,
        )
        return _hidden_columns(tree, access)
    # Any failure of the resolver, whatever its type, means a query it cannot vouch for: refused.
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = reason.split(" Line:")[0].split(" (Line:")[0].rstrip(".")
        return f"cannot tell which table every column comes from ({reason}); qualify each column with its table"


def _drop_exists_stars(tree: exp.Expr) -> None:
    """`EXISTS (SELECT * ...)` reads no column: only whether a row exists. Its star becomes `1`, so
    that it does not count as reading the hidden columns it would expand to."""
    for node in tree.find_all(exp.Exists):
        query = node.this
        if isinstance(query, exp.Select) and all(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star))
            for e in query.expressions
        ):
            query.set("expressions", [exp.Literal.number(1)])


def _sqlglot_schema(access: Access) -> MappingSchema:
    """Every relation of the database with all its columns (hidden ones too: a column must resolve
    to the table the engine takes it from), names as sqlglot normalizes them in `access.dialect`."""
    if "sqlglot" not in access.cache:
        mapping: dict[str, object] = {
            access.key(name): {access.key(c): "unknown" for c in columns} for name, columns in access.relations.items()
        }
        access.cache["sqlglot"] = MappingSchema(mapping, dialect=access.dialect, normalize=False)
    return access.cache["sqlglot"]


def _hidden_tables(tree: exp.Expr, access: Access) -> str | None:
    """Refuses a named table (not a CTE, not a table function) that may not be read, or one in
    another schema or database; takes the database's own schema off the names that carry it."""
    ctes = set()
    for scope in traverse_scope(tree):
        for table in scope.tables:
            # By its name, not its alias: a subquery aliased like a table does not hide the table.
            if not table.args.get("db") and isinstance(scope.cte_sources.get(table.name), Scope):
                ctes.add(id(table))
    hidden = []
    for table in list(tree.find_all(exp.Table)):
        if id(table) in ctes or not isinstance(table.this, exp.Identifier):
            continue
        if table.args.get("catalog") or (
            table.args.get("db") and access.key(table.db) != access.key(access.schema_name or "")
        ):
            return f"{table.sql(access.dialect)} names another schema or database; name the database's tables alone"
        table.set("db", None)
        if not access.table_allowed(table.name):
            hidden.append(access.relation(table.name) or table.name)
    return hidden_message(hidden, []) if hidden else None


def _hidden_columns(tree: exp.Expr, access: Access) -> str | None:
    """Refuses a qualified query that reads a hidden column, reads whole rows, or holds a column or
    star the resolver could not place."""
    checked: set[int] = set()
    hidden = []
    for scope in traverse_scope(tree):
        for column in scope.columns:
            checked.add(id(column))
            if not column.table:
                if _names_output(column):
                    continue
                return _unplaced(column, access)
            source = _source(scope, column.table)
            if source is None:
                return _unplaced(column, access)
            if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
                continue  # a CTE, subquery or table function: checked as its own scope
            if isinstance(column.this, exp.Star):
                return _star(column, access)
            name = access.relation(source.name) or source.name
            if not access.column_allowed(name, column.name):
                hidden.append(f"{name}.{access.relation_column(name, column.name)}")
    for node in tree.walk():
        if isinstance(node, exp.TableColumn):
            return f"{node.sql(access.dialect)} is a whole row, which reads every column of its table; name the columns"
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            return _star(node, access)
        if isinstance(node, exp.Column) and id(node) not in checked and (node.table or not _names_output(node)):
            return _unplaced(node, access)
    return hidden_message([], hidden) if hidden else None


def _source(scope: Scope, name: str) -> exp.Table | Scope | None:
    """What `name` names as seen from `scope`: its own sources first, then the enclosing scopes'
    (a correlated subquery)."""
    current: Scope | None = scope
    while current is not None:
        if name in current.sources:
            return current.sources[name]
        current = current.parent
    return None


def _names_output(column: exp.Column) -> bool:
    """An unqualified name that the enclosing query's output has (ORDER BY an alias)."""
    query = column.find_ancestor(exp.Query)
    return query is not None and column.name in query.named_selects


def _unplaced(column: exp.Expr, access: Access) -> str:
    return f"cannot tell which table {_cut(column.sql(access.dialect))} comes from; qualify it with its table"


def _star(node: exp.Expr, access: Access) -> str:
    return f"cannot tell which columns {_cut(node.parent.sql(access.dialect) if node.parent else '*')} reads; name the columns"
