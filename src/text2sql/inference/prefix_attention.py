"""Attention over a prompt prefix stored once per group of rows, plus each row's own tokens.

Prompts over one database share their first few hundred tokens (system prompt + schema). Repeating
that prefix's keys and values for every row of a batch, as a plain KV cache does, makes every
decoding step copy and attend over rows x prefix entries. Here a cache keeps each group's prefix
once, shape (kv heads, prefix, head dim), and each row's own tokens (its question, then its answer)
in a preallocated buffer that a forward writes into, with no concatenation: `SplitCache` for rows
prefilled together (right-aligned, one column a step), `RowCache` for rows decoding one token a
step, each at its own column, rows joining and leaving between steps. `split_attention` scores a
row's queries against its group's prefix with one matrix product per group and against its own
buffer, and takes one softmax over both: the same attention a plain cache computes, without the
copies.

The model's own layers run unchanged: the attention implementation is swapped by name for the
duration of a call (`attention_swapped`) and the cache is duck-typed (`update` is all the layers
call). Whether a model computes the same logits this way is checked on a probe before it is used
(`greedy.supports_split_attention`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

ATTENTION_NAME = "text2sql_split_prefix"
# Keyword argument the state travels under, from the model's forward down to every attention call.
STATE_KWARG = "split_cache"

_registered = False
_swap_lock = threading.RLock()


@dataclass
class Segment:
    """Rows start..stop of a batch (contiguous) share one prefix: its keys and values per layer,
    each (kv heads, prefix tokens, head dim)."""

    start: int
    stop: int
    keys: list[Any]
    values: list[Any]

    @property
    def length(self) -> int:
        return int(self.keys[0].shape[1]) if self.keys else 0


class SplitCache:
    """The KV cache of one batch: shared prefixes (`segments`) and each row's own tokens.

    `own_keys[layer]` is (rows, kv heads, capacity, head dim); a forward writes its tokens at columns
    `start`..`start + q` of every row (`begin`). `prefix_width` is the longest prefix in the batch:
    scores are laid out as [prefix (padded to prefix_width) | own columns]."""

    def __init__(self, segments: list[Segment], capacity: int):
        self.segments = segments
        self.capacity = capacity
        self.prefix_width = max((s.length for s in segments), default=0)
        self.own_keys: list[Any] = []
        self.own_values: list[Any] = []
        self.start = 0

    def begin(self, start: int) -> None:
        """The next forward's tokens go to columns from `start` on."""
        self.start = start

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Store the new keys and values (rows, kv heads, q, head dim); return the row buffers up to
        and including them."""
        if layer_idx == len(self.own_keys):
            rows, heads, _, dim = key_states.shape
            # Left uninitialised: a column is written before any query reads it.
            shape = (rows, heads, self.capacity, dim)
            self.own_keys.append(key_states.new_empty(shape))
            self.own_values.append(value_states.new_empty(shape))
        stop = self.start + key_states.shape[2]
        keys, values = self.own_keys[layer_idx], self.own_values[layer_idx]
        keys[:, :, self.start : stop] = key_states
        values[:, :, self.start : stop] = value_states
        return keys[:, :, :stop], values[:, :, :stop]


class RowCache:
    """The KV cache of rows decoding one token a step, rows joining and leaving between steps.

    Each row's own tokens sit left-aligned in `own_keys[layer]` (slots, kv heads, capacity, head
    dim); `columns[row]` is the column its next token is written to, so rows of different lengths
    step together and a row that joins takes any free slot without moving the others. Attention reads
    the first `width` columns, masked per row. `segments` as in `SplitCache`."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.prefix_width = 0
        self.own_keys: list[Any] = []
        self.own_values: list[Any] = []
        self.columns: Any = None
        self.width = 0

    @property
    def capacity(self) -> int:
        return int(self.own_keys[0].shape[2]) if self.own_keys else 0

    def reserve(self, like: SplitCache, slots: int, capacity: int) -> None:
        """Buffers for `slots` rows of at least `capacity` columns, shaped and typed as `like`'s; what
        is stored is kept (in the first columns of a larger buffer)."""
        if self.own_keys and self.capacity >= capacity and self.own_keys[0].shape[0] >= slots:
            return
        for mine, theirs in ((self.own_keys, like.own_keys), (self.own_values, like.own_values)):
            for layer, buffer in enumerate(theirs):
                _, heads, _, dim = buffer.shape
                # Zeros, not left uninitialised: a row reads the columns up to the longest row's, and
                # masked scores only vanish when what they multiply is finite (0 x NaN is NaN).
                grown = buffer.new_zeros((slots, heads, max(capacity, self.capacity), dim))
                if layer < len(mine):
                    old = mine[layer]
                    grown[: old.shape[0], :, : old.shape[2]] = old
                    mine[layer] = grown
                else:
                    mine.append(grown)

    def place(self, slot: int, source: SplitCache, row: int, first: int, last: int) -> None:
        """Copy `source`'s row `row`, columns first..last-1, into slot `slot` from column 0."""
        for mine, theirs in ((self.own_keys, source.own_keys), (self.own_values, source.own_values)):
            for layer, buffer in enumerate(theirs):
                mine[layer][slot, :, : last - first] = buffer[row, :, first:last]

    def keep(self, index: Any, width: int) -> None:
        """Keep the rows at `index` (in order), their first `width` columns, moved to the front."""
        for buffers in (self.own_keys, self.own_values):
            for buffer in buffers:
                buffer[: len(index), :, :width] = buffer[index, :, :width]

    def set_segments(self, segments: list[Segment]) -> None:
        self.segments = segments
        self.prefix_width = max((s.length for s in segments), default=0)

    def begin(self, columns: Any) -> None:
        """The next step writes row r's token at column `columns[r]`; attention reads the columns up
        to the largest."""
        self.columns = columns
        self.width = int(columns.max()) + 1

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """Store one token's keys and values per row (rows, kv heads, 1, head dim); return the rows'
        buffers up to `width`."""
        import torch

        rows = key_states.shape[0]
        keys, values = self.own_keys[layer_idx], self.own_values[layer_idx]
        index = torch.arange(rows, device=keys.device)
        keys[index, :, self.columns] = key_states[:, :, 0]
        values[index, :, self.columns] = value_states[:, :, 0]
        return keys[:rows, :, : self.width], values[:rows, :, : self.width]


