"""Which functions untrusted SQL may call, per engine: an allow-list of functions known to have no
effect outside the query, each with its category, and the refusals by what a function reaches.

    classify("lower", "postgres")            -> Verdict(allowed=True, category="string")
    classify("dblink_exec", "postgres")      -> Verdict(allowed=False, category="reaches other servers")
    classify("my_new_function", "duckdb")    -> Verdict(allowed=False, category="not reviewed")

A name on no list is refused ("not reviewed"): a function added by a newly installed extension does
not run until it has been read and listed. The lists themselves live beside this file, one per
engine; tests/sql/test_function_lists.py walks every function each engine exposes through them.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass

NOT_REVIEWED = "not reviewed"
_MODULES = {"postgres": "postgres", "duckdb": "duckdb", "sqlite": "sqlite"}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    category: str


@dataclass(frozen=True)
class _Lists:
    allowed: dict[str, str]  # name -> category
    refused: dict[str, str]
    prefixes: tuple[tuple[str, str], ...]  # (prefix, category), longest first
    suffixes: tuple[tuple[str, str], ...]


@functools.cache
def _lists(dialect: str) -> _Lists:
    if dialect not in _MODULES:
        raise ValueError(f"no function list for dialect {dialect!r}")
    module = importlib.import_module(f"{__name__}.{_MODULES[dialect]}")

    def by_name(groups: dict[str, str]) -> dict[str, str]:
        return {name: category for category, names in groups.items() for name in names.split()}

    def patterns(groups: dict[str, tuple[str, ...]]) -> tuple[tuple[str, str], ...]:
        pairs = [(p, category) for category, found in groups.items() for p in found]
        return tuple(sorted(pairs, key=lambda pc: -len(pc[0])))

    return _Lists(
        allowed=by_name(module.ALLOWED),
        refused=by_name(module.REFUSED),
        prefixes=patterns(getattr(module, "REFUSED_PREFIXES", {})),
        suffixes=patterns(getattr(module, "REFUSED_SUFFIXES", {})),
    )


def classify(name: str, dialect: str) -> Verdict:
    """Whether untrusted SQL may call the function `name` (as the engine folds it: lower case for
    an unquoted name) on `dialect`, and the category that says why."""
    lists = _lists(dialect)
    if name in lists.allowed:
        return Verdict(True, lists.allowed[name])
    if name in lists.refused:
        return Verdict(False, lists.refused[name])
    for prefix, category in lists.prefixes:
        if name.startswith(prefix):
            return Verdict(False, category)
    for suffix, category in lists.suffixes:
        if name.endswith(suffix):
            return Verdict(False, category)
    return Verdict(False, NOT_REVIEWED)


def allowed_names(dialect: str) -> frozenset[str]:
    return frozenset(_lists(dialect).allowed)


def refusal(name: str, verdict: Verdict) -> str:
    """The one line a refused call gets."""
    if verdict.category == NOT_REVIEWED:
        return f"function {name}() is not on the list of functions known to have no side effects; it is not run"
    return f"function {name}() {verdict.category}; it is not run"


# The functions a database defines itself, by name: its own functions and macros, and those of
# extensions nobody reviewed. An allowed name among them is refused on that database, because an
# unqualified call could reach the database's definition instead of the engine's (an overload).
POSTGRES_DEFINED = """
SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s AND NOT EXISTS (
    SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e' AND e.extname = ANY(%s))
"""
DUCKDB_DEFINED = "SELECT DISTINCT lower(function_name) FROM duckdb_functions() WHERE NOT internal"


def reviewed_extensions(dialect: str) -> list[str]:
    module = importlib.import_module(f"{__name__}.{_MODULES[dialect]}")
    return getattr(module, "REVIEWED_EXTENSIONS", "").split()


def defined_here(names: list[str], dialect: str) -> frozenset[str]:
    """Of the function names a database defines (`POSTGRES_DEFINED`, `DUCKDB_DEFINED`), those the
    allow-list would otherwise let through."""
    allowed = _lists(dialect).allowed
    return frozenset(n for n in names if n in allowed)
