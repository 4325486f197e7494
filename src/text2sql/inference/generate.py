"""The one generator: token-id prompts in, each answer's new token ids out, with one rule for where an
answer stops and what pads a batch. `evaluate`, the execution-accuracy training callback, `predict`
and `serve` all generate here, so what is scored is what is served.

Stop rule: an answer ends at the first token that is the tokenizer's EOS or one of the EOS ids of the
model's generation config (chat models such as Llama 3 end a turn with `<|eot_id|>`, not the
tokenizer's EOS). Pad: the tokenizer's pad token, else its EOS.

`HFGenerator.generate` takes the prompts of one call and, with `batch_size`, cuts them into batches
itself; without `batch_size` the prompts are one batch, as the serving engine forms them. Greedy
answers of decoder models come from `greedy`: prompts grouped by shared prefix (system prompt +
schema) and packed into full batches, each prefix computed once and kept once for all its rows,
finished rows dropped from their batch; a row whose answer meets a near-tie between two tokens is
answered on its own, as a per-example loop would. Sampling, beam search, seq2seq models, models
`greedy` does not support and `share_prefix=False` go through transformers' `generate`: batches
sorted by token length so each pads to nearly the same length, for decoders grouped so prompts over
the same schema share a batch whose common prefix is computed once (`prefix`). Decoder prompts are
laid out left-padded (`prefix.layout`); padding is built here rather than by the tokenizer, so a
tokenizer left in training's right-padding mode still generates correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from text2sql.errors import ConfigError
from text2sql.inference import greedy
from text2sql.inference import prefix as shared
from text2sql.progress import progress as progress_bar


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens. temperature 0 is greedy decoding; requests with equal settings share a batch."""

    temperature: float = 0.0
    top_p: float = 1.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


GREEDY = Sampling()


@dataclass
class RawOutput:
    """One answer: its new token ids up to and including the stop token (when it stopped), no padding."""

    token_ids: list[int]
    hit_eos: bool
    # Sum of the answer's token log-probabilities under the distribution it was drawn from (after
    # temperature and top-p), when asked for (`with_logprobs`): ranks candidates of one question.
    logprob: float | None = None


class Generator(Protocol):
    """What evaluation and the serving engine generate with (`HFGenerator`, `VllmGenerator`)."""

    def generate(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, sampling: Sampling = GREEDY
    ) -> list[RawOutput]: ...


