"""Shared-prefix batching for decoder generation: compute the schema once, not once per row.

Prompts over one database start with the same tokens (system prompt + schema, often hundreds of
tokens) and differ only in the question. `group_prompts` sorts prompts token-wise and groups those
that share most of their tokens. Greedy decoding (`greedy`, `decoding`) runs each group's prefix
through the model once, keeps its KV cache once while the group's rows decode, and prefills only
each row's own suffix (`prefix_attention`), rows of several groups decoding together.

Sampling and beam search go through transformers' `generate` with batches from `plan_batches`:
there the shared prefix is run once per batch and its KV cache repeated for every row, rows laid out
as

    [shared prefix | padding | own suffix]        attention mask: [1..1 | 0..0 | 1..1]

so the prefix sits at the same cache slots in every row. transformers derives position ids from
the attention mask during generation, so each suffix continues right after the prefix, exactly as
without padding. With no shared prefix the layout is ordinary left padding.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# A shorter shared prefix saves less than the extra forward call costs.
MIN_SHARED_TOKENS = 16


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own (generation needs
    one uncached input token); 0 when that is under MIN_SHARED_TOKENS."""
    first = prompts[0]
    length = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        length = min(length, common_prefix_length(first, p))
    return length if length >= MIN_SHARED_TOKENS else 0


@dataclass
class Group:
    """Prompts that share their first `prefix` tokens (0: too few to be worth sharing), as indices,
    the longest suffix first (so the rows of one batch pad to nearly the same length)."""

    prefix: int
    rows: list[int]


def group_prompts(prompt_ids: Sequence[Sequence[int]]) -> list[Group]:
    """Every prompt in exactly one group. Prompts are sorted token-wise, so prompts with a common
    prefix are neighbours, and cut into groups whose members share at least half their tokens with
    the group's first prompt; a group's prefix is what all its members share (`shared_prefix`), and
    0 for a prompt alone (computing its prefix apart would save nothing)."""
    groups: list[Group] = []
    for members in _prefix_runs(prompt_ids):
        prefix = shared_prefix([prompt_ids[i] for i in members]) if len(members) > 1 else 0
        groups.append(Group(prefix, sorted(members, key=lambda i: -len(prompt_ids[i]))))
    return groups


def _prefix_runs(prompt_ids: Sequence[Sequence[int]]) -> list[list[int]]:
    order = sorted(range(len(prompt_ids)), key=lambda i: list(prompt_ids[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and 2 * common_prefix_length(prompt_ids[groups[-1][0]], prompt_ids[i]) >= len(prompt_ids[i]):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def plan_batches(prompt_ids: Sequence[Sequence[int]], batch_size: int) -> list[tuple[list[int], int]]:
    """(row indices, shared prefix length) per batch.

    Prompts are sorted token-wise, so prompts with a common prefix are neighbours, and cut into
    groups whose members share at least half their tokens with the group's first prompt. Each group
    is length-sorted and cut into batches; groups too small to fill half a batch are pooled and
    batched by length instead (they still share whatever prefix, such as the system prompt, they
    have in common).
    """
    groups = _prefix_runs(prompt_ids)
    batches, pool = [], []
    for group in groups:
        if 2 * len(group) < batch_size and len(group) < len(prompt_ids):
            pool.extend(group)
            continue
        batches.extend(_chunks(group, prompt_ids, batch_size))
    batches.extend(_chunks(pool, prompt_ids, batch_size))
    return [(batch, shared_prefix([prompt_ids[i] for i in batch])) for batch in batches]


def _chunks(indices: list[int], prompt_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    ordered = sorted(indices, key=lambda i: -len(prompt_ids[i]))
    return [ordered[k : k + batch_size] for k in range(0, len(ordered), batch_size)]


def supports_prefix_sharing(model: Any) -> bool:
    """Decoder models whose forward takes position ids and a KV cache (every transformers LLM; the
    cache argument is `cache` from transformers 5, `past_key_values` before)."""
    base = base_model(model)
    config = getattr(base, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return False
    params = inspect.signature(base.forward).parameters
    return "position_ids" in params and ("cache" in params or "past_key_values" in params)


def cache_kwarg(model: Any) -> str:
    """The name a model's forward (and `generate`) takes its KV cache under, and its output returns
    it under: `cache` from transformers 5, `past_key_values` before."""
    base = base_model(model)
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (the model itself when unwrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def last_logits_only(model: Any) -> dict[str, int]:
    """The forward keyword that computes logits for the last position only, where the model takes it:
    the vocabulary projection of every other position is work thrown away."""
    params = inspect.signature(base_model(model).forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}


def layout(prompts: Sequence[Sequence[int]], prefix: int, pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) as [prefix | padding | suffix]; prefix 0 is left padding."""
    import torch

    suffixes = [p[prefix:] for p in prompts]
    width = prefix + max(len(s) for s in suffixes)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    if prefix:
        ids[:, :prefix] = torch.as_tensor(list(prompts[0][:prefix]), dtype=torch.long)
        mask[:, :prefix] = 1
    for row, suffix in enumerate(suffixes):
        if suffix:
            ids[row, width - len(suffix) :] = torch.as_tensor(list(suffix), dtype=torch.long)
            mask[row, width - len(suffix) :] = 1
    return ids, mask


def prefix_cache(model: Any, ids: Any, prefix: int, rows: int):
    """The KV cache of the first `prefix` tokens of `ids[0]`, repeated for `rows` rows."""
    # Only the cache is needed: skip the vocabulary projection over the prefix where possible.
    cache = getattr(model(input_ids=ids[:1, :prefix], use_cache=True, **last_logits_only(model)), cache_kwarg(model))
    cache.batch_repeat_interleave(rows)
    return cache
