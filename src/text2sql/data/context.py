"""The schema a prompt shows for one question: the whole schema when it fits the prompt budget,
else the part that matters (`text2sql.data.pruning`), with the stored values the question names
beside their columns (`text2sql.data.values`) when `data.value_hints` is on. With permissions
(`SchemaSettings.permissions`, by the example's db_id) the schema, its pruning and its value hints
hold only the tables and columns they allow.

`fit_prompts` is the one place this happens; `PromptBuilder.fit` calls it for prepare, evaluation,
the training callbacks, `predict` and `serve`, so a question is always asked with the same schema
text. Training (`gold=True`) also keeps what the gold SQL uses; everywhere else only the question
decides.

A follow-up question shows its last `history_turns` earlier turns. When its prompt is over budget,
the older turns go first (oldest first, the whole schema kept), down to the most recent one; then the
schema is pruned with that turn shown (what its SQL uses is kept first, then what the question names);
only when no pruned schema fits beside it is the most recent turn dropped too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from text2sql.data.ddl_schema import schema_from_ddl
from text2sql.data.example import Example, Turn
from text2sql.data.pruning import all_items, gold_items, gold_part, priority, subset
from text2sql.data.schema import cached_schema, render_schema
from text2sql.data.values import Hints, value_index
from text2sql.errors import DataError
from text2sql.sql.catalog import Schema
from text2sql.sql.permissions import Permissions


@dataclass
class SchemaSettings:
    """How schemas are shown: the run's data.schema_format, data.schema_sample_rows,
    data.value_hints, the prompt budget in tokens (None: no limit), and the tables and columns a
    user may read, by db_id (None: all)."""

    fmt: str = "sql"
    sample_rows: int = 0
    value_hints: bool = False
    budget: int | None = None
    permissions: Permissions | None = None


@dataclass
class FittedPrompt:
    """One prompt as the model sees it. `fits` is False when even the most pruned schema leaves the
    prompt over budget (or, training, without what the gold SQL uses); `tables` names the tables
    kept when the schema was pruned (None when it was not); `turns` counts the earlier turns of the
    conversation it shows."""

    text: str
    ids: list[int]
    fits: bool = True
    pruned: bool = False
    tables: set[str] | None = None
    hints: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    turns: int = 0

    def kept_gold(self, sql: str, dialect: str) -> float | None:
        """Share of the gold SQL's tables the prompt shows (schema recall); None when not pruned."""
        if self.tables is None:
            return None
        tables, _ = gold_items(sql, dialect)
        return sum(t in self.tables for t in tables) / len(tables) if tables else 1.0


# (question, schema text, evidence, earlier turns) -> prompt text
Render = Callable[[str, str, str | None, Sequence[Turn]], str]
Encode = Callable[[Sequence[str]], list[list[int]]]


def recent_turns(history: Sequence[Turn], limit: int | None) -> list[Turn]:
    """The last `limit` turns of `history` (all when None, none when 0), oldest first."""
    if limit is None:
        return list(history)
    return list(history)[-limit:] if limit > 0 else []


def fit_prompts(
    examples: Sequence[Example],
    settings: SchemaSettings,
    render: Render,
    encode: Encode,
    *,
    gold: bool = False,
    dialect: str = "sqlite",
    history_turns: int | None = None,
) -> list[FittedPrompt]:
    """The prompt of each example within `settings.budget` tokens, after at most `history_turns` of its
    earlier turns (None: all; see the module docstring)."""
    schemas = [_structured(e, settings) for e in examples]
    hints = [_hints(e, s) if settings.value_hints else {} for e, s in zip(examples, schemas)]
    histories = [recent_turns(e.history, history_turns) for e in examples]
    shown_schemas = []
    for e, schema, found in zip(examples, schemas, hints):
        shown = e.schema
        if found and schema is not None:
            shown = _render(subset(schema, all_items(schema), found), settings, e)
        shown_schemas.append(shown)
    texts = [render(e.question, shown, e.evidence, h) for e, shown, h in zip(examples, shown_schemas, histories)]
    ids = encode(texts)
    out = [
        FittedPrompt(t, i, hints=sum(len(v) for v in h.values()), turns=len(turns))
        for t, i, h, turns in zip(texts, ids, hints, histories, strict=True)
    ]
    if settings.budget is None:
        return out
    for n, (e, schema, found, turns) in enumerate(zip(examples, schemas, hints, histories)):
        if len(out[n].ids) > settings.budget:
            out[n] = _shortened(e, schema, found, shown_schemas[n], turns, settings, render, encode, gold=gold) or (
                FittedPrompt(texts[n], ids[n], fits=False, hints=out[n].hints, turns=len(turns))
            )
    return out


