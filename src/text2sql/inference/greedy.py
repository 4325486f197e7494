"""Greedy decoding of many prompts, each shared prefix computed once and finished rows dropped.

What `HFGenerator` runs for greedy answers of decoder models (the default of `evaluate`, the
execution-accuracy callback, `predict` and greedy serving). Prompts are grouped by shared prefix and
packed into full batches (`prefix.group_prompts`, `prefix.pack_batches`). Each group's prefix goes
through the model once, for all the group's rows in every batch they fall in; a batch then prefills
only each row's own suffix and decodes, attending over the prefix kept once (`prefix_attention`).
A row that emits a stop id leaves the batch, so the rest decode without it.

The answers are the tokens transformers' greedy `generate` picks for each prompt alone (the same
arithmetic, in another order: tests/inference/test_greedy.py compares them on several
architectures). Models are used this way only when they compute the same logits on a probe
(`supports_split_attention`), their generation config changes nothing about greedy decoding
(`plain_greedy`), and no sliding window is reached; otherwise `HFGenerator` uses `generate`.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from text2sql.inference import prefix as shared
from text2sql.inference.prefix_attention import STATE_KWARG, Segment, SplitCache, attention_swapped

# Generation-config settings that change which token greedy decoding picks, with their neutral values.
GREEDY_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "min_length": (None, 0),
    "min_new_tokens": (None, 0),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "forced_decoder_ids": (None,),
    "sequence_bias": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1.0),
    "watermarking_config": (None,),
    "stop_strings": (None,),
}

# Near-ties: a step whose two best logits are closer than this (relative to the largest logit
# magnitude, at least 1) is decided by rounding, which the two ways of adding up attention do
# differently. The largest gap between them measured on tiny Llama (prompt-dependent weights) and
# SmolLM2-135M over 4,000 steps was 6.4e-6; the bound leaves a margin of about 5x. A row that meets
# a near-tie is answered the per-example way instead. Half precision has no such bound: there
# batched and per-example decoding differ in rounding anyway.
TIE_TOLERANCE = {"float32": 3e-5, "float64": 1e-12}

# Probe tolerance on logits, relative to their largest magnitude: the two paths add the same terms
# in another order (float32: ~1e-6 apart), half precision rounds each product (~1e-3).
PROBE_TOLERANCE = {"float32": 1e-4, "float64": 1e-8}
HALF_PROBE_TOLERANCE = 2e-2

# An answer: its token ids, and each one's log-probability when asked for.
Answer = tuple[list[int], list[float] | None]

_probed: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def plain_greedy(model: Any) -> bool:
    """True when the model's generation config adds nothing to greedy decoding (no repetition
    penalty, forced or suppressed tokens, minimum length, ...)."""
    config = getattr(model, "generation_config", None)
    if config is None:
        return True
    return all(getattr(config, name, None) in neutral for name, neutral in GREEDY_NEUTRAL.items())


def sliding_window(model: Any) -> int | None:
    """The attention window of a model that limits one (Mistral, some Qwen2 configs), else None."""
    config = _base(model).config
    window = getattr(config, "sliding_window", None)
    if not isinstance(window, int) or getattr(config, "use_sliding_window", True) is False:
        return None
    return window


def supports_split_attention(model: Any) -> bool:
    """Whether `model` computes the same next-token logits with split attention as with its own, on
    a probe of two rows that share a prefix (prefill and one decoding step); checked once per model
    (in eval mode: with dropout active no two forwards agree, and the answer is no)."""
    if getattr(model, "training", False):
        return False
    known = _probed.get(model)
    if known is None:
        try:
            known = shared.supports_prefix_sharing(model) and _probe(model)
        except Exception:  # noqa: BLE001 - any failure means: generate the standard way
            known = False
        _probed[model] = known
    return known


def greedy_decode(
    model: Any,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    *,
    batch_size: int,
    stops: set[int],
    pad_id: int,
    with_logprobs: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> list[Answer | None]:
    """Each prompt's greedy tokens (ending at its first stop id, else `max_new_tokens` long) and,
    with `with_logprobs`, each token's log-probability; in prompt order. None for a prompt whose
    answer met a near-tie (`TIE_TOLERANCE`): the caller answers it the per-example way.
    `on_batch(rows)` after each batch."""
    import torch

    results: list[Answer | None] = [([], None)] * len(prompts)
    if not prompts or max_new_tokens < 1:
        return results
    groups = shared.group_prompts(prompts)
    batches = shared.pack_batches(groups, batch_size)
    last_batch = {g: b for b, parts in enumerate(batches) for g, _ in parts}
    prefixes: dict[int, tuple[list[Any], list[Any]]] = {}
    stop_ids = torch.tensor(sorted(stops), dtype=torch.long)
    with attention_swapped(_base(model)):
        for b, parts in enumerate(batches):
            segments: list[Segment] = []
            rows: list[tuple[int, int]] = []  # (prompt index, prefix length)
            for g, members in parts:
                prefix = groups[g].prefix
                if prefix and g not in prefixes:
                    prefixes[g] = prefix_kv(model, prompts[members[0]][:prefix])
                keys, values = prefixes.get(g, ([], []))
                segments.append(Segment(len(rows), len(rows) + len(members), keys, values))
                rows += [(i, prefix) for i in members]
            batch = DecodingBatch(
                model, [prompts[i][p:] for i, p in rows], [p for _, p in rows], segments, max_new_tokens, pad_id
            )
            for (i, _), answer in zip(rows, batch.run(max_new_tokens, stop_ids, with_logprobs)):
                results[i] = answer
            for g, _ in parts:
                if last_batch[g] == b:
                    prefixes.pop(g, None)  # the group is done: free its prefix
            if on_batch is not None:
                on_batch(len(rows))
    return results


def prefix_kv(model: Any, tokens: Sequence[int]) -> tuple[list[Any], list[Any]]:
    """The keys and values of `tokens` (positions 0..n-1) per layer, each (kv heads, n, head dim).
    Call with split attention in place (`attention_swapped`)."""
    batch = DecodingBatch(model, [list(tokens)], [0], [], 1, 0)
    batch.prefill(want_logits=False)
    cache = batch.cache
    return [k[0, :, : len(tokens)] for k in cache.own_keys], [v[0, :, : len(tokens)] for v in cache.own_values]


class DecodingBatch:
    """Rows decoding together: each row's own tokens (`own`, the prompt after its group's prefix)
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
        self.keep_logits = _keep_last(model)
        self.cache_kwarg = shared.cache_kwarg(model)

    def prefill(self, want_logits: bool = True) -> Any:
        """Run every row's own tokens; the logits of each row's last one, (rows, vocabulary)."""
        logits = self._forward(self.ids, self.positions, self.prefill_mask, want_logits)
        self.filled = self.ids.shape[1]
        return logits

    def step(self, tokens: Any) -> Any:
        """Feed one token per row (rows,); the logits that follow it."""
        mask = self.step_mask[..., : self.filled + 1]
        logits = self._forward(tokens[:, None], self.next_position[:, None], mask, True)
        self.filled += 1
        self.next_position = self.next_position + 1
        return logits

    def keep(self, index: list[int]) -> None:
        """Continue with the rows at `index` only (in order)."""
        import torch

        where = torch.as_tensor(index, dtype=torch.long, device=self.step_mask.device)
        segments: list[Segment] = []
        kept = set(index)
        for seg in self.cache.segments:
            n = sum(1 for r in range(seg.start, seg.stop) if r in kept)
            start = segments[-1].stop if segments else 0
            if n:
                segments.append(Segment(start, start + n, seg.keys, seg.values))
        self.cache.keep_rows(where, self.filled, segments)
        self.step_mask = self.step_mask[where]
        self.next_position = self.next_position[where]

    def run(self, max_new_tokens: int, stop_ids: Any, with_logprobs: bool) -> list[Answer | None]:
        """Greedy tokens per row until each stops or `max_new_tokens`, None for a row that met a
        near-tie; rows leave the batch as they stop."""
        import torch

        rows = self.ids.shape[0]
        tokens: list[list[int]] = [[] for _ in range(rows)]
        logprobs: list[list[float]] = [[] for _ in range(rows)]
        tied: set[int] = set()
        alive = list(range(rows))  # batch row -> original row
        logits = self.prefill()
        tolerance = TIE_TOLERANCE.get(str(logits.dtype).removeprefix("torch."))
        for step in range(max_new_tokens):
            chosen = logits.argmax(dim=-1)
            leaving = torch.isin(chosen, stop_ids.to(chosen.device))
            if tolerance is not None:
                best = logits.topk(2, dim=-1).values
                close = best[:, 0] - best[:, 1] <= tolerance * logits.abs().amax(dim=-1).clamp(min=1.0)
                tied.update(alive[i] for i in close.nonzero()[:, 0].tolist())
                leaving |= close
            if with_logprobs:
                picked = torch.log_softmax(logits.float(), dim=-1).gather(1, chosen[:, None])[:, 0]
                for row, value in zip(alive, picked.nan_to_num(neginf=-1e4).tolist()):
                    logprobs[row].append(value)
            for row, token in zip(alive, chosen.tolist()):
                tokens[row].append(token)
            if step == max_new_tokens - 1:
                break
            if bool(leaving.any()):
                index = (~leaving).nonzero()[:, 0].tolist()
                if not index:
                    break
                self.keep(index)
                alive = [alive[i] for i in index]
                chosen = chosen[index]
            logits = self.step(chosen)
        return [None if row in tied else (tokens[row], logprobs[row] if with_logprobs else None) for row in range(rows)]

    def _forward(self, ids: Any, positions: Any, mask: Any, want_logits: bool) -> Any:
        self.cache.begin(self.filled)
        kwargs = {self.cache_kwarg: self.cache, STATE_KWARG: self.cache, **self.keep_logits}
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        return out.logits[:, -1] if want_logits else None


