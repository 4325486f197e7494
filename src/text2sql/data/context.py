"""The schema a prompt shows for one question: the whole schema when it fits the prompt budget,
else the part that matters (`text2sql.data.pruning`), with the stored values the question names
beside their columns (`text2sql.data.values`) when `data.value_hints` is on.

`fit_prompts` is the one place this happens; `PromptBuilder.fit` calls it for prepare, evaluation,
the training callbacks, `predict` and `serve`, so a question is always asked with the same schema
text. Training (`gold=True`) also keeps what the gold SQL uses; everywhere else only the question
decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from text2sql.data.ddl_schema import schema_from_ddl
from text2sql.data.example import Example
from text2sql.data.pruning import all_items, gold_items, gold_part, priority, subset
from text2sql.data.schema import cached_schema, render_schema
from text2sql.data.values import Hints, value_index
from text2sql.errors import DataError
from text2sql.sql.catalog import Schema


@dataclass
class SchemaSettings:
    """How schemas are shown: the run's data.schema_format, data.schema_sample_rows,
    data.value_hints, and the prompt budget in tokens (None: no limit)."""

    fmt: str = "sql"
    sample_rows: int = 0
    value_hints: bool = False
    budget: int | None = None


@dataclass
class FittedPrompt:
    """One prompt as the model sees it. `fits` is False when even the most pruned schema leaves the
    prompt over budget (or, training, without what the gold SQL uses); `tables` names the tables
    kept when the schema was pruned (None when it was not)."""

    text: str
    ids: list[int]
    fits: bool = True
    pruned: bool = False
    tables: set[str] | None = None
    hints: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def kept_gold(self, sql: str, dialect: str) -> float | None:
        """Share of the gold SQL's tables the prompt shows (schema recall); None when not pruned."""
        if self.tables is None:
            return None
        tables, _ = gold_items(sql, dialect)
        return sum(t in self.tables for t in tables) / len(tables) if tables else 1.0


Render = Callable[[str, str, str | None], str]  # (question, schema text, evidence) -> prompt text
Encode = Callable[[Sequence[str]], list[list[int]]]


def fit_prompts(
    examples: Sequence[Example],
    settings: SchemaSettings,
    render: Render,
    encode: Encode,
    *,
    gold: bool = False,
    dialect: str = "sqlite",
) -> list[FittedPrompt]:
    """The prompt of each example within `settings.budget` tokens (see the module docstring)."""
    schemas = [_structured(e, settings) for e in examples]
    hints = [_hints(e, s) if settings.value_hints else {} for e, s in zip(examples, schemas)]
    texts = []
    for e, schema, found in zip(examples, schemas, hints):
        shown = e.schema
        if found and schema is not None:
            shown = _render(subset(schema, all_items(schema), found), settings, e)
        texts.append(render(e.question, shown, e.evidence))
    ids = encode(texts)
    out = [FittedPrompt(t, i, hints=sum(len(v) for v in h.values())) for t, i, h in zip(texts, ids, hints, strict=True)]
    if settings.budget is None:
        return out
    for n, (e, schema, found) in enumerate(zip(examples, schemas, hints)):
        if len(out[n].ids) > settings.budget:
            out[n] = _pruned(e, schema, found, settings, render, encode, gold=gold) or FittedPrompt(
                texts[n], ids[n], fits=False, hints=out[n].hints
            )
    return out


def _pruned(
    example: Example,
    schema: Schema | None,
    hints: Hints,
    settings: SchemaSettings,
    render: Render,
    encode: Encode,
    *,
    gold: bool,
) -> FittedPrompt | None:
    """The prompt with the longest prefix of the priority order that fits; None when none does."""
    if schema is None or settings.budget is None:
        return None
    order = priority(schema, example.question, gold_sql=example.sql if gold else None, hinted=hints)
    needed = len(gold_part(schema, example.sql)) if gold else 1

    def attempt(k: int) -> FittedPrompt:
        kept = order[:k]
        text = render(example.question, _render(subset(schema, kept, hints), settings, example), example.evidence)
        [ids] = encode([text])
        tables = {t.lower() for t, _ in kept}
        shown = sum(len(v) for (t, _), v in hints.items() if t.lower() in tables)
        return FittedPrompt(text, ids, pruned=True, tables=tables, hints=shown)

    # Binary search on the prefix length: a longer prefix never renders shorter.
    lo, hi, best = max(needed, 1), len(order), None
    while lo <= hi:
        mid = (lo + hi) // 2
        found = attempt(mid)
        if len(found.ids) <= settings.budget:
            best, lo = found, mid + 1
        else:
            hi = mid - 1
    return best


def _structured(example: Example, settings: SchemaSettings) -> Schema | None:
    """The example's schema as tables and columns: read from its database, else parsed from its
    CREATE TABLE text; None when neither is possible (the text is then shown whole or not at all)."""
    if settings.budget is None and not settings.value_hints:
        return None
    if example.db_path:
        try:
            return cached_schema(example.db_path)
        except DataError:
            pass  # a row whose database is gone is still scored; its text schema is all there is
    return schema_from_ddl(example.schema) if example.schema else None


def _hints(example: Example, schema: Schema | None) -> Hints:
    if schema is None or not example.db_path or schema.db_path is None:
        return {}
    return value_index(example.db_path, schema).match(example.question)


def _render(schema: Schema, settings: SchemaSettings, example: Example) -> str:
    return render_schema(schema, settings.fmt, settings.sample_rows, example.db_path if schema.db_path else None)
