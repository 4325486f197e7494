"""Greedy decoding of many prompts, each shared prefix computed once and finished rows dropped.

What `HFGenerator` runs for greedy answers of decoder models (the default of `evaluate`, the
execution-accuracy callback, `predict` and greedy serving). Prompts are grouped by shared prefix and
decoded `batch_size` rows at a time (`decoding.Decoder`). Each group's prefix goes through the model
once, for all the group's rows; rows prefill only their own suffix and decode attending over the
prefix kept once (`prefix_attention`). A row that emits a stop id leaves, and waiting prompts take
the places of finished rows, so steps stay full.

The answers are the tokens transformers' greedy `generate` picks for each prompt alone (the same
arithmetic, in another order: tests/inference/test_greedy.py compares them on several
architectures). Models are used this way only when they compute the same logits on a probe
(`supports_split_attention`), their generation config changes nothing about greedy decoding
(`plain_greedy`), and no sliding window is reached; otherwise `HFGenerator` uses `generate`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from text2sql.inference import prefix as shared
from text2sql.inference.decoding import Answer, Decoder, DecodingBatch, decoding_rows, prefix_kv
from text2sql.inference.prefix_attention import Segment, attention_swapped

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

# Probe tolerance on logits, relative to their largest magnitude: the two paths add the same terms
# in another order (float32: ~1e-6 apart), half precision rounds each product (~1e-3).
PROBE_TOLERANCE = {"float32": 1e-4, "float64": 1e-8}
HALF_PROBE_TOLERANCE = 2e-2

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
    config = shared.base_model(model).config
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
    `on_batch(rows)` as rows finish."""
    if not prompts or max_new_tokens < 1:
        return [([], None)] * len(prompts)
    groups = shared.group_prompts(prompts)
    decoder = Decoder(
        model,
        prompts,
        groups,
        batch_size=decoding_rows(prompts, groups, batch_size, max_new_tokens),
        stops=stops,
        pad_id=pad_id,
        with_logprobs=with_logprobs,
        on_done=on_batch,
    )
    with attention_swapped(shared.base_model(model)):
        return decoder.run(max_new_tokens)


def _probe(model: Any) -> bool:
    """Two rows sharing a 24-token prefix, own parts of 3 and 6 tokens: prefill and one step with
    split attention against the model's own forward of each whole sequence."""
    import torch

    config = shared.base_model(model).config
    vocab = int(config.vocab_size)
    tokens = [(7919 * i + 13) % (vocab - 4) + 4 for i in range(40)]
    prefix, own = tokens[:24], [tokens[24:27], tokens[27:33]]
    follow = tokens[33]
    with torch.inference_mode():
        expected = []
        for part in own:
            for sequence in (prefix + part, prefix + part + [follow]):
                expected.append(model(input_ids=torch.tensor([sequence])).logits[0, -1])
        with attention_swapped(shared.base_model(model)):
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
