"""Teacher-forced loss and perplexity on an evaluation split (seeds 001, 003).

The loss is the mean cross-entropy over target tokens only (labels != -100: the prompt is masked,
exactly as in training), summed over the whole split and divided once by the number of target
tokens, so long and short targets weigh per token, not per example. Perplexity is exp(loss).
Batches are length-sorted; padded labels are -100, so padding changes nothing. As in training, the
vocabulary projection runs on target positions only, in chunks (`text2sql.training.answer_loss`),
for models whose head is a plain projection.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from text2sql.data.example import Example
from text2sql.data.prompt import IGNORE_INDEX, PromptBuilder
from text2sql.evaluation.evalset import EvalRow
from text2sql.inference.generate import length_sorted_batches, pad_batch
from text2sql.progress import progress as progress_bar
from text2sql.training.answer_loss import answer_outputs, head_is_linear, unwrap


def encode_rows(
    rows: Sequence[EvalRow], builder: PromptBuilder, *, use_prepared: bool
) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per row: the prepared ids when `use_prepared` and present, else encoded
    with the PromptBuilder."""
    out: list[tuple[list[int], list[int]] | None] = [None] * len(rows)
    todo = []
    for i, row in enumerate(rows):
        if use_prepared and row.input_ids is not None and row.labels is not None:
            out[i] = (list(row.input_ids), list(row.labels))
        else:
            todo.append(i)
    if todo:
        examples = [
            Example(
                question=rows[i].question,
                sql=rows[i].sql,
                schema=rows[i].schema,
                evidence=rows[i].evidence,
                reasoning=rows[i].reasoning,
                db_path=rows[i].db_path,
                history=rows[i].history,
            )
            for i in todo
        ]
        for i, encoded in zip(todo, builder.encode_batch(examples)):
            out[i] = (encoded.input_ids, encoded.labels)
    return out  # type: ignore[return-value]


def _accepts(model: Any, name: str) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return name in inspect.signature(base.forward).parameters


def teacher_forced_loss(
    model: Any,
    kind: str,
    encoded: Sequence[tuple[list[int], list[int]]],
    *,
    pad_id: int,
    batch_size: int = 16,
    progress: bool = False,
) -> dict[str, Any]:
    """{"loss", "perplexity", "num_tokens"} over all target tokens of `encoded`."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    if head_is_linear(model):
        return _answer_only_loss(model, encoded, pad_id=pad_id, batch_size=batch_size, progress=progress)
    # Decoders: left padding puts every row's target at the end, so only the last positions need
    # logits (`logits_to_keep`); the vocabulary projection over the prompt is most of a tiny
    # model's forward pass. Position ids follow the mask, as in generation.
    trim = kind == "decoder" and _accepts(model, "logits_to_keep") and _accepts(model, "position_ids")
    total, tokens = 0.0, 0
    batches = length_sorted_batches([len(ids) for ids, _ in encoded], batch_size)
    bar = progress_bar(len(batches), "loss", unit="batch", enabled=progress)
    with torch.inference_mode():
        for batch in batches:
            side = "left" if trim else "right"
            ids, mask = pad_batch([encoded[i][0] for i in batch], pad_id, side=side)
            labels, _ = pad_batch([encoded[i][1] for i in batch], IGNORE_INDEX, side=side)
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            if kind == "seq2seq":
                logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
                targets = labels
            elif trim:
                span = max(_target_span(encoded[i][1]) for i in batch)
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = model(
                    input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=span + 1
                ).logits[:, :-1]
                targets = labels[:, -span:] if span else labels[:, :0]
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                targets = labels[:, 1:]
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(),
                targets.reshape(-1),
                ignore_index=IGNORE_INDEX,
                reduction="sum",
            ).item()
            tokens += int((targets != IGNORE_INDEX).sum())
            bar.update(1)
    bar.close()
    return _result(total, tokens)


def _answer_only_loss(model: Any, encoded, *, pad_id: int, batch_size: int, progress: bool) -> dict[str, Any]:
    """The same loss with the head applied to target positions only, a chunk at a time."""
    import torch

    base = unwrap(model)  # LoRA layers sit inside the base model: its body runs them
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    batches = length_sorted_batches([len(ids) for ids, _ in encoded], batch_size)
    bar = progress_bar(len(batches), "loss", unit="batch", enabled=progress)
    with torch.inference_mode():
        for batch in batches:
            ids, mask = pad_batch([encoded[i][0] for i in batch], pad_id, side="right")
            labels, _ = pad_batch([encoded[i][1] for i in batch], IGNORE_INDEX, side="right")
            out = answer_outputs(
                base, input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)
            )
            total -= float(out.log_probs.sum())
            tokens += int(out.label_mask.sum())
            bar.update(1)
    bar.close()
    return _result(total, tokens)


def _result(total: float, tokens: int) -> dict[str, Any]:
    if tokens == 0:
        return {"loss": None, "perplexity": None, "num_tokens": 0}
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "num_tokens": tokens}


def _target_span(labels: Sequence[int]) -> int:
    """Positions from the first target token to the end (prompt tokens are IGNORE_INDEX)."""
    for i, label in enumerate(labels):
        if label != IGNORE_INDEX:
            return len(labels) - i
    return 0