def pad_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its EOS."""
    value = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if value is None:
        raise ConfigError("the tokenizer has neither a pad nor an eos token; batched generation needs one")
    return int(value)


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends an answer: the tokenizer's EOS and the generation config's EOS id(s)."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids


def cut_at_stop(tokens: Sequence[int], stops: set[int], logprobs: Sequence[float] | None = None) -> RawOutput:
    """`tokens` up to and including the first stop id; without one, generation ran to its limit."""
    end, hit = len(tokens), False
    for position, token in enumerate(tokens):
        if token in stops:
            end, hit = position + 1, True
            break
    total = float(sum(logprobs[:end])) if logprobs is not None else None
    return RawOutput(list(tokens[:end]), hit_eos=hit, logprob=total)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (so a batch that does not fit
    in memory fails at the start, and the ETA only improves)."""
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_batch(sequences: Sequence[Sequence[int]], pad: int, *, side: str) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors, padded on `side` ("left" or "right")."""
    import torch

    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if not seq:
            continue
        values = torch.as_tensor(list(seq), dtype=torch.long)
        if side == "left":
            ids[row, width - len(seq) :] = values
            mask[row, width - len(seq) :] = 1
        else:
            ids[row, : len(seq)] = values
            mask[row, : len(seq)] = 1
    return ids, mask


class HFGenerator:
    """transformers `generate` on a loaded model (decoder or seq2seq), used as given: the caller puts
    it in eval mode."""

    def __init__(self, model: Any, tokenizer: Any, kind: str, *, share_prefix: bool = True):
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.pad_id = pad_id(tokenizer)
        self.stop_ids = stop_ids(model, tokenizer)
        self.share_prefix = share_prefix and kind == "decoder" and shared.supports_prefix_sharing(model)
        # Rows of the last `generate` call answered on their own because of a near-tie (`greedy`).
        self.near_ties = 0

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        sampling: Sampling = GREEDY,
        *,
        batch_size: int | None = None,
        num_beams: int = 1,
        progress: bool = False,
        desc: str = "generating",
        with_logprobs: bool = False,
    ) -> list[RawOutput]:
        """The answer to every prompt, in order. Greedy unless `sampling` says otherwise or
        `num_beams` > 1 (beam search). `with_logprobs`: each answer's log-probability too."""
        import torch

        outputs: list[RawOutput | None] = [None] * len(prompts)
        bar = progress_bar(len(prompts), desc, enabled=progress)
        try:
            with torch.inference_mode():
                if self._split_greedy(prompts, max_new_tokens, sampling, num_beams):
                    return self._greedy(prompts, max_new_tokens, batch_size, with_logprobs, bar.update)
                for batch, prefix in self._plan(prompts, batch_size, num_beams):
                    rows, logprobs = self._generate_batch(
                        [prompts[i] for i in batch], prefix, max_new_tokens, sampling, num_beams, with_logprobs
                    )
                    for n, (i, row) in enumerate(zip(batch, rows)):
                        outputs[i] = cut_at_stop(row, self.stop_ids, logprobs[n] if logprobs is not None else None)
                    bar.update(len(batch))
        finally:
            bar.close()
        return outputs  # type: ignore[return-value]

    def decode(self, output: RawOutput) -> str:
        return self.tokenizer.decode(output.token_ids, skip_special_tokens=True)

    def generate_texts(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, **kwargs: Any) -> list[str]:
        """The decoded answers (special tokens removed), in order."""
        return [self.decode(o) for o in self.generate(prompts, max_new_tokens, **kwargs)]

    def _greedy(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: int,
        batch_size: int | None,
        with_logprobs: bool,
        on_batch: Any,
    ) -> list[RawOutput]:
        """Greedy answers through `greedy`; a row it leaves to a per-example decision (a near-tie) is
        generated alone, as transformers decides it for that prompt."""
        answers = greedy.greedy_decode(
            self.model,
            prompts,
            max_new_tokens,
            batch_size=batch_size or len(prompts),
            stops=self.stop_ids,
            pad_id=self.pad_id,
            with_logprobs=with_logprobs,
            on_batch=on_batch,
        )
        self.near_ties = sum(1 for answer in answers if answer is None)
        outputs = []
        for prompt, answer in zip(prompts, answers):
            if answer is None:
                rows, logprobs = self._generate_batch([prompt], 0, max_new_tokens, GREEDY, 1, with_logprobs)
                answer = rows[0], logprobs[0] if logprobs is not None else None
            outputs.append(cut_at_stop(answer[0], self.stop_ids, answer[1]))
        return outputs

    def answers_greedy_with_shared_prefixes(self) -> bool:
        """Whether greedy answers of this model go through `greedy` (prompts short of any sliding
        window): a decoder whose generation config adds nothing to greedy decoding and that computes
        the same logits with split attention."""
        if not self.share_prefix:
            return False
        return greedy.plain_greedy(self.model) and greedy.supports_split_attention(self.model)

    def _split_greedy(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, sampling: Sampling, num_beams: int
    ) -> bool:
        """Whether `greedy` answers these prompts: greedy decoding of a decoder that supports it,
        with no sliding window the longest answer could reach."""
        if not (sampling.greedy and num_beams == 1 and prompts and self.answers_greedy_with_shared_prefixes()):
            return False
        window = greedy.sliding_window(self.model)
        return window is None or max(len(p) for p in prompts) + max_new_tokens <= window

    def _plan(
        self, prompts: Sequence[Sequence[int]], batch_size: int | None, num_beams: int
    ) -> list[tuple[list[int], int]]:
        sharing = self.share_prefix and num_beams == 1
        if batch_size is None:
            everything = list(range(len(prompts)))
            return [(everything, shared.shared_prefix(prompts) if sharing and prompts else 0)] if prompts else []
        if sharing:
            return shared.plan_batches(prompts, batch_size)
        return [(batch, 0) for batch in length_sorted_batches([len(p) for p in prompts], batch_size)]

    def _generate_batch(
        self,
        prompts: list[Sequence[int]],
        prefix: int,
        max_new_tokens: int,
        sampling: Sampling,
        num_beams: int,
        with_logprobs: bool = False,
    ) -> tuple[list[list[int]], list[list[float]] | None]:
        device = next(self.model.parameters()).device
        if self.kind == "decoder":
            ids, mask = shared.layout(prompts, prefix, self.pad_id)
        else:
            ids, mask = pad_batch(prompts, self.pad_id, side="right")
        ids, mask = ids.to(device), mask.to(device)
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "num_beams": num_beams,
            "use_cache": True,  # a model mid-training may have use_cache=False in its config
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.stop_ids) or None,
        }
        if sampling.greedy:
            # Unset a generation_config's sampling settings so transformers does not warn per batch.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            # top_k 0 disables a generation_config's top-k: OpenAI's API has temperature and top_p only.
            kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
        if prefix:
            kwargs[shared.cache_kwarg(self.model)] = shared.prefix_cache(self.model, ids, prefix, len(prompts))
        if with_logprobs and num_beams == 1:
            kwargs.update(output_scores=True, return_dict_in_generate=True)
        out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        logprobs = None
        if with_logprobs and num_beams == 1:
            # Scores are the processed logits each token was drawn from; renormalized they are its
            # log-probability under that distribution.
            steps = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            logprobs = steps.float().nan_to_num(neginf=-1e4).tolist()
            out = out.sequences
        # Decoder output repeats the (padded) prompt; seq2seq output starts with the decoder start token.
        out = out[:, ids.shape[1] :] if self.kind == "decoder" else out[:, 1:]
        return out.tolist(), logprobs
