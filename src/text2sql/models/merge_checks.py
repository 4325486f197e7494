"""How a merge is proven: logits of realistic teacher-forced prompts, compared within tolerances
that float rounding passes and a broken merge or a lossy save does not (see `merge`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from text2sql.data import bundled
from text2sql.data.example import Example
from text2sql.data.prompt import PromptBuilder
from text2sql.data.schema import schema_text
from text2sql.errors import Text2SQLError

log = logging.getLogger("text2sql.merge")

# Merged vs adapter model, both float32: W + s·B·A computed once versus x·W + s·(x·A)·B on the fly
# differ only by float32 rounding (unit roundoff 2^-24 = 6e-8) summed over the hidden size and the
# layers: measured 3e-7..5e-7 of the logit scale on the tiny models. A merge that drops a module or
# the LoRA scaling is off by the adapter's whole effect, orders of magnitude more.
FP32_RTOL = 1e-4
# Saved model (reloaded in its dtype) vs float32 merged model. bf16 keeps 8 significant bits (unit
# roundoff 2^-8 = 3.9e-3) and fp16 11 (2^-11 = 4.9e-4), in weights *and* activations, and rounding
# compounds over the layers: measured about 0.5% (bf16) and 0.06% (fp16) of the logit scale on the
# tiny models with a realistic adapter; bf16-vs-fp32 logit gaps of 7B models reach a few percent.
# The rates leave a 20-30x margin for deep models while still failing on what a cast or a save can
# break: overflow to inf/nan (fp16 T5) or lost weights, off by the whole logit scale.
SAVED_RTOL = {"fp32": FP32_RTOL, "bf16": 0.1, "fp16": 0.02}

DEFAULT_VERIFY_COUNT = 4
# Per check example; logits are kept for every position (tokens x vocab x 4 bytes, twice).
MAX_VERIFY_TOKENS = 512


class MergeMismatchError(Text2SQLError):
    """The merged model does not compute what the adapter model computes."""


def verification_examples(cfg=None, count: int = DEFAULT_VERIFY_COUNT) -> list[Example]:
    """Default check examples: the first bundled test question of each database (up to `count`),
    with its schema rendered as the run config says (`data.schema_format`, `data.schema_sample_rows`)."""
    fmt = cfg.data.schema_format if cfg is not None else "sql"
    sample_rows = cfg.data.schema_sample_rows if cfg is not None else 0
    examples: list[Example] = []
    seen: set[str] = set()
    for row in bundled.iter_rows("test"):
        if row["db_id"] in seen:
            continue
        seen.add(row["db_id"])
        path = bundled.db_path(row["db_id"])
        schema = schema_text(path, fmt, sample_rows)
        examples.append(Example(question=row["question"], sql=row["sql"], schema=schema, db_id=row["db_id"]))
        if len(examples) == count:
            break
    return examples


def encode(
    examples: Sequence[Example], tokenizer, *, seq2seq: bool, model_type: str, cfg
) -> tuple[list, list[dict[str, Any]]]:
    """Teacher-forced inputs, built by the one prompt builder with the run's prompt settings."""
    kind = "seq2seq" if seq2seq else "decoder"
    options: dict[str, Any] = {"model_type": model_type}
    if cfg is not None:
        options.update(template=cfg.prompt.template, system=cfg.prompt.system, keep_reasoning=cfg.data.keep_reasoning)
    builder = PromptBuilder(tokenizer, kind, **options)
    items = builder.encode_batch(examples)
    for item in items:
        # Long schemas: the check needs realistic tokens, not every one of them.
        item.input_ids = item.input_ids[:MAX_VERIFY_TOKENS]
        item.labels = item.labels[:MAX_VERIFY_TOKENS]
    prompts = [
        {"question": e.question, "db_id": e.db_id, "tokens": len(i.input_ids) + (len(i.labels) if seq2seq else 0)}
        for e, i in zip(examples, items)
    ]
    return items, prompts


def logits(model, item, seq2seq: bool):
    """Float32 logits of every position of one teacher-forced example (batch of one: no padding)."""
    import torch

    ids = torch.tensor([item.input_ids])
    if seq2seq:
        # T5 shifts the labels right (after its decoder start token) to make the decoder input.
        out = model(input_ids=ids, labels=torch.tensor([item.labels]), use_cache=False)
    else:
        out = model(input_ids=ids, use_cache=False)
    return out.logits[0].float()


def max_abs_diff(a, b) -> float:
    """Largest |a − b|; inf when either holds inf or nan (overflow is a mismatch, never a pass)."""
    import torch

    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return float("inf")
    return float((a - b).abs().max())


MERGE_HINT = (
    "the merged weights do not reproduce the adapter model (float32 cannot hold a LoRA delta millions of "
    "times the base weights; for a sane adapter, please report it with its adapter_config.json)"
)


def saved_hint(dtype: str) -> str:
    if dtype == "fp16":
        return "fp16 overflows on some models (T5 is known for it): merge with --dtype bf16 or fp32"
    if dtype == "bf16":
        return "the model loses too much in bf16: merge with --dtype fp32"
    return "the saved folder does not reload as the merged model (tied or missing weights?)"


def check(what: str, diff: float, tolerance: float, *, hint: str) -> None:
    log.info("%s: largest logit difference %.3g (tolerance %.3g)", what, diff, tolerance)
    if not diff <= tolerance:
        shown = "inf/nan (non-finite logits)" if diff == float("inf") else f"{diff:.3g}"
        raise MergeMismatchError(
            f"merge check failed, {what}: largest logit difference {shown} exceeds {tolerance:.3g}; {hint}"
        )
