"""The forwards of greedy decoding with shared prefixes: a batch's prefill, and rows decoding
together, joining as others finish.

`DecodingBatch` runs rows' own tokens (each prompt after its group's prefix) through the model in
one forward, right-aligned over a `SplitCache`: how a group's prefix is computed (`prefix_kv`) and
how rows enter decoding. `Decoder` keeps up to `batch_size` rows decoding one token a step over a
`RowCache`: when a quarter of its rows have finished and prompts wait, the finished rows are dropped
and waiting prompts are prefilled into their places, so steps stay full until the prompts run out
(each step costs about as much for a few rows as for a full batch: the weights are read either way).
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from text2sql.inference import prefix as shared
from text2sql.inference.prefix_attention import STATE_KWARG, RowCache, Segment, SplitCache

# Near-ties: a step whose two best logits are closer than this (relative to the largest logit
# magnitude, at least 1) is decided by rounding, which the two ways of adding up attention do
# differently. The largest gap between them measured on tiny Llama (prompt-dependent weights) and
# SmolLM2-135M over 4,000 steps was 6.4e-6; the bound leaves a margin of about 5x. A row that meets
# a near-tie is answered the per-example way instead. Half precision has no such bound: there
# batched and per-example decoding differ in rounding anyway.
TIE_TOLERANCE = {"float32": 3e-5, "float64": 1e-12}

# A row decoding keeps only its own tokens' keys and values, not its prefix's: in the memory that
# `batch_size` whole prompts would take, several times as many rows decode (up to this many times),
# and each step, which reads all the weights whatever the rows, serves more of them.
MAX_ROWS_PER_BATCH_ROW = 4

# An answer: its token ids, and each one's log-probability when asked for.
Answer = tuple[list[int], list[float] | None]


class DecodingBatch:
    """Rows prefilled together: each row's own tokens (`own`, the prompt after its group's prefix)
    right-aligned, so every row's next token lands in the same column; `starts` are the rows' first
    positions (their prefix lengths)."""

    def __init__(
        self,
        model: Any,
        own: Sequence[Sequence[int]],
        starts: Sequence[int],
        segments: list[Segment],
        max_new_tokens: int,
        pad_id: int,
    ):
        import torch

        self.model = model
        device = next(model.parameters()).device
        rows, width = len(own), max(len(tokens) for tokens in own)
        ids = torch.full((rows, width), pad_id, dtype=torch.long)
        positions = torch.zeros((rows, width), dtype=torch.long)
        columns = torch.ones((rows, width + max_new_tokens - 1), dtype=torch.bool)
        for row, (tokens, start) in enumerate(zip(own, starts)):
            pad = width - len(tokens)
            ids[row, pad:] = torch.as_tensor(list(tokens), dtype=torch.long)
            positions[row] = start
            positions[row, pad:] += torch.arange(len(tokens))
            columns[row, :pad] = False
        # A padding position attends to itself only, so no row of scores is empty (no NaN).
        allowed = torch.ones((width, width), dtype=torch.bool).tril() & (
            columns[:, None, :width] | torch.eye(width, dtype=torch.bool)
        )
        blocked = torch.finfo(torch.float32).min
        self.ids, self.positions = ids.to(device), positions.to(device)
        self.prefill_mask = torch.zeros(allowed.shape).masked_fill(~allowed, blocked)[:, None].to(device)
        self.step_mask = torch.zeros(columns.shape).masked_fill(~columns, blocked)[:, None, None].to(device)
        self.next_position = (positions[:, -1] + 1).to(device)
        self.cache = SplitCache(segments, columns.shape[1])
        self.filled = 0

    def prefill(self, want_logits: bool = True) -> Any:
        """Run every row's own tokens; the logits of each row's last one, (rows, vocabulary)."""
        self.cache.begin(0)
        logits = forward(self.model, self.cache, self.ids, self.positions, self.prefill_mask, want_logits)
        self.filled = self.ids.shape[1]
        return logits

    def step(self, tokens: Any) -> Any:
        """Feed one token per row (rows,); the logits that follow it."""
        self.cache.begin(self.filled)
        mask = self.step_mask[..., : self.filled + 1]
        logits = forward(self.model, self.cache, tokens[:, None], self.next_position[:, None], mask, True)
        self.filled += 1
        self.next_position = self.next_position + 1
        return logits


def prefix_kv(model: Any, tokens: Sequence[int]) -> tuple[list[Any], list[Any]]:
    """The keys and values of `tokens` (positions 0..n-1) per layer, each (kv heads, n, head dim).
    Call with split attention in place (`attention_swapped`)."""
    batch = DecodingBatch(model, [list(tokens)], [0], [], 1, 0)
    batch.prefill(want_logits=False)
    cache = batch.cache
    return [k[0, :, : len(tokens)] for k in cache.own_keys], [v[0, :, : len(tokens)] for v in cache.own_values]


def forward(model: Any, cache: Any, ids: Any, positions: Any, mask: Any, want_logits: bool) -> Any:
    """One forward over `cache` (split attention in place); the last position's logits per row."""
    known = _kwargs(model)
    kwargs = {known["cache"]: cache, STATE_KWARG: cache, **known["keep"]}
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
    return out.logits[:, -1] if want_logits else None