def _shortened(
    example: Example,
    schema: Schema | None,
    hints: Hints,
    shown: str,
    turns: list[Turn],
    settings: SchemaSettings,
    render: Render,
    encode: Encode,
    *,
    gold: bool,
) -> FittedPrompt | None:
    """A prompt over budget made to fit: older turns dropped, then the schema pruned beside the most
    recent turn, then without it (see the module docstring); None when nothing fits."""
    found = _fewer_turns(example, shown, turns, sum(len(v) for v in hints.values()), settings, render, encode)
    found = found or _pruned(example, schema, hints, settings, render, encode, gold=gold, history=turns[-1:])
    if found is None and turns:
        found = _pruned(example, schema, hints, settings, render, encode, gold=gold, history=[])
    return found


def _fewer_turns(
    example: Example,
    shown: str,
    turns: list[Turn],
    hints: int,
    settings: SchemaSettings,
    render: Render,
    encode: Encode,
) -> FittedPrompt | None:
    """The prompt with the whole schema and the most recent earlier turns that fit, at least one; None
    when even one does not."""
    for start in range(1, len(turns)):
        text = render(example.question, shown, example.evidence, turns[start:])
        [ids] = encode([text])
        if settings.budget is None or len(ids) <= settings.budget:
            return FittedPrompt(text, ids, hints=hints, turns=len(turns) - start)
    return None


def _pruned(
    example: Example,
    schema: Schema | None,
    hints: Hints,
    settings: SchemaSettings,
    render: Render,
    encode: Encode,
    *,
    gold: bool,
    history: list[Turn],
) -> FittedPrompt | None:
    """The prompt after `history` with the longest prefix of the priority order that fits; None when
    none does. What the SQL of the most recent turn uses comes first (after the gold SQL's, training)."""
    if schema is None or settings.budget is None:
        return None
    order = priority(schema, example.question, gold_sql=example.sql if gold else None, hinted=hints)
    if history:
        before = gold_part(schema, example.sql) if gold else []
        order = list(dict.fromkeys([*before, *gold_part(schema, history[-1][1]), *order]))
    needed = len(gold_part(schema, example.sql)) if gold else 1

    def attempt(k: int) -> FittedPrompt:
        kept = order[:k]
        schema_text = _render(subset(schema, kept, hints), settings, example)
        text = render(example.question, schema_text, example.evidence, history)
        [ids] = encode([text])
        tables = {t.lower() for t, _ in kept}
        shown = sum(len(v) for (t, _), v in hints.items() if t.lower() in tables)
        return FittedPrompt(text, ids, pruned=True, tables=tables, hints=shown, turns=len(history))

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
            allowed = settings.permissions.get(example.db_id) if settings.permissions else None
            return cached_schema(example.db_path, allowed)
        except DataError:
            pass  # a row whose database is gone is still scored; its text schema is all there is
    return schema_from_ddl(example.schema) if example.schema else None


def _hints(example: Example, schema: Schema | None) -> Hints:
    if schema is None or not example.db_path or schema.db_path is None:
        return {}
    return value_index(example.db_path, schema).match(example.question)


def _render(schema: Schema, settings: SchemaSettings, example: Example) -> str:
    return render_schema(schema, settings.fmt, settings.sample_rows, example.db_path if schema.db_path else None)