def _probe(model: Any) -> bool:
    """Two rows sharing a 24-token prefix, own parts of 3 and 6 tokens: prefill and one step with
    split attention against the model's own forward of each whole sequence."""
    import torch

    config = _base(model).config
    vocab = int(config.vocab_size)
    tokens = [(7919 * i + 13) % (vocab - 4) + 4 for i in range(40)]
    prefix, own = tokens[:24], [tokens[24:27], tokens[27:33]]
    follow = tokens[33]
    with torch.inference_mode():
        expected = []
        for part in own:
            for sequence in (prefix + part, prefix + part + [follow]):
                expected.append(model(input_ids=torch.tensor([sequence])).logits[0, -1])
        with attention_swapped(_base(model)):
            keys, values = prefix_kv(model, prefix)
            batch = DecodingBatch(model, own, [24, 24], [Segment(0, 2, keys, values)], 2, 0)
            first = batch.prefill()
            second = batch.step(torch.tensor([follow, follow], device=first.device))
    got = [first[0], second[0], first[1], second[1]]
    dtype = str(first.dtype).removeprefix("torch.")
    tolerance = PROBE_TOLERANCE.get(dtype, HALF_PROBE_TOLERANCE)
    for a, b in zip(got, expected):
        scale = max(1.0, float(b.float().abs().max()))
        if float((a.float() - b.float()).abs().max()) > tolerance * scale:
            return False
    return True


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _keep_last(model: Any) -> dict[str, int]:
    # Only the last position's logits are needed: skip the vocabulary projection of the others.
    params = inspect.signature(_base(model).forward).parameters
    return {"logits_to_keep": 1} if "logits_to_keep" in params else {}
