"""The chat messages an endpoint is asked: the same system prompt, schema (rendered in the configured
format, pruned to the budget, with value hints) and question a fine-tuned model is given.

    builder = endpoint_builder(dialect="postgres")           # standalone: the defaults, whole schemas
    builder = load_for_inference(model, load_weights=False).builder   # exactly a fine-tuned model's prompt
    conversations = endpoint_messages(builder, examples)

With a fine-tuned model's builder the schema is pruned against that model's token budget, so the
messages rendered with its chat template are exactly its prompt. Standalone there is no tokenizer:
the prompt settings are the defaults of a fresh config (`prompt.system`, `data.schema_format`,
`data.value_hints`), and the schema is shown whole, since hosted models read far longer prompts
than small ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from text2sql.config import Config
from text2sql.data.context import SchemaSettings, fit_prompts
from text2sql.data.example import Example, Turn
from text2sql.data.prompt import PromptBuilder, resolve_dialect, user_message

Messages = list[dict[str, str]]


def endpoint_builder(cfg: Config | None = None, *, dialect: str | None = None) -> PromptBuilder:
    """A prompt builder without a tokenizer: `cfg`'s prompt and schema settings (default: a fresh
    config's), no token budget, `dialect` (default: the config's)."""
    cfg = cfg or Config()
    d = cfg.data
    return PromptBuilder(
        None,
        "decoder",
        template="plain",
        system=cfg.prompt.system,
        keep_reasoning=d.keep_reasoning,
        dialect=dialect or resolve_dialect(cfg),
        schema=SchemaSettings(d.schema_format, d.schema_sample_rows, d.value_hints, None),
        history_turns=cfg.prompt.history_turns,
    )


def endpoint_messages(builder: PromptBuilder, examples: Sequence[Example]) -> list[Messages]:
    """Each example's messages (`builder.messages`) with the schema `builder.fit` shows it. Every
    example gets its messages, also one whose prompt is over the budget even pruned (it is shown its
    whole schema: an endpoint reads more)."""
    parts: dict[str, tuple[str, str, str | None, Sequence[Turn]]] = {}

    if builder.tokenizer is None or builder.schema.budget is None:
        settings = SchemaSettings(builder.schema.fmt, builder.schema.sample_rows, builder.schema.value_hints, None)

        def render(question: str, schema: str, evidence: str | None, history: Sequence[Turn]) -> str:
            text = user_message(question, schema, evidence, history)
            parts[text] = (question, schema, evidence, history)
            return text

        fitted = fit_prompts(
            examples, settings, render, _no_ids, dialect=builder.dialect, history_turns=builder.history_turns
        )
    else:

        def render(question: str, schema: str, evidence: str | None, history: Sequence[Turn]) -> str:
            text = builder.prompt_text(question, schema, evidence, history)
            parts[text] = (question, schema, evidence, history)
            return text

        fitted = fit_prompts(
            examples,
            builder.schema,
            render,
            builder.encode_prompts,
            dialect=builder.dialect,
            history_turns=builder.history_turns,
        )
    return [builder.messages(*parts[f.text]) for f in fitted]


def _no_ids(texts: Sequence[str]) -> list[list[int]]:
    """Token ids are only counted against a budget; without one none are needed."""
    return [[] for _ in texts]
