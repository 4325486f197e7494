"""Teacher-forced loss and perplexity on an evaluation split (seeds 001, 003).

The loss is the mean cross-entropy over target tokens only (labels != -100: the prompt is masked,
exactly as in training), summed over the whole split and divided once by the number of target
tokens, so long and short targets weigh per token, not per example. Perplexity is exp(loss).
Batches are length-sorted and padded on the right (labels padded with -100), so padding changes
nothing.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from text2sql.data.example import Example
from text2sql.data.prompt import IGNORE_INDEX, PromptBuilder
from text2sql.evaluation.evalset import EvalRow
from text2sql.evaluation.generate import length_sorted_batches, pad_batch


def encode_rows(rows: Sequence[EvalRow], builder: PromptBuilder, *, use_prepared: bool) -> list[tuple[list[int], list[int]]]:
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
            Example(question=rows[i].question, sql=rows[i].sql, schema=rows[i].schema,
                    evidence=rows[i].evidence, reasoning=rows[i].reasoning)
            for i in todo
        ]
        for i, encoded in zip(todo, builder.encode_batch(examples)):
            out[i] = (encoded.input_ids, encoded.labels)
    return out  # type: ignore[return-value]


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
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    batches = length_sorted_batches([len(ids) for ids, _ in encoded], batch_size)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="loss", unit="batch", disable=not progress, leave=False):
            ids, mask = pad_batch([encoded[i][0] for i in batch], pad_id, side="right")
            labels, _ = pad_batch([encoded[i][1] for i in batch], IGNORE_INDEX, side="right")
            ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
            if kind == "seq2seq":
                logits = model(input_ids=ids, attention_mask=mask, labels=labels).logits
                targets = labels
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
                targets = labels[:, 1:]
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum",
            ).item()
            tokens += int((targets != IGNORE_INDEX).sum())
    if tokens == 0:
        return {"loss": None, "perplexity": None, "num_tokens": 0}
    loss = total / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "num_tokens": tokens}