def split_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """softmax(q · [prefix keys | own keys]) · [prefix values | own values], per row.

    `query` is (rows, heads, q, head dim), `key`/`value` the own buffers (rows, kv heads, width,
    head dim), `attention_mask` additive (rows, 1, q, width) over the own columns. Grouped-query
    heads share their key/value head without being repeated. Returns (rows, q, heads, head dim)."""
    import torch

    cache: SplitCache | RowCache = kwargs[STATE_KWARG]
    window = kwargs.get("sliding_window")
    if window is not None and cache.prefix_width + key.shape[2] > window:
        raise RuntimeError("split attention does not implement sliding windows longer prompts reach")
    layer = module.layer_idx
    rows, heads, q_len, dim = query.shape
    kv_heads, width = key.shape[1], key.shape[2]
    rep = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    # Query heads kv*rep .. kv*rep + rep - 1 read kv head kv: group them so no key is repeated.
    grouped = query.reshape(rows, kv_heads, rep * q_len, dim)
    own = torch.matmul(grouped, key.transpose(-1, -2)).view(rows, kv_heads, rep, q_len, width) * scale
    own = own + attention_mask[:, :, None]
    prefix = cache.prefix_width
    segments = [seg for seg in cache.segments if seg.length]
    if len(segments) == 1 and segments[0].stop - segments[0].start == rows:
        # One prefix for every row (a batch over one database): no padding between the two parts.
        shared = _prefix_scores(grouped, segments[0].keys[layer], rep, q_len, scale)
        scores = torch.cat([shared.float(), own.float()], dim=-1)
    elif prefix:
        shape = (rows, kv_heads, rep, q_len, prefix + width)
        scores = torch.full(shape, torch.finfo(torch.float32).min, dtype=torch.float32, device=own.device)
        scores[..., prefix:] = own
        for seg in segments:
            scores[seg.start : seg.stop, ..., : seg.length] = _prefix_scores(
                grouped[seg.start : seg.stop], seg.keys[layer], rep, q_len, scale
            )
    else:
        scores = own.float()
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs[..., prefix:].reshape(rows, kv_heads, rep * q_len, width), value)
    for seg in segments:
        n = seg.stop - seg.start
        part = probs[seg.start : seg.stop, ..., : seg.length].transpose(0, 1).reshape(kv_heads, n * rep * q_len, -1)
        from_prefix = torch.matmul(part, seg.values[layer]).view(kv_heads, n, rep * q_len, dim).transpose(0, 1)
        out[seg.start : seg.stop] += from_prefix
    return out.view(rows, heads, q_len, dim).transpose(1, 2).contiguous(), None


def _prefix_scores(grouped: Any, keys: Any, rep: int, q_len: int, scale: float) -> Any:
    """Scores of one segment's rows against its prefix, one matrix product per kv head:
    (n, kv heads, rep * q, dim) x (kv heads, prefix, dim) -> (n, kv heads, rep, q, prefix)."""
    import torch

    n, kv_heads, _, dim = grouped.shape
    flat = grouped.transpose(0, 1).reshape(kv_heads, n * rep * q_len, dim)
    scores = torch.matmul(flat, keys.transpose(-1, -2)) * scale
    return scores.view(kv_heads, n, rep, q_len, -1).transpose(0, 1)


def register() -> None:
    """Make `split_attention` known to transformers under ATTENTION_NAME (once per process)."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface

        AttentionInterface.register(ATTENTION_NAME, split_attention)
        _registered = True


@contextmanager
def attention_swapped(model: Any) -> Iterator[None]:
    """`model` (and its sub-configs) attend with `split_attention` inside the block, as before after.

    The swap is on the model's config, so other calls into the same model in the meantime would
    see it too: generation holds a lock, and the model is not for use by other threads meanwhile."""
    register()
    config = model.config
    with _swap_lock:
        before = config._attn_implementation
        config._attn_implementation = ATTENTION_NAME
        try:
            yield
        finally:
            config._attn_implementation = before