def decoding_rows(
    prompts: Sequence[Sequence[int]], groups: Sequence[shared.Group], batch_size: int, max_new_tokens: int
) -> int:
    """How many rows decode at once: as many as fit in the key/value memory of `batch_size` rows
    holding the longest whole prompt and answer (what `batch_size` bounds where every row keeps its
    prefix), each row here holding the longest own part and answer (`rows_at_once`)."""
    whole = max(len(p) for p in prompts) + max_new_tokens
    own = max(len(prompts[i]) - group.prefix for group in groups for i in group.rows) + max_new_tokens
    return rows_at_once(batch_size, whole, own)


def rows_at_once(batch_size: int, whole: int, own: int) -> int:
    """`batch_size` x whole / own tokens a row holds, at least `batch_size`, at most
    MAX_ROWS_PER_BATCH_ROW times it."""
    return max(batch_size, min(MAX_ROWS_PER_BATCH_ROW * batch_size, batch_size * whole // max(1, own)))


DROP, ADMIT = "drop", "admit"


def next_move(waiting: bool, live: int, rows: int, slots: int) -> str | None:
    """What `Decoder` does before a step, with `rows` slots taken of `slots`, `live` of them still
    answering: ADMIT (drop the finished rows, then prefill waiting prompts into the free slots) once a
    quarter of the slots are free or none is live; DROP the finished rows alone once they are a
    quarter of the rows; else None (finished rows keep running: moving the others costs more)."""
    if waiting and (slots - live >= max(1, slots // 4) or not live):
        return ADMIT
    dead = rows - live
    return DROP if dead and 4 * dead >= rows else None


def decoding_steps(answers: Sequence[int], slots: int) -> list[int]:
    """The rows in each decoding step `Decoder` takes for answers of these lengths (in tokens, in the
    order the rows are admitted), `slots` rows at once: what the time of decoding follows, for an
    estimate before any row runs (`next_move` decides for both). Finished rows count until they are
    dropped, as they run."""
    waiting = deque(answers)
    left: list[int] = []  # per slot, the tokens its row has still to generate (0: finished)
    steps: list[int] = []
    while waiting or any(left):
        move = next_move(bool(waiting), sum(1 for n in left if n), len(left), slots)
        if move:
            left = [n for n in left if n]
        if move == ADMIT:
            while waiting and len(left) < slots:
                left.append(max(0, waiting.popleft() - 1))  # the prefill yields each row's first token
        if any(left):
            steps.append(len(left))
            left = [max(0, n - 1) for n in left]
    return steps


@dataclass
class Row:
    """A prompt decoding in a slot: its group, first position (prefix length), own columns so far."""

    prompt: int
    group: int
    start: int
    length: int
    live: bool = True
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class Decoder:
    """Greedy answers of `prompts`, up to `batch_size` rows decoding at once, each group's prefix
    computed once and kept while its rows decode. `run` returns each prompt's tokens (ending at its
    first stop id, else `max_new_tokens` long), with their log-probabilities when asked, or None for
    a prompt that met a near-tie (`TIE_TOLERANCE`). Call with split attention in place."""

    def __init__(
        self,
        model: Any,
        prompts: Sequence[Sequence[int]],
        groups: Sequence[shared.Group],
        *,
        batch_size: int,
        stops: set[int],
        pad_id: int,
        with_logprobs: bool = False,
        on_done: Callable[[int], None] | None = None,
    ):
        import torch

        self.model, self.prompts, self.groups = model, prompts, groups
        self.batch_size, self.pad_id, self.with_logprobs = batch_size, pad_id, with_logprobs
        self.on_done = on_done
        self.device = next(model.parameters()).device
        self.stop_ids = torch.tensor(sorted(stops), dtype=torch.long, device=self.device)
        # Rows are admitted in group order and keep it, so each group's rows are one run of slots.
        self.waiting = deque((g, i) for g, group in enumerate(groups) for i in group.rows)
        self.prefixes: dict[int, tuple[list[Any], list[Any]]] = {}
        self.rows: list[Row] = []
        self.pending: Any = None  # each slot's token to feed next
        self.cache = RowCache()
        self.answers: list[Answer | None] = [None] * len(prompts)
        self.max_new_tokens = 0

    def run(self, max_new_tokens: int) -> list[Answer | None]:
        self.max_new_tokens = max_new_tokens
        while self.waiting or self.live:
            move = next_move(bool(self.waiting), self.live, len(self.rows), self.batch_size)
            if move:
                self._drop_finished()
            if move == ADMIT:
                self._admit(min(self.batch_size - len(self.rows), len(self.waiting)))
            if self.live:
                self._choose(self._step(), 0)
        return self.answers

    @property
    def live(self) -> int:
        return sum(row.live for row in self.rows)

    def _admit(self, count: int) -> None:
        """Prefill the next `count` waiting prompts together and give each a slot after the rows
        decoding."""
        taken = [self.waiting.popleft() for _ in range(count)]
        segments: list[Segment] = []
        for n, (g, i) in enumerate(taken):
            prefix = self.groups[g].prefix
            if prefix and g not in self.prefixes:
                self.prefixes[g] = prefix_kv(self.model, self.prompts[i][:prefix])
            if segments and taken[n - 1][0] == g:
                segments[-1].stop += 1
            else:
                keys, values = self.prefixes.get(g, ([], []))
                segments.append(Segment(n, n + 1, keys, values))
        own = [self.prompts[i][self.groups[g].prefix :] for g, i in taken]
        batch = DecodingBatch(self.model, own, [self.groups[g].prefix for g, _ in taken], segments, 1, self.pad_id)
        logits = batch.prefill()
        first = len(self.rows)
        self.cache.reserve(batch.cache, self.batch_size, max(map(len, own)) + self.max_new_tokens)
        width = batch.ids.shape[1]
        for n, ((g, i), tokens) in enumerate(zip(taken, own)):
            self.cache.place(first + n, batch.cache, n, width - len(tokens), width)
            self.rows.append(Row(i, g, self.groups[g].prefix, len(tokens)))
        self._set_segments()
        self._choose(logits, first)

    def _step(self) -> Any:
        """Feed each slot its pending token; the logits that follow, (slots, vocabulary)."""
        import torch

        lengths = torch.tensor([row.length for row in self.rows], device=self.device)
        starts = torch.tensor([row.start for row in self.rows], device=self.device)
        self.cache.begin(lengths)
        columns = torch.arange(self.cache.width, device=self.device)
        blocked = torch.finfo(torch.float32).min
        mask = torch.zeros((len(self.rows), self.cache.width), device=self.device)
        mask = mask.masked_fill(columns[None, :] > lengths[:, None], blocked)[:, None, None]
        logits = forward(self.model, self.cache, self.pending[:, None], (starts + lengths)[:, None], mask, True)
        for row in self.rows:
            # A finished row still runs until it is dropped: it rewrites its own next column.
            row.length += row.live
        return logits

    def _choose(self, logits: Any, first: int) -> None:
        """Greedy picks for slots first.. from their logits: each live row records its token and
        finishes at a stop id, a near-tie or `max_new_tokens`."""
        import torch

        tolerance = TIE_TOLERANCE.get(str(logits.dtype).removeprefix("torch."))
        if tolerance is None:
            chosen = logits.argmax(dim=-1)
            tied = torch.zeros_like(chosen, dtype=torch.bool)
        else:
            # The best two in one pass; where they are equal the row is a near-tie anyway, so which
            # of them topk puts first does not matter.
            best, index = logits.topk(2, dim=-1)
            chosen = index[:, 0]
            scale = torch.maximum(best[:, 0].abs(), logits.amin(dim=-1).abs()).clamp(min=1.0)
            tied = best[:, 0] - best[:, 1] <= tolerance * scale
        finishing = torch.isin(chosen, self.stop_ids)
        picked: list[float] | None = None
        if self.with_logprobs:
            chosen_logprobs = torch.log_softmax(logits.float(), dim=-1).gather(1, chosen[:, None])[:, 0]
            picked = chosen_logprobs.nan_to_num(neginf=-1e4).tolist()
        done = 0
        for n, (row, token, stop, tie) in enumerate(
            zip(self.rows[first:], chosen.tolist(), finishing.tolist(), tied.tolist())
        ):
            if not row.live:
                continue
            row.tokens.append(token)
            if picked is not None:
                row.logprobs.append(picked[n])
            if stop or tie or len(row.tokens) == self.max_new_tokens:
                row.live = False
                done += 1
                self.answers[row.prompt] = None if tie else (row.tokens, row.logprobs if self.with_logprobs else None)
        pending = chosen if first == 0 else torch.cat([self.pending[:first], chosen])
        self.pending = pending
        if done and self.on_done is not None:
            self.on_done(done)

    def _drop_finished(self) -> None:
        import torch

        keep = [n for n, row in enumerate(self.rows) if row.live]
        if len(keep) < len(self.rows):
            if keep:
                width = max(self.rows[n].length for n in keep)
                self.cache.keep(torch.tensor(keep, device=self.device), width)
            self.rows = [self.rows[n] for n in keep]
            self.pending = self.pending[keep] if keep else None
            self._set_segments()
        needed = {row.group for row in self.rows} | ({self.waiting[0][0]} if self.waiting else set())
        self.prefixes = {g: kv for g, kv in self.prefixes.items() if g in needed}  # free finished groups

    def _set_segments(self) -> None:
        segments: list[Segment] = []
        for n, row in enumerate(self.rows):
            if n and self.rows[n - 1].group == row.group:
                segments[-1].stop += 1
            else:
                keys, values = self.prefixes.get(row.group, ([], []))
                segments.append(Segment(n, n + 1, keys, values))
        self.cache.set_segments(segments)


# Per model: the forward's keyword arguments, read from its signature once, not at every step.
_call_kwargs: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _kwargs(model: Any) -> dict[str, Any]:
    known = _call_kwargs.get(model)
    if known is None:
        known = {"cache": shared.cache_kwarg(model), "keep": shared.last_logits_only(model)}
        _call_kwargs[model] = known
    return known
